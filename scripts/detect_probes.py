"""Experiments: why reference-free ``detect`` stalls near 40 PCK on real photos, and what does not lift it.

    .venv/bin/python scripts/detect_probes.py --data ../shared/data/funkpoint-real-dev/annotations.csv \
        --out results/detect-probes/dev.json

On every target row of the evaluation triplets (as ``funk_perception.evaluate``'s
detect rows, letterboxed), each probe prints PCK@0.1 and the confidence ROC AUC of
its variants beside the plain heatmap head and bank:

- ``errors``: where the bank's misses land (on another keypoint of the same image,
  on the mirror partner p1<->p5 / p2<->p4, or elsewhere), PCK per keypoint, and the
  share of single bank references that transfer each keypoint right on their own;
- ``mirror``: the probability maps of the image and of its mirrored input averaged
  (what ``FunctionalKeypointDetector(mirror_maps=True)`` does), per method and combined;
- ``heads``: heatmap heads trained with other options (``--head NAME=CKPT``), alone,
  mirror-averaged, and averaged with each other and the bank;
- ``layouts``: each bank reference moves its five points as one rigid layout (scale,
  rotation, mirror and translation searched on a grid) to where its embeddings match
  best, and the fitted layouts vote;
- ``chain``: a chain prior p1-p2-...-p5 on the ratios of consecutive distances (from
  the training renders, with the overall size unknown and marginalised) combined
  with the bank's or the head's maps by forward-backward;
- ``cycle``: bank votes weighted by cycle consistency (the match carried back into
  the reference lands on its keypoint) or by how well each reference matches;
- ``category``: only the bank references of the photo's own category vote (an
  oracle: it reads the true category) against only the others;
- ``subspace``: the bank's cosine reweighted between the two members and the trunk;
- ``scale``: the photo shrunk inside the padded input (object smaller in the frame);
- ``centring``: every image's embedding map less (a share of) its own mean over the
  cells, or standardised per channel over its cells, then unit-normalised, in the bank
  references and the photo alike: what is common to all of an image (its look, its
  background) taken out of the match;
- ``confidence``: the bank's points with other confidences: the heatmap head's mass
  around the bank's peak, and the geometric mean of that and the bank's own;
- ``models``: the bank's and the head's maps averaged over the main model and the
  ``--other`` models (a cross-trunk ensemble, for instance lite0 with lite2), points
  from the averaged bank, confidence from both averages (as ``bank_heatmap``); and
  the banks joined as seeds are (one vote per reference on the models' mean cosine);
  on the photos and on their mirrored copies;
- ``orientation``: the bank's points, or the same points with the chain reversed
  (p1<->p5, p2<->p4), whichever independent readers (the heatmap head; the head and
  the prototypes) score higher at them; with the choice an oracle makes as a bound;
- ``temperature``: the bank's votes at other softmax temperatures (the checkpoint's logit
  scale times 0.5 ... 2), points from the bank and confidence as ``bank_heatmap``; on the
  photos and their mirrored copies;
- ``experts``: the bank's votes combined with the prototypes' maps (and the heatmap head's):
  their mean and their normalised geometric mean, points from the combined map and
  confidence as ``bank_heatmap``; on the photos and their mirrored copies;
- ``convention``: p2 and p3 of scoop, lift_something, scrape, brush_dust and flip
  swapped in the heatmap head's and the bank's maps (FunKPoint's numbering, against
  generator 1.2.0's; for a model fitted to 1.2.0 labels).

The results and the decisions are in docs/EXPERIMENTS.md (variants tried, 25-42).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from funk_perception.data.annotations import Annotation, FunKPointDataset, read_annotations
from funk_perception.data.pairs import evaluation_pairs
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.matching import (
    agreement_confidence,
    map_confidence,
    mass_near,
    refine_points,
    sample_features,
    vote_maps,
)
from funk_perception.metrics import confidence_auc
from funk_perception.model.letterbox import MEAN_RGB, Letterbox
from funk_perception.tasks import TASKS
from funk_perception.train.bank import choose_references

PROBES = (
    "errors",
    "mirror",
    "heads",
    "layouts",
    "chain",
    "cycle",
    "category",
    "subspace",
    "scale",
    "centring",
    "convention",
    "confidence",
    "models",
    "orientation",
    "temperature",
    "experts",
)


@dataclass
class Target:
    row: Annotation
    image: np.ndarray
    frame: Letterbox
    features: torch.Tensor  # (D, h, w) of the row's task
    mirrored: torch.Tensor  # the mirrored input's, not flipped back
    others: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()  # (features, mirrored) of each --other model


class Scores:
    """PCK@0.1 and confidence AUC per variant, over the visible keypoints of every target."""

    def __init__(self) -> None:
        self.hits: dict[str, list[np.ndarray]] = {}
        self.confidence: dict[str, list[np.ndarray]] = {}
        self.visible: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, target: Target, prob: torch.Tensor) -> None:
        """``prob`` (5, h, w): a keypoint probability map in the padded input's grid."""
        prob = prob.unsqueeze(0) if prob.dim() == 3 else prob
        points = refine_points(torch.log(prob.clamp(min=1e-12)), "parabolic")[0].numpy()
        self.add_points(name, target, target.frame.from_input(points), map_confidence(prob)[0].numpy())

    def add_points(
        self, name: str, target: Target, points: np.ndarray, confidence: np.ndarray, mirrored: bool = False
    ) -> None:
        """``mirrored``: the points were found on the mirrored photo (scored against its mirrored labels;
        the letterbox pads both sides alike, so mirroring the padded input mirrors the photo)."""
        truth = (
            target.row.keypoints * np.array([-1.0, 1.0]) + np.array([1.0, 0.0]) if mirrored else target.row.keypoints
        )
        self.hits.setdefault(name, []).append(np.linalg.norm(points - truth, axis=1) <= 0.1)
        self.confidence.setdefault(name, []).append(confidence)
        self.visible.setdefault(name, []).append(target.row.visible)

    def table(self) -> dict[str, dict]:
        out = {}
        for name in self.hits:
            seen = np.array(self.visible[name])
            hit, conf = np.array(self.hits[name])[seen], np.array(self.confidence[name])[seen]
            per_keypoint = [round(100 * float(np.array(self.hits[name])[:, k][seen[:, k]].mean()), 1) for k in range(5)]
            out[name] = {
                "pck@0.1": round(100 * float(hit.mean()), 1),
                "confidence_auc": round(float(confidence_auc(conf, hit)["auc"]), 3),
                "per keypoint p1..p5": per_keypoint,
            }
        return out


