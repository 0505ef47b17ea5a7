"""Correspondence math shared by evaluation and the detector.

Coordinates are normalised image coordinates ``(x, y)`` in ``[0, 1]``: ``x`` is
divided by the image width and ``y`` by its height, the convention of the
FunKPoint CSV. A feature map of ``h x w`` cells covers the whole (resized) image,
so cell ``(i, j)`` has its centre at ``((j + 0.5) / w, (i + 0.5) / h)``; the same
normalised point then lies on the same object part in the original image, whatever
its size or aspect ratio.

Matching a query vector against a feature map is a dot product with every cell
(a batched matrix product). The best cell is found by argmax; sub-cell precision
comes from :func:`refine_parabolic` (a quadratic fitted through the peak and its
two neighbours on each axis) or :func:`refine_softargmax` (a local soft-argmax).
Bilinear upsampling of the similarity map is deliberately not offered: the maximum
of a bilinear interpolant always sits on a grid node, so it cannot move the peak
off the cell centre.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

REFINE_METHODS: tuple[str, ...] = ("parabolic", "softargmax")


def _check_map(sim: torch.Tensor, name: str = "similarity map") -> None:
    if not isinstance(sim, torch.Tensor) or sim.dim() != 4:
        found = tuple(sim.shape) if isinstance(sim, torch.Tensor) else type(sim).__name__
        raise ValueError(f"{name}: expected a (B, K, h, w) tensor, found {found}")


def cell_to_normalized(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Cell indices (possibly fractional) -> normalised ``(x, y)`` of the cell centre, shape (..., 2)."""
    x = (cols.to(torch.float32) + 0.5) / width
    y = (rows.to(torch.float32) + 0.5) / height
    return torch.stack([x, y], dim=-1)


