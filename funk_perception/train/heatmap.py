"""Training of the keypoint heatmap head (:mod:`funk_perception.model.heatmap`) on a frozen encoder.

``python -m funk_perception.train.heatmap --model CKPT --data CSV --out CKPT2``

The encoder stays frozen; its embeddings of the cached, augmented training views
(the same trunk-feature cache the encoder trained on, :mod:`funk_perception.train.cache`)
feed the head. Each sample is one (view, task) with a labelled keypoint; the
loss is, per visible keypoint, the cross-entropy of the softmax over the cells
against a Gaussian target (sigma ``target_sigma`` cells) centred on the sub-cell
keypoint. Adam, seeded sampling, a progress bar; the result is written into a
copy of the checkpoint (``extra["heatmap_head"]``), which ``detect`` then uses by
default. It is a few minutes of CPU, so it restarts rather than resumes.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from funk_perception.cli import command
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.model.encoder import FunctionalEncoder, resolve_device
from funk_perception.model.export import resave_with_extra
from funk_perception.model.heatmap import HeatmapConfig, KeypointHeatmapHead
from funk_perception.train.cache import FeatureCache
from funk_perception.train.feature_style import mix_style
from funk_perception.train.loop import TrainConfig, prepare_cache

log = logging.getLogger("funk_perception.train.heatmap")


@dataclass
class HeatmapTrainConfig:
    """Defaults train in about 10 minutes on two (shared) CPU cores."""

    steps: int = 400
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    target_sigma: float = 0.75  # cells
    hidden: int = 96
    dilations: tuple[int, ...] = (2,)  # HeatmapConfig.dilations: the head's field of view
    # channel dropout on the embeddings while training, a regulariser against fitting the renders' look
    input_dropout: float = 0.0
    # probability that a batch's trunk features swap channel statistics between samples (MixStyle, Zhou et
    # al. 2021): the head then sees one object under another render's feature "style", a cheap stand-in for
    # appearance the renders lack
    mixstyle: float = 0.0
    seed: int = 0
    num_threads: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.target_sigma <= 0:
            raise ValueError(
                f"HeatmapTrainConfig: expected steps, batch >= 1 and target_sigma > 0, found "
                f"{self.steps}, {self.batch}, {self.target_sigma}"
            )
        if not 0.0 <= self.mixstyle <= 1.0:
            raise ValueError(f"HeatmapTrainConfig.mixstyle: expected a probability in [0, 1], found {self.mixstyle}")
        if not 0.0 <= self.input_dropout < 1.0:
            raise ValueError(
                f"HeatmapTrainConfig.input_dropout: expected a value in [0, 1), found {self.input_dropout}"
            )


def gaussian_targets(keypoints: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """(B, K, 2) normalised keypoints -> (B, K, h*w) target distributions over the cells."""
    cols = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    rows = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    dx = (cols.view(1, 1, 1, w) - keypoints[..., 0, None, None]) * w
    dy = (rows.view(1, 1, h, 1) - keypoints[..., 1, None, None]) * h
    logits = -(dx**2 + dy**2) / (2 * sigma**2)
    return torch.softmax(logits.flatten(2), dim=-1)


def heatmap_loss(logits: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over visible keypoints of the cross-entropy between softmax(logits) and the Gaussian target."""
    b, k, h, w = logits.shape
    target = gaussian_targets(keypoints, h, w, sigma).to(logits.device)
    ce = -(target * F.log_softmax(logits.flatten(2), dim=-1)).sum(-1)  # (B, K)
    mask = visible.float()
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def _samples(cache: FeatureCache) -> np.ndarray:
    """(N, 2) array of (view id, task index) with at least one visible keypoint."""
    views, tasks = np.nonzero(cache.visible.any(axis=-1))
    return np.stack([views, tasks], axis=1)