def normalised(prob: torch.Tensor) -> torch.Tensor:
    return prob / prob.flatten(-2).sum(-1).clamp(min=1e-12)[..., None, None]


def heat(detector: FunctionalKeypointDetector, features: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        logits = detector.heatmap_head(features.unsqueeze(0))[0]
    return torch.softmax(logits.flatten(1), -1).reshape(logits.shape)


def bank(detector: FunctionalKeypointDetector, task: str, features: torch.Tensor, **kwargs) -> torch.Tensor:
    return vote_maps(*detector.bank[task], features, detector.logit_scale, **kwargs)


def prototype_maps(detector: FunctionalKeypointDetector, task: str, features: torch.Tensor) -> torch.Tensor:
    """(5, h, w): the detector's prototype maps (softmax of the logit scale times the cosine)."""
    return detector.probability_maps(features[None], [task], "prototypes")[0]


def three_readers(detector: FunctionalKeypointDetector, targets: list[Target]):
    """Per target, on the photo and then its mirrored input: (target, mirrored, bank, head, prototype maps)."""
    for t in targets:
        for mirrored in (False, True):
            feats = t.mirrored if mirrored else t.features
            yield (
                t,
                mirrored,
                bank(detector, t.row.task, feats),
                heat(detector, feats),
                prototype_maps(detector, t.row.task, feats),
            )


# --------------------------------------------------------------------------- probes


def probe_errors(detector, targets, layouts, **_) -> dict:
    kinds = {"hit": 0, "on the mirror partner": 0, "on another keypoint": 0, "elsewhere": 0}
    per_keypoint, single, counted = np.zeros((5, 2)), 0.0, 0
    for t in targets:
        emb, vis = detector.bank[t.row.task]
        points = t.frame.from_input(
            refine_points(torch.log(bank(detector, t.row.task, t.features)[None].clamp(min=1e-12)), "parabolic")[
                0
            ].numpy()
        )
        d, h, w = t.features.shape
        sim = (emb.float().reshape(-1, d) @ t.features.reshape(d, -1)).reshape(len(emb), 5, h, w)
        alone = np.stack([t.frame.from_input(p) for p in refine_points(sim, "parabolic").numpy()])  # (M, 5, 2)
        for k in np.flatnonzero(t.row.visible):
            dist = np.linalg.norm(t.row.keypoints - points[k], axis=1)
            per_keypoint[k] += (1, dist[k] <= 0.1)
            if dist[k] <= 0.1:
                kinds["hit"] += 1
            elif k != 2 and dist[4 - k] <= 0.1:
                kinds["on the mirror partner"] += 1
            elif (dist <= 0.1).any():
                kinds["on another keypoint"] += 1
            else:
                kinds["elsewhere"] += 1
            voters = vis[:, k].numpy()
            single += float((np.linalg.norm(alone[voters, k] - t.row.keypoints[k], axis=1) <= 0.1).mean())
            counted += 1
    return {
        "bank keypoints by where they land": kinds,
        "bank PCK@0.1 per keypoint p1..p5": [round(100 * h / n, 1) for n, h in per_keypoint],
        "single bank references right, mean share": round(100 * single / counted, 1),
    }


def probe_mirror(detector, targets, **_) -> dict:
    scores = Scores()
    for t in targets:
        h, hm = heat(detector, t.features), heat(detector, t.mirrored).flip(-1)
        b, bm = bank(detector, t.row.task, t.features), bank(detector, t.row.task, t.mirrored).flip(-1)
        for name, prob in {
            "heatmap": h,
            "heatmap, mirror maps": (h + hm) / 2,
            "bank": b,
            "bank, mirror maps": (b + bm) / 2,
            "heatmap + bank, mirror maps": (h + hm + b + bm) / 4,
        }.items():
            scores.add(name, t, prob)
    return scores.table()


def probe_heads(detector, targets, heads: dict[str, FunctionalKeypointDetector], **_) -> dict:
    scores = Scores()
    for t in targets:
        maps = {"shipped": (heat(detector, t.features) + heat(detector, t.mirrored).flip(-1)) / 2}
        for name, other in heads.items():
            scores.add(f"{name} head", t, heat(other, t.features))
            maps[name] = (heat(other, t.features) + heat(other, t.mirrored).flip(-1)) / 2
        b = (bank(detector, t.row.task, t.features) + bank(detector, t.row.task, t.mirrored).flip(-1)) / 2
        for name, prob in maps.items():
            scores.add(f"{name} head, mirror maps", t, prob)
            scores.add(f"{name} head + bank, mirror maps", t, (prob + b) / 2)
        every = sum(maps.values()) / len(maps)
        scores.add("all heads, mirror maps", t, every)
        scores.add("all heads + bank, mirror maps", t, (every * len(maps) + b) / (len(maps) + 1))
        scores.add("all heads x bank (geometric mean), mirror maps", t, normalised((every * b).sqrt()))
    return scores.table()


def similarity_transforms() -> torch.Tensor:
    """(T, 2, 2): mirror (x first), scale 0.7-2.1 and rotation -40..40 degrees."""
    mats = []
    for m in (1.0, -1.0):
        for s in (0.7, 0.85, 1.0, 1.2, 1.45, 1.75, 2.1):
            for a in (-40, -20, 0, 20, 40):
                c, si = math.cos(math.radians(a)), math.sin(math.radians(a))
                mats.append([[s * c * m, -s * si], [s * si * m, s * c]])
    return torch.tensor(mats, dtype=torch.float32)


def fit_layouts(logp: torch.Tensor, points: torch.Tensor, visible: torch.Tensor, grid: int = 28):
    """Best similarity transform per reference: fitted points (M, 5, 2) and mean log-probability (M,)."""
    m, k, h, w = logp.shape
    vis = visible.float()
    centre = (points * vis[..., None]).sum(1) / vis.sum(1).clamp(min=1)[:, None]
    moved = torch.einsum("tij,mkj->tmki", similarity_transforms(), points - centre[:, None])  # (T, M, K, 2)
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    centres = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)
    pos = centres[None, None, None] + moved[:, :, :, None]  # (T, M, K, G2, 2)
    t, g2 = moved.shape[0], centres.shape[0]
    floor = logp.flatten(2).amin(-1).reshape(m * k, 1, 1, 1)  # off the map: its lowest value
    sampled = (
        F.grid_sample(
            logp.reshape(m * k, 1, h, w) - floor,
            (pos * 2 - 1).permute(1, 2, 0, 3, 4).reshape(m * k, t * g2, 1, 2),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        + floor
    )
    score = (sampled.reshape(m, k, t, g2) * vis[:, :, None, None]).sum(1) / vis.sum(1).clamp(min=1)[:, None, None]
    best = score.reshape(m, -1).argmax(-1)
    return pos[best // g2, torch.arange(m), :, best % g2], score.reshape(m, -1).amax(-1)


def gaussian_votes(points: torch.Tensor, weights: torch.Tensor, h: int, w: int, sigma: float = 0.06) -> torch.Tensor:
    ys, xs = (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w
    g = torch.exp(
        -(
            (xs[None, None, None] - points[..., 0, None, None]) ** 2
            + (ys[None, None, :, None] - points[..., 1, None, None]) ** 2
        )
        / (2 * sigma**2)
    )
    return normalised((g * weights[:, None, None, None]).sum(0))


def probe_layouts(detector, targets, layouts, **_) -> dict:
    scores = Scores()
    for t in targets:
        emb, vis = detector.bank[t.row.task]
        d, h, w = t.features.shape
        sim = (emb.float().reshape(-1, d) @ t.features.reshape(d, -1)).reshape(len(emb), 5, h * w)
        logp = torch.log_softmax(sim * detector.logit_scale, -1).reshape(len(emb), 5, h, w)
        fitted, score = fit_layouts(logp, layouts[t.row.task], vis)
        b, hm = bank(detector, t.row.task, t.features), heat(detector, t.features)
        scores.add("bank", t, b)
        scores.add("heatmap", t, hm)
        for tau in (0.5, 1.0, 2.0):
            scores.add(
                f"layouts vote, temperature {tau}", t, gaussian_votes(fitted, torch.softmax(score * 5 / tau, 0), h, w)
            )
        for top in (8, 16):
            keep = torch.topk(score, top).indices
            scores.add(f"layouts, the {top} best vote", t, gaussian_votes(fitted[keep], torch.ones(top), h, w))
        lay = gaussian_votes(fitted, torch.softmax(score * 5, 0), h, w)
        scores.add("layouts x bank", t, normalised(lay * b))
        scores.add("layouts x heatmap", t, normalised(lay * hm))
    return scores.table()


def chain_posterior(unary: torch.Tensor, ratios: tuple[np.ndarray, np.ndarray], h: int, w: int) -> torch.Tensor:
    """(5, h*w) log unaries -> (5, h, w) posterior marginals under the chain prior, the chain's length marginalised."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    cells = torch.stack([xs.flatten(), ys.flatten()], -1)
    dist = torch.cdist(cells, cells)
    mean, std = ratios
    margs, logz = [], []
    for length in (0.15, 0.2, 0.27, 0.35, 0.45, 0.6, 0.8, 1.0, 1.25):
        # a density over the plane: a ring of radius ratio * length, spread over its circumference
        pair = [
            torch.log_softmax(
                -0.5 * ((dist - mean[k] * length) / max(std[k] * length, 0.02)) ** 2
                - torch.log(dist.clamp(min=0.5 / h)),
                dim=1,
            )
            for k in range(4)
        ]
        fwd = [unary[0]]
        for k in range(4):
            fwd.append(unary[k + 1] + torch.logsumexp(fwd[k][:, None] + pair[k], 0))
        bwd = [torch.zeros_like(unary[0])] * 5
        for k in range(3, -1, -1):
            bwd[k] = torch.logsumexp(pair[k] + (unary[k + 1] + bwd[k + 1])[None], 1)
        z = torch.logsumexp(fwd[4], 0)
        margs.append(torch.stack([fwd[k] + bwd[k] - z for k in range(5)]))
        logz.append(z)
    weights = torch.softmax(torch.stack(logz), 0)
    return (torch.stack(margs).exp() * weights[:, None, None]).sum(0).reshape(5, h, w)


def probe_chain(detector, targets, train_rows, **_) -> dict:
    ratios = {}
    for task in TASKS:
        kp = np.stack([a.keypoints for a in train_rows if a.task == task and a.visible.all()])
        d = np.linalg.norm(np.diff(kp, axis=1), axis=-1)
        r = d / d.sum(1, keepdims=True)
        ratios[task] = (r.mean(0), r.std(0))
    scores = Scores()
    for t in targets:
        b, hm = bank(detector, t.row.task, t.features), heat(detector, t.features)
        h, w = b.shape[-2:]
        scores.add("bank", t, b)
        scores.add("heatmap", t, hm)
        lb, lh = torch.log(b.clamp(min=1e-8)).reshape(5, -1), torch.log(hm.clamp(min=1e-8)).reshape(5, -1)
        for a in (0.5, 1.0, 2.0):
            scores.add(f"chain x bank^{a}", t, chain_posterior(a * lb, ratios[t.row.task], h, w))
            scores.add(f"chain x heatmap^{a}", t, chain_posterior(a * lh, ratios[t.row.task], h, w))
            scores.add(
                f"chain x (bank heatmap)^{a / 2}", t, chain_posterior(a * (lb + lh) / 2, ratios[t.row.task], h, w)
            )
    return scores.table()


def probe_cycle(detector, targets, reference_maps, **_) -> dict:
    weights: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "bank (all vote alike)": lambda e, p: torch.ones_like(e),
        **{f"cycle, sigma {s}": (lambda s: lambda e, p: torch.exp(-((e / s) ** 2)))(s) for s in (0.05, 0.1, 0.2)},
        **{f"cycle < {c} only": (lambda c: lambda e, p: (e < c).float() + 1e-3)(c) for c in (0.1, 0.15)},
        **{
            f"by match, temperature {s}": (lambda s: lambda e, p: torch.exp((p - p.amax(0, keepdim=True)) / s))(s)
            for s in (0.05, 0.1)
        },
    }
    scores = Scores()
    for t in targets:
        maps, points, vis = reference_maps[t.row.task]
        m, d, h, w = maps.shape
        sim = torch.einsum("mkd,dn->mkn", sample_features(maps, points), t.features.reshape(d, -1))
        forward = refine_points(sim.reshape(m, 5, h, w), "parabolic")
        back_query = sample_features(t.features[None].expand(m, -1, -1, -1), forward)
        back = refine_points(
            torch.einsum("mkd,mdn->mkn", back_query, maps.reshape(m, d, -1)).reshape(m, 5, h, w), "parabolic"
        )
        error, peak = (back - points).norm(dim=-1), sim.amax(-1)
        prob = torch.softmax(sim * detector.logit_scale, -1)
        for name, weight in weights.items():
            wt = weight(error, peak) * vis.float()
            scores.add(name, t, ((prob * wt[..., None]).sum(0) / wt.sum(0).clamp(min=1e-9)[:, None]).reshape(5, h, w))
    return scores.table()


def probe_category(detector, targets, bank_rows, **_) -> dict:
    scores = Scores()
    for t in targets:
        emb, vis = detector.bank[t.row.task]
        same = torch.tensor([a.category == t.row.category for a in bank_rows[t.row.task]])
        scores.add("bank, every reference", t, bank(detector, t.row.task, t.features))
        if same.any():  # every dev category has references in its task's bank (98 of 100 targets)
            scores.add(
                "bank, same category only (oracle)",
                t,
                vote_maps(emb[same], vis[same], t.features, detector.logit_scale),
            )
        scores.add(
            "bank, other categories only", t, vote_maps(emb[~same], vis[~same], t.features, detector.logit_scale)
        )
    return scores.table()


def probe_subspace(detector, targets, **_) -> dict:
    config = detector.encoder.config
    member = detector.encoder.head.out_channels
    sizes = [member] * config.members + [detector.encoder.embedding_dim - member * config.members]
    shipped = [1.0] * config.members + [float(config.trunk_weight)]

    def reweight(x: torch.Tensor, weights: list[float], dim: int) -> torch.Tensor:
        parts = torch.split(x, sizes, dim=dim)
        return F.normalize(torch.cat([p * (w / s) for p, w, s in zip(parts, weights, shipped)], dim=dim), dim=dim)

    scores = Scores()
    for weights in ([1, 1, 0], [1, 1, 0.5], [1, 1, 1], [1, 1, 1.5], [1, 0, 0], [0, 1, 0], [0, 0, 1]):
        for t in targets:
            emb, vis = detector.bank[t.row.task]
            scores.add(
                f"bank, members and trunk weighted {weights}",
                t,
                vote_maps(
                    reweight(emb.float(), weights, -1), vis, reweight(t.features, weights, 0), detector.logit_scale
                ),
            )
    return scores.table()


def probe_scale(detector, targets, **_) -> dict:
    scores = Scores()
    size = detector.image_size
    for fill in (1.0, 0.8, 0.65, 0.5):
        for t in targets:
            height, width = t.image.shape[:2]
            s = size * fill / max(height, width)
            nh, nw = max(1, round(height * s)), max(1, round(width * s))
            canvas = np.empty((size, size, 3), np.uint8)
            canvas[:] = MEAN_RGB
            top, left = (size - nh) // 2, (size - nw) // 2
            canvas[top : top + nh, left : left + nw] = cv2.resize(t.image, (nw, nh), interpolation=cv2.INTER_AREA)
            features = detector.features(canvas, [t.row.task])[0]
            for name, prob in (("heatmap", heat(detector, features)), ("bank", bank(detector, t.row.task, features))):
                points = refine_points(torch.log(prob[None].clamp(min=1e-12)), "parabolic")[0].numpy()
                photo = (points * size - [left, top]) / [nw, nh]
                scores.add_points(
                    f"{name}, photo's longer side {fill:.2f} of the input",
                    t,
                    photo,
                    map_confidence(prob[None])[0].numpy(),
                )
    return scores.table()


def centred(maps: torch.Tensor, share: float, standardise: bool = False) -> torch.Tensor:
    """(..., D, h, w) maps less ``share`` x their mean over the cells (or standardised per channel), unit-normalised."""
    mean = maps.mean((-2, -1), keepdim=True)
    if standardise:
        return F.normalize((maps - mean) / maps.std((-2, -1), keepdim=True).clamp(min=1e-6), dim=-3)
    return F.normalize(maps - share * mean, dim=-3)


def probe_centring(detector, targets, reference_maps, **_) -> dict:
    variants = {f"bank, own mean x {s} removed": dict(share=s) for s in (0.0, 0.5, 0.8, 1.0)}
    variants["bank, standardised per channel"] = dict(share=1.0, standardise=True)
    scores = Scores()
    for name, kwargs in variants.items():
        for t in targets:
            maps, points, vis = reference_maps[t.row.task]
            emb = sample_features(centred(maps, **kwargs), points)
            scores.add(name, t, vote_maps(emb, vis, centred(t.features, **kwargs), detector.logit_scale))
    return scores.table()


SWAPPED = ("brush_dust", "flip", "lift_something", "scoop", "scrape")


def probe_convention(detector, targets, **_) -> dict:
    order = torch.tensor([0, 2, 1, 3, 4])
    scores = Scores()
    for t in targets:
        hm, b = heat(detector, t.features), bank(detector, t.row.task, t.features)
        scores.add("heatmap", t, hm)
        scores.add("bank", t, b)
        swap = t.row.task in SWAPPED
        scores.add("heatmap, p2 and p3 swapped on 5 tasks", t, hm[order] if swap else hm)
        scores.add("bank, p2 and p3 swapped on 5 tasks", t, b[order] if swap else b)
        scores.add("heatmap, p2 and p3 swapped on every task", t, hm[order])
    return scores.table()


def probe_confidence(detector, targets, **_) -> dict:
    scores = Scores()
    for t in targets:
        hm, b = heat(detector, t.features)[None], bank(detector, t.row.task, t.features)[None]
        points = t.frame.from_input(refine_points(torch.log(b.clamp(min=1e-12)), "parabolic")[0].numpy())
        own, both = map_confidence(b)[0], agreement_confidence(b, hm)[0]  # both: sqrt(own x the head's mass there)
        scores.add_points("bank, its own confidence", t, points, own.numpy())
        scores.add_points(
            "bank, the heatmap's mass at the bank's peak", t, points, (both**2 / own.clamp(min=1e-12)).numpy()
        )
        scores.add_points("bank, geometric mean of both", t, points, both.numpy())
    return scores.table()


REVERSED = [4, 3, 2, 1, 0]  # keypoint k takes the point found for 4 - k


def _mass_at(prob: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(5,) each map's mass in the 3 x 3 cells around ``cells`` (5,) flat indices (as map_confidence reads)."""
    w = prob.shape[-1]
    return mass_near(prob[None], (cells // w)[None], (cells % w)[None], 1)[0]


def probe_orientation(detector, targets, **_) -> dict:
    scores = Scores()
    for t, mirrored, b, hm, pr in three_readers(detector, targets):
        cells = b.reshape(5, -1).argmax(-1)
        points = t.frame.from_input(refine_points(torch.log(b[None].clamp(min=1e-12)), "parabolic")[0].numpy())
        suffix = ", mirrored" if mirrored else ""

        def log_at(prob: torch.Tensor, order: list[int]) -> float:
            return float(torch.log(_mass_at(prob, cells[order]).clamp(min=1e-12)).sum())

        def add(name: str, reverse: bool) -> None:
            order = REVERSED if reverse else list(range(5))
            conf = (_mass_at(b, cells[order]) * _mass_at(hm, cells[order])).sqrt().numpy()
            scores.add_points(name + suffix, t, points[order], conf, mirrored)

        add("bank_heatmap", False)
        add("reversed by the head", log_at(hm, REVERSED) > log_at(hm, list(range(5))))
        add(
            "reversed by head + prototypes",
            log_at(hm, REVERSED) + log_at(pr, REVERSED) > log_at(hm, list(range(5))) + log_at(pr, list(range(5))),
        )
        truth = t.row.keypoints * np.array([-1.0, 1.0]) + np.array([1.0, 0.0]) if mirrored else t.row.keypoints
        hits = [
            int(((np.linalg.norm(points[o] - truth, axis=1) <= 0.1) & t.row.visible).sum())
            for o in (list(range(5)), REVERSED)
        ]
        add("oracle (bound, reads the labels)", hits[1] > hits[0])
    return scores.table()


def probe_temperature(detector, targets, **_) -> dict:
    scores = Scores()
    for t in targets:
        for mirrored in (False, True):
            feats = t.mirrored if mirrored else t.features
            hm = heat(detector, feats)[None]
            emb, vis = detector.bank[t.row.task]
            for factor in (0.5, 0.75, 1.0, 1.5, 2.0):
                b = vote_maps(emb, vis, feats, detector.logit_scale * factor)[None]
                points = t.frame.from_input(refine_points(torch.log(b.clamp(min=1e-12)), "parabolic")[0].numpy())
                scores.add_points(
                    f"logit scale x {factor}" + (", mirrored" if mirrored else ""),
                    t,
                    points,
                    agreement_confidence(b, hm)[0].numpy(),
                    mirrored,
                )
    return scores.table()


def probe_experts(detector, targets, **_) -> dict:
    scores = Scores()
    for t, mirrored, b, hm, pr in three_readers(detector, targets):
        for name, prob in (
            ("bank", b),
            ("prototypes", pr),
            ("bank + prototypes", (b + pr) / 2),
            ("bank x prototypes", normalised((b * pr).sqrt())),
            ("bank + prototypes + head", (b + pr + hm) / 3),
            ("bank x prototypes x head", normalised((b * pr * hm) ** (1 / 3))),
        ):
            points = t.frame.from_input(refine_points(torch.log(prob[None].clamp(min=1e-12)), "parabolic")[0].numpy())
            scores.add_points(
                name + (", mirrored" if mirrored else ""),
                t,
                points,
                agreement_confidence(prob[None], hm[None])[0].numpy(),
                mirrored,
            )
    return scores.table()


def probe_models(detector, targets, others: list[FunctionalKeypointDetector], **_) -> dict:
    if not others:
        raise SystemExit("the models probe needs at least one --other model")
    sources = {
        tuple(str(d.encoder.loaded_extra.get("bank_source", {}).get(k)) for k in ("csv", "per_task", "seed"))
        for d in (detector, *others)
    }
    if len(sources) != 1:
        raise SystemExit("the models probe needs banks drawn alike (extra['bank_source']: csv, per_task, seed)")
    scores = Scores()
    for t in targets:
        for mirrored in (False, True):
            own = t.mirrored if mirrored else t.features
            feats = [own, *(m if mirrored else f for f, m in t.others)]
            readers = [detector, *others]
            banks = [bank(d, t.row.task, f) for d, f in zip(readers, feats)]
            heads = [heat(d, f) for d, f in zip(readers, feats)]
            suffix = ", mirrored" if mirrored else ""
            # joined as seeds are: one vote per reference on the mean of the models' cosines (the banks hold
            # the same reference rows, bank_source alike), at the models' mean logit scale
            emb = torch.cat([d.bank[t.row.task][0] for d in readers], -1) / math.sqrt(len(readers))
            joined = vote_maps(
                emb,
                detector.bank[t.row.task][1],
                torch.cat(feats, 0) / math.sqrt(len(readers)),
                sum(d.logit_scale for d in readers) / len(readers),
            )
            for name, b, hm in (
                ("main", banks[0], heads[0]),
                ("others", sum(banks[1:]) / len(others), sum(heads[1:]) / len(others)),
                ("all", sum(banks) / len(banks), sum(heads) / len(heads)),
                ("all, cosines joined", joined, sum(heads) / len(heads)),
            ):
                points = t.frame.from_input(refine_points(torch.log(b[None].clamp(min=1e-12)), "parabolic")[0].numpy())
                conf = agreement_confidence(b[None], hm[None])[0].numpy()
                scores.add_points(f"bank_heatmap, {name}{suffix}", t, points, conf, mirrored)
    return scores.table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("models/funk-lite0-synth.pt"))
    parser.add_argument(
        "--bank-data",
        type=Path,
        default=Path("datasets/synth-v13/annotations.csv"),
        help="the CSV the model's bank was drawn from (its train rows: layouts, categories, chain prior)",
    )
    parser.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="NAME=CKPT",
        help="another heatmap head on the same encoder, for the heads probe (repeatable)",
    )
    parser.add_argument(
        "--other",
        type=Path,
        action="append",
        default=[],
        help="another shipped model (any trunk), for the models probe (repeatable)",
    )
    parser.add_argument("--max-targets-per-task", type=int, default=None)
    parser.add_argument("--probe", choices=PROBES, action="append", default=None, help="default: all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    annotations = read_annotations(args.data)
    pairs = evaluation_pairs(annotations, 0, 20, args.max_targets_per_task)
    detector = FunctionalKeypointDetector.load(args.model, method="heatmap")
    heads = {
        name: FunctionalKeypointDetector.load(path, method="heatmap")
        for name, path in (h.split("=", 1) for h in args.head)
    }
    train = FunKPointDataset(args.bank_data, roles=["train"])
    source = detector.encoder.loaded_extra["bank_source"]
    bank_rows = choose_references(train.annotations, source["per_task"], source["seed"])
    for task, (_, visible) in detector.bank.items():  # the bank must be the one these rows were drawn for
        if not torch.equal(visible.cpu(), torch.from_numpy(np.stack([a.visible for a in bank_rows[task]]))):
            raise SystemExit(f"{args.model}: its {task} bank was not drawn from {args.bank_data}'s train rows")
    others = [FunctionalKeypointDetector.load(path, method="heatmap") for path in args.other]
    targets = []
    for i in sorted({p.target for p in pairs}):
        row = annotations[i]
        image = cv2.cvtColor(cv2.imread(str(row.image_path)), cv2.COLOR_BGR2RGB)
        embedded, (frame,) = detector.embed([image], [row.task], mirrored=True)
        extra = tuple((e[0, 0], e[1, 0]) for e, _ in (o.embed([image], [row.task], mirrored=True) for o in others))
        targets.append(Target(row, image, frame, embedded[0, 0], embedded[1, 0], extra))
    probes = args.probe or list(PROBES)
    context = {
        "layouts": {
            t: torch.from_numpy(np.stack([a.keypoints for a in rows])).float() for t, rows in bank_rows.items()
        },
        "bank_rows": bank_rows,
        "train_rows": train.annotations,
        "heads": heads,
        "others": others,
    }
    if {"cycle", "centring"} & set(probes):  # the references' whole maps, embedded as the bank embedded them
        context["reference_maps"] = {
            task: (
                torch.stack([detector.features(train.load_image(a.image_path), [task])[0] for a in rows]),
                torch.from_numpy(np.stack([a.keypoints for a in rows])).float(),
                torch.from_numpy(np.stack([a.visible for a in rows])),
            )
            for task, rows in bank_rows.items()
            if any(t.row.task == task for t in targets)
        }
    results = {}
    for name in probes:
        results[name] = globals()[f"probe_{name}"](detector, targets, **context)
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    out = {
        "data": str(args.data),
        "model": str(args.model),
        "others": [str(p) for p in args.other],
        "heads": dict(h.split("=", 1) for h in args.head),
        "targets": len(targets),
        "letterbox": True,
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