def sample_features(features: torch.Tensor, points: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Bilinearly sample feature vectors at sub-cell positions.

    ``features`` (B, D, h, w), ``points`` (B, K, 2) normalised ``(x, y)``; returns
    (B, K, D). With ``align_corners=False`` the grid value ``2 * x - 1`` puts cell
    centres exactly at ``(j + 0.5) / w``, the convention of this module. Points
    outside the image are clamped to the border cells. ``normalize`` rescales each
    sampled vector to unit length, because interpolating unit vectors shortens them
    and cosine matching should not depend on where between cells a keypoint fell.
    """
    if features.dim() != 4:
        raise ValueError(f"features: expected (B, D, h, w), found {tuple(features.shape)}")
    if points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != features.shape[0]:
        raise ValueError(f"points: expected (B={features.shape[0]}, K, 2) normalised x,y, found {tuple(points.shape)}")
    grid = (points.to(features.dtype) * 2.0 - 1.0).unsqueeze(2)  # (B, K, 1, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.squeeze(-1).transpose(1, 2)  # (B, K, D)
    if normalize:
        sampled = F.normalize(sampled, dim=-1)
    return sampled


def similarity_maps(queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Dot product of each query with every cell: (B, K, D) x (B, D, h, w) -> (B, K, h, w)."""
    if queries.dim() != 3 or features.dim() != 4 or queries.shape[0] != features.shape[0]:
        raise ValueError(
            f"expected queries (B, K, D) and features (B, D, h, w), found {tuple(queries.shape)} "
            f"and {tuple(features.shape)}"
        )
    if queries.shape[-1] != features.shape[1]:
        raise ValueError(f"query dimension {queries.shape[-1]} != feature channels {features.shape[1]}")
    b, d, h, w = features.shape
    sim = torch.bmm(queries.to(features.dtype), features.reshape(b, d, h * w))
    return sim.reshape(b, queries.shape[1], h, w)


def _peak_indices(sim: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = sim.flatten(2).argmax(dim=-1)  # ties resolve to the first cell in row-major order
    w = sim.shape[-1]
    return flat // w, flat % w


def argmax_points(sim: torch.Tensor) -> torch.Tensor:
    """Normalised ``(x, y)`` of the best cell's centre for every map: (B, K, h, w) -> (B, K, 2)."""
    _check_map(sim)
    rows, cols = _peak_indices(sim)
    return cell_to_normalized(rows, cols, sim.shape[-2], sim.shape[-1])


def _axis_offset(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    # Vertex of the parabola through (-1, left), (0, centre), (1, right).
    curvature = left + right - 2.0 * centre
    safe = torch.where(curvature < 0, curvature, torch.full_like(curvature, -1.0))
    offset = torch.where(curvature < 0, 0.5 * (left - right) / safe, torch.zeros_like(curvature))
    return offset.clamp(-0.5, 0.5)


def refine_parabolic(sim: torch.Tensor) -> torch.Tensor:
    """Sub-cell peak: a quadratic through the argmax cell and its neighbours, per axis.

    Invariant to any positive affine rescaling of the scores, so it needs no
    temperature (cosine scores and logits refine identically). At the border of the
    map the offset along that axis is zero. Returns (B, K, 2) normalised ``(x, y)``.
    """
    _check_map(sim)
    b, k, h, w = sim.shape
    rows, cols = _peak_indices(sim)
    flat = sim.reshape(b, k, h * w).to(torch.float32)

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (r.clamp(0, h - 1) * w + c.clamp(0, w - 1)).unsqueeze(-1)).squeeze(-1)

    centre = at(rows, cols)
    dx = _axis_offset(at(rows, cols - 1), centre, at(rows, cols + 1))
    dy = _axis_offset(at(rows - 1, cols), centre, at(rows + 1, cols))
    dx = torch.where((cols > 0) & (cols < w - 1), dx, torch.zeros_like(dx))
    dy = torch.where((rows > 0) & (rows < h - 1), dy, torch.zeros_like(dy))
    return cell_to_normalized(rows.to(torch.float32) + dy, cols.to(torch.float32) + dx, h, w)


def refine_softargmax(sim: torch.Tensor, temperature: float = 0.05, radius: int = 1) -> torch.Tensor:
    """Local soft-argmax: expected cell position under ``softmax(sim / temperature)`` in a
    ``(2 * radius + 1)^2`` window around the argmax (cells outside the map are ignored).

    The window keeps a distant second mode from dragging the estimate between the
    two. Returns (B, K, 2) normalised ``(x, y)``.
    """
    _check_map(sim)
    if temperature <= 0 or radius < 1:
        raise ValueError(f"soft-argmax: expected temperature > 0 and radius >= 1, found {temperature}, {radius}")
    b, k, h, w = sim.shape
    rows, cols = _peak_indices(sim)
    offsets = torch.arange(-radius, radius + 1, device=sim.device)
    win_r = rows.unsqueeze(-1).unsqueeze(-1) + offsets.view(1, 1, -1, 1)  # (B, K, S, 1)
    win_c = cols.unsqueeze(-1).unsqueeze(-1) + offsets.view(1, 1, 1, -1)  # (B, K, 1, S)
    win_r, win_c = torch.broadcast_tensors(win_r, win_c)
    inside = (win_r >= 0) & (win_r < h) & (win_c >= 0) & (win_c < w)
    index = (win_r.clamp(0, h - 1) * w + win_c.clamp(0, w - 1)).flatten(2)
    values = sim.reshape(b, k, h * w).to(torch.float32).gather(-1, index)
    logits = torch.where(inside.flatten(2), values / temperature, torch.full_like(values, float("-inf")))
    weights = torch.softmax(logits, dim=-1)
    r = (weights * win_r.flatten(2).to(torch.float32)).sum(-1)
    c = (weights * win_c.flatten(2).to(torch.float32)).sum(-1)
    return cell_to_normalized(r, c, h, w)


def refine_points(sim: torch.Tensor, method: str = "parabolic", temperature: float = 0.05) -> torch.Tensor:
    """Dispatch to one of :data:`REFINE_METHODS` (``temperature`` is used by soft-argmax only)."""
    if method == "parabolic":
        return refine_parabolic(sim)
    if method == "softargmax":
        return refine_softargmax(sim, temperature=temperature)
    raise ValueError(f"unknown refinement {method!r}; expected one of {', '.join(REFINE_METHODS)}")


def peak_confidence(sim: torch.Tensor, logit_scale: float, radius: int = 1) -> torch.Tensor:
    """Probability mass near the peak under ``softmax(logit_scale * sim)`` over all cells.

    This is the distribution the contrastive loss (docs/DESIGN.md, "Training loss") trains: a single
    sharp peak gives a value near 1, a repeated or flat pattern spreads the mass and
    gives a low value, which a raw cosine score cannot tell apart. The mass of the
    ``(2 * radius + 1)^2`` neighbourhood is used rather than the single cell, because
    a keypoint between two cells legitimately splits its mass. Returns (B, K) in [0, 1].
    """
    _check_map(sim)
    b, k, h, w = sim.shape
    prob = torch.softmax(sim.reshape(b, k, h * w).to(torch.float32) * float(logit_scale), dim=-1)
    return mass_near(prob.reshape(b, k, h, w), *_peak_indices(sim), radius)


def mass_near(prob: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, radius: int) -> torch.Tensor:
    """Mass of (B, K, h, w) maps in the ``(2 * radius + 1)^2`` cells around (rows, cols): (B, K) in [0, 1]."""
    b, k, h, w = prob.shape
    size = 2 * radius + 1
    local = (
        F.avg_pool2d(prob.reshape(b * k, 1, h, w).float(), size, stride=1, padding=radius, count_include_pad=True)
        * size
        * size
    )
    local = local.reshape(b, k, h * w).gather(-1, (rows * w + cols).unsqueeze(-1)).squeeze(-1)
    return local.clamp(0.0, 1.0)


@dataclass(frozen=True)
class MatchResult:
    """Matches of K queries in B maps: normalised (B, K, 2) positions, (B, K) peak scores, and the (B, K, h, w)
    float32 similarity maps they were read from (for a confidence)."""

    argmax: torch.Tensor
    refined: torch.Tensor
    score: torch.Tensor
    similarity: torch.Tensor


def match(queries: torch.Tensor, features: torch.Tensor, refine: str = "parabolic") -> MatchResult:
    """Match (B, K, D) queries against (B, D, h, w) feature maps: argmax and refined positions.

    The one keypoint transfer: ``FunctionalKeypointDetector.transfer`` and ``evaluate``'s transfer rows both
    call it, so what ``evaluate`` measures is what ``transfer`` does."""
    sim = similarity_maps(queries, features).to(torch.float32)
    return MatchResult(
        argmax=argmax_points(sim),
        refined=refine_points(sim, refine),
        score=sim.flatten(2).amax(dim=-1),
        similarity=sim,
    )


def vote_maps(
    queries: torch.Tensor, visible: torch.Tensor, features: torch.Tensor, logit_scale: float, top_k: int = 0
) -> torch.Tensor:
    """Soft votes of a bank of references for each keypoint: (K, h, w) probability maps.

    ``queries`` (M, K, D): keypoint embeddings of M reference images; ``visible``
    (M, K) bool: which of them were labelled; ``features`` (D, h, w) one target
    map. Each reference casts ``softmax(logit_scale * cosine)`` over the cells (the
    distribution the contrastive loss trains) and the votes are averaged. Unlike
    one mean prototype, which averages similarities and so blurs references that
    disagree into a location none of them likes, averaging distributions keeps the
    place most references agree on, and the mass at the peak says how many agree.
    ``top_k`` > 0 lets only the references that match the target best vote (by
    their mean peak cosine over their labelled keypoints): a nearest-neighbour
    retrieval of the references that look most like the image. A keypoint no
    voting reference saw gets an all-zero map.
    """
    if queries.dim() != 3 or visible.shape != queries.shape[:2] or features.dim() != 3:
        raise ValueError(
            f"expected queries (M, K, D), visible (M, K) and features (D, h, w), found {tuple(queries.shape)}, "
            f"{tuple(visible.shape)} and {tuple(features.shape)}"
        )
    m, k, d = queries.shape
    _, h, w = features.shape
    sim = (queries.reshape(m * k, d).to(features.dtype) @ features.reshape(d, h * w)).reshape(m, k, h * w)
    if 0 < top_k < m:
        peaks = sim.amax(dim=-1).float() * visible.float()
        score = peaks.sum(-1) / visible.sum(-1).clamp(min=1).float()
        keep = torch.topk(score, top_k).indices
        sim, visible = sim[keep], visible[keep]
    prob = torch.softmax(sim.float() * float(logit_scale), dim=-1) * visible.unsqueeze(-1).float()
    votes = prob.sum(0) / visible.sum(0).clamp(min=1).unsqueeze(-1).float()
    return votes.reshape(k, h, w)


def best_views(queries: torch.Tensor, visible: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Per reference, the view of it that matches ``features`` best: (M, K, D) from (M, V, K, D).

    ``queries`` (M, V, K, D): the keypoint embeddings of M references each seen in V views (the user's
    photo and its mirror image, funk_perception/reference_bank.py); ``visible`` (M, K); ``features``
    (D, h, w). A view's score is its mean over labelled keypoints of the best cosine anywhere in the
    map, the score :func:`vote_maps` ranks references by: the image, not a prior, decides which way
    round each reference applies.
    """
    if queries.dim() != 4 or visible.shape != (queries.shape[0], queries.shape[2]) or features.dim() != 3:
        raise ValueError(
            f"expected queries (M, V, K, D), visible (M, K) and features (D, h, w), found "
            f"{tuple(queries.shape)}, {tuple(visible.shape)} and {tuple(features.shape)}"
        )
    m, v, k, d = queries.shape
    sim = queries.reshape(m * v * k, d).to(features.dtype) @ features.reshape(d, -1)
    peaks = sim.amax(dim=-1).reshape(m, v, k).float() * visible.unsqueeze(1).float()
    score = peaks.sum(-1) / visible.sum(-1, keepdim=True).clamp(min=1).float()  # (M, V)
    best = score.argmax(dim=1)  # ties: the first view, the photo as given
    return queries[torch.arange(m, device=queries.device), best]


def map_confidence(prob: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Mass of a (B, K, h, w) probability map in the ``(2 * radius + 1)^2`` cells around its peak: (B, K)."""
    _check_map(prob)
    return mass_near(prob, *_peak_indices(prob), radius)


def agreement_confidence(prob: torch.Tensor, other: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """How surely two readers of an image agree on ``prob``'s peaks: (B, K).

    The geometric mean of ``prob``'s mass around its own peak and ``other``'s mass
    (a second (B, K, h, w) probability map, from an independent method) around that
    same cell: high only where both put their weight on the point ``prob`` picked.
    """
    _check_map(prob)
    _check_map(other, "second probability map")
    if other.shape != prob.shape:
        raise ValueError(f"second probability map: expected shape {tuple(prob.shape)}, found {tuple(other.shape)}")
    rows, cols = _peak_indices(prob)
    return (mass_near(prob, rows, cols, radius) * mass_near(other, rows, cols, radius)).sqrt()


def flip_averaged(extract: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Features of ``images`` (B, 3, H, W) averaged with those of their mirror image, mirrored back.

    FunKPoint labels are semantic (a mirrored photo keeps each keypoint's
    identity), so a keypoint's embedding should not depend on which way the
    object faces; averaging the two passes makes the map exactly mirror-equivariant.
    ``extract`` returns (B, ..., D, h, w) maps; the result is re-normalised over D.
    """
    plain = extract(images)
    mirrored = extract(torch.flip(images, dims=[-1])).flip(dims=[-1])
    return F.normalize(plain.float() + mirrored.float(), dim=-3)