def train_heatmap_head(
    encoder: FunctionalEncoder, cache: FeatureCache, config: HeatmapTrainConfig | None = None
) -> tuple[KeypointHeatmapHead, list[float]]:
    """Fit a head on ``cache``'s views embedded by the frozen ``encoder``; returns it and the loss per step."""
    config = config or HeatmapTrainConfig()
    device = encoder.log_logit_scale.device
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    head = KeypointHeatmapHead(
        HeatmapConfig(in_channels=encoder.embedding_dim, hidden=config.hidden, dilations=config.dilations)
    ).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    samples = _samples(cache)
    if len(samples) == 0:
        raise ValueError(f"{cache.folder}: no cached view has a visible keypoint")
    encoder.eval()
    losses: list[float] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        for _ in tqdm(range(config.steps), desc="heatmap head", disable=not config.progress):
            batch = samples[np.sort(rng.choice(len(samples), size=min(config.batch, len(samples)), replace=False))]
            features = cache.load_features(batch[:, 0]).to(device)
            if config.mixstyle > 0 and rng.random() < config.mixstyle:
                features = mix_style(features, rng)
            task_ids = torch.from_numpy(batch[:, 1]).to(device)
            with torch.no_grad():
                embeddings = encoder.embed_per_sample(features, task_ids).float()
            if config.input_dropout > 0:
                embeddings = F.dropout2d(embeddings, config.input_dropout, training=True)
            logits = head(embeddings)
            keypoints = torch.from_numpy(cache.keypoints[batch[:, 0], batch[:, 1]])
            visible = torch.from_numpy(cache.visible[batch[:, 0], batch[:, 1]]).to(device)
            loss = heatmap_loss(logits, keypoints, visible, config.target_sigma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(previous_threads)
    return head.eval(), losses


def add_heatmap_head(
    model: str | Path, data: str | Path, out: str | Path, config: HeatmapTrainConfig | None = None, device: str = "auto"
) -> Path:
    """Train a head for ``model`` on ``data``'s train rows (its feature cache) and write ``out`` with it."""
    config = config or HeatmapTrainConfig()
    encoder = FunctionalEncoder.load(model, resolve_device(device))
    dataset = FunKPointDataset(data, roles=["train"])
    if not dataset.annotations:
        raise ValueError(f"{data}: no train-role rows to train a heatmap head on")
    train_config = TrainConfig(data=str(data), num_threads=config.num_threads, progress=config.progress)
    # the cache is found (or built) exactly as training does, so the head sees the encoder's training views
    cache = prepare_cache(train_config, encoder.config, encoder.trunk, dataset)
    started = time.perf_counter()
    head, losses = train_heatmap_head(encoder, cache, config)
    extra = dict(encoder.loaded_extra)
    extra["heatmap_head"] = head.to_extra()
    extra["heatmap_training"] = {
        **asdict(config),
        "data": str(Path(data).resolve()),
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "time_s": time.perf_counter() - started,
    }
    resave_with_extra(encoder, out, extra)
    log.info("heatmap head: loss %.3f -> %.3f in %d steps", losses[0], losses[-1], len(losses))
    return Path(out)


@command
def main(argv: Sequence[str] | None = None) -> int:
    d = HeatmapTrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m funk_perception.train.heatmap", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint whose encoder the head reads")
    parser.add_argument("--data", type=Path, required=True, help="FunKPoint-style CSV; its train-role rows are used")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (may be --model itself)")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument(
        "--dilations",
        type=int,
        nargs="+",
        default=list(d.dilations),
        help="dilation of each 3 x 3 layer after the first (2: a 7 x 7-cell field; 2 4: 15 x 15)",
    )
    parser.add_argument(
        "--input-dropout", type=float, default=d.input_dropout, help="channel dropout on the embeddings while training"
    )
    parser.add_argument(
        "--mixstyle",
        type=float,
        default=d.mixstyle,
        help="probability that a batch's trunk features swap channel statistics (MixStyle)",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.num_threads)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = HeatmapTrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        num_threads=args.threads,
        dilations=tuple(args.dilations),
        input_dropout=args.input_dropout,
        mixstyle=args.mixstyle,
    )
    out = add_heatmap_head(args.model, args.data, args.out, config, args.device)
    print(f"{args.model} + heatmap head ({args.steps} steps on {args.data}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
