"""Training of the task-conditioned encoder on cached trunk features (docs/DESIGN.md, "Training loss").

One step: draw ``batch_pairs`` pairs (same task, different instances, a share of
them cross-category) from the train-role rows, give each side a random cached
view of its image, run the head ONCE per unique (view, task) in the batch as one
per-sample-gated forward, and apply the loss of :mod:`funk_perception.train.loss`.
SGD with the paper's lr 0.01, momentum 0.9, weight decay 1e-5.

Resuming: ``train_state.pt`` holds the head, the optimizer, the step, the pair
sampler's generator and the python/numpy/torch RNG states, all in one atomically
written file; each step's view choice is drawn from ``default_rng([seed, step])``,
so a run resumed from step k repeats exactly what an unbroken run does after k.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from funk_perception.atomic import save_figure_atomic, torch_save_atomic
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.data.pairs import PairSampler
from funk_perception.model.encoder import EncoderConfig, FunctionalEncoder, named_config, resolve_device
from funk_perception.model.trunk import build_trunk
from funk_perception.tasks import TASKS
from funk_perception.train.augment import AugmentConfig
from funk_perception.train.cache import FeatureCache, build_cache, default_cache_folder, make_key
from funk_perception.train.feature_style import mix_style
from funk_perception.train.loss import correspondence_loss
from funk_perception.train.prototypes import compute_prototypes

STATE_FILE = "train_state.pt"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
CURVE_FILE = "loss_curve.png"
METRIC_COLUMNS = ("step", "loss", "train_pck", "lr", "pairs_per_s", "elapsed_s", "logit_scale", "valid_keypoints")
#: Fields that may differ between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "progress", "device", "cache_batch", "num_threads")

log = logging.getLogger("funk_perception.train")


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults train the paper configuration.

    ``batch_pairs`` defaults to 64, not the paper's 256: on two CPU cores a
    256-pair step of the paper head takes seconds, and at this batch the
    gradient noise is still small next to SGD's; pass ``--batch-pairs 256`` on
    a GPU. ``encoder_overrides`` are dotted EncoderConfig fields
    (``{"temperature": 0.05, "modular.filters": 64}``). ``image_size`` 0 means
    the encoder config's.
    """

    encoder: str = "paper"
    encoder_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = "datasets/synth/annotations.csv"
    trunk_weights: str = ""
    pretrained_trunk: bool = True
    image_size: int = 0
    views: int = 4
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_seed: int = 0
    cross_category_fraction: float = 0.5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_pairs: int = 64
    steps: int = 3000
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"
    cache_root: str = "cache/features"
    cache_batch: int = 32
    num_threads: int = 2
    prototype_views: int = 0  # first N cached views per image for prototypes; 0 = all
    mixstyle: float = 0.0  # probability that a step's trunk features swap channel statistics (feature_style)
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()})
        for name in ("views", "batch_pairs", "checkpoint_every", "num_threads", "cache_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name}: expected >= 1, found {getattr(self, name)}")
        if int(self.steps) < 0:
            raise ValueError(f"TrainConfig.steps: expected >= 0, found {self.steps}")
        if not 0.0 <= self.mixstyle <= 1.0:
            raise ValueError(f"TrainConfig.mixstyle: expected a probability in [0, 1], found {self.mixstyle}")
        if not 0.0 <= self.cross_category_fraction <= 1.0:
            raise ValueError(
                f"TrainConfig.cross_category_fraction: expected in [0, 1], found {self.cross_category_fraction}"
            )

    def encoder_config(self) -> EncoderConfig:
        values = asdict(named_config(self.encoder))
        for dotted, value in self.encoder_overrides.items():
            node = values
            *parents, leaf = dotted.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ValueError(f"TrainConfig.encoder_overrides: {dotted!r} is not an EncoderConfig field")
                node = node[part]
            if leaf not in node:
                raise ValueError(
                    f"TrainConfig.encoder_overrides: {dotted!r} is not an EncoderConfig field; "
                    f"expected one of {sorted(node)}"
                )
            node[leaf] = value
        return EncoderConfig.from_dict(values)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    steps_done: int
    final_loss: float
    final_pck: float
    pairs_per_s: float
    train_time_s: float
    cache_reused: bool


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sampler_state(sampler: PairSampler) -> dict:
    if hasattr(sampler, "state_dict"):
        return sampler.state_dict()
    return {"bit_generator": sampler._rng.bit_generator.state}  # the sampler's one stream of draws


def _load_sampler_state(sampler: PairSampler, state: dict) -> None:
    if hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state)
    else:
        sampler._rng.bit_generator.state = state["bit_generator"]


def _numpy_state() -> dict:
    # As plain lists and ints, so the state file loads with torch.load(weights_only=True).
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state: dict) -> None:
    np.random.set_state(
        (state["name"], np.asarray(state["key"], dtype=np.uint32), state["pos"], state["has_gauss"], state["gauss"])
    )


class Trainer:
    """The optimisation state and one training step over a feature cache."""

    def __init__(
        self, config: TrainConfig, encoder: FunctionalEncoder, cache: FeatureCache, device: torch.device
    ) -> None:
        self.config = config
        self.encoder = encoder.to(device)
        self.cache = cache
        self.device = device
        self.sampler = PairSampler(
            cache.annotations, seed=config.seed, cross_category_fraction=config.cross_category_fraction
        )
        decay = [p for n, p in encoder.named_parameters() if p.requires_grad and n != "log_logit_scale"]
        no_decay = [p for n, p in encoder.named_parameters() if p.requires_grad and n == "log_logit_scale"]
        groups: list[dict] = [{"params": decay}]
        if no_decay:  # a temperature is not a weight: decaying it would pull the scale towards 1
            groups.append({"params": no_decay, "weight_decay": 0.0})
        self.optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.step_count = 0

    def step(self) -> dict[str, float]:
        cfg, cache = self.config, self.cache
        pairs = self.sampler.sample(cfg.batch_pairs)
        rng = np.random.default_rng([cfg.seed, self.step_count])
        n = len(pairs)
        annotations = np.array([[p.source for p in pairs], [p.target for p in pairs]])  # (2, n)
        images = cache.image_of_annotation[annotations]
        views = cache.view_id(images, rng.integers(cache.views_per_image, size=(2, n))).reshape(-1)  # src then tgt
        tasks = np.tile(np.array([TASKS.index(p.task) for p in pairs]), 2)
        combos, inverse = np.unique(views * len(TASKS) + tasks, return_inverse=True)
        unique_views, unique_tasks = combos // len(TASKS), combos % len(TASKS)

        self.encoder.train()
        features = cache.load_features(unique_views).to(self.device)
        if cfg.mixstyle > 0 and rng.random() < cfg.mixstyle:  # no draw at 0: runs without it are unchanged
            features = mix_style(features, rng)
        embedding = self.encoder.embed_per_sample(features, torch.from_numpy(unique_tasks).to(self.device))
        inverse_t = torch.from_numpy(inverse.reshape(-1)).to(self.device)
        source, target = embedding[inverse_t[:n]], embedding[inverse_t[n:]]
        keypoints = torch.from_numpy(cache.keypoints[views, tasks]).to(self.device)  # (2n, 5, 2)
        visible = torch.from_numpy(cache.visible[views, tasks]).to(self.device)
        out = correspondence_loss(
            source, target, keypoints[:n], keypoints[n:], visible[:n] & visible[n:], self.encoder.logit_scale
        )
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.step_count += 1
        return {
            "loss": float(out.loss.item()),
            "train_pck": out.pck,
            "valid_keypoints": out.num_valid,
            "logit_scale": float(self.encoder.logit_scale.item()),
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "model": {k: v.detach().cpu().clone() for k, v in self.encoder.head_state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "sampler": _sampler_state(self.sampler),
            "rng": {
                "python": random.getstate(),
                "numpy": _numpy_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "config": self.config.to_json(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing, unexpected = self.encoder.load_state_dict(state["model"], strict=False)
        missing = [k for k in missing if not k.startswith("trunk.")]
        if missing or unexpected:
            raise ValueError(
                f"{STATE_FILE}: model state does not match the config: missing {missing}, unexpected {unexpected}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        _load_sampler_state(self.sampler, state["sampler"])
        random.setstate(state["rng"]["python"])
        _set_numpy_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step_count = int(state["step"])


def _check_resume_config(saved: dict, current: dict, path: Path) -> None:
    # A run saved before a field existed trained with that field's default: only a changed value blocks it.
    saved = {**TrainConfig().to_json(), **saved}
    changed = sorted(
        k for k in set(saved) | set(current) if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )
    if changed:
        details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in changed)
        raise ValueError(f"{path}: cannot resume with a different configuration ({details}); use a new --out")


def _read_metrics(path: Path, up_to_step: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


def plot_loss_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """Loss and train PCK against step, raw and smoothed, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([float(r["step"]) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, column, label in ((axes[0], "loss", "loss"), (axes[1], "train_pck", "train PCK@0.1")):
        values = np.array([float(r[column]) for r in rows])
        ax.plot(steps, values, alpha=0.3, color="C0")
        window = max(1, len(values) // 50)
        if len(values) >= window > 1:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, color="C0")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def prepare_cache(
    config: TrainConfig, encoder_config: EncoderConfig, trunk: torch.nn.Module, dataset: FunKPointDataset
) -> FeatureCache:
    size = config.image_size or encoder_config.image_size
    # A random trunk (tests) depends on the seed, so the seed is part of its identity.
    weights = config.trunk_weights if config.pretrained_trunk else f"random(seed={config.seed})"
    key = make_key(config.data, encoder_config.trunk, weights, size, config.views, config.augment_seed, config.augment)
    folder = default_cache_folder(config.cache_root, key)
    return build_cache(
        folder, dataset, trunk, key, config.augment, config.cache_batch, config.num_threads, config.progress
    )


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train (or resume) into ``out_dir``; returns where the checkpoint is and the final numbers.

    ``stop_after``: leave after this many steps of this run, exactly as a kill
    right after a step would (no final checkpoint or prototypes); for tests and
    time-boxed sessions. Writes ``checkpoint.pt`` (encoder + prototypes +
    provenance), ``train_state.pt``, ``metrics.csv``, ``train.log`` and ``loss_curve.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _train(config, out, resume, stop_after)
    finally:
        torch.set_num_threads(previous_threads)
        log.removeHandler(handler)
        handler.close()


def _train(config: TrainConfig, out: Path, resume: bool, stop_after: int | None) -> TrainResult:
    started = time.perf_counter()
    device = resolve_device(config.device)
    encoder_config = config.encoder_config()
    log.info("config %s", json.dumps(config.to_json()))
    set_seed(config.seed)
    trunk = build_trunk(encoder_config.trunk, weights=config.trunk_weights or None, pretrained=config.pretrained_trunk)
    trunk = trunk.to(device)
    dataset = FunKPointDataset(config.data, roles=["train"])
    cache = prepare_cache(config, encoder_config, trunk, dataset)
    log.info(
        "feature cache %s (%s), %d images x %d views",
        cache.folder,
        "reused" if cache.reused else "built",
        cache.num_images,
        cache.views_per_image,
    )
    set_seed(config.seed)  # the head's initialisation must not depend on whether the cache was built
    encoder = FunctionalEncoder(encoder_config, trunk=trunk)
    trainer = Trainer(config, encoder, cache, device)

    state_path = out / STATE_FILE
    elapsed_before = 0.0
    if resume and state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated file, foreign pickle...: say which file and why
            raise ValueError(f"{state_path}: unreadable training state ({type(error).__name__}: {error})") from error
        _check_resume_config(state["config"], config.to_json(), state_path)
        trainer.load_state_dict(state)
        elapsed_before = float(state.get("elapsed_s", 0.0))
        log.info("resumed from %s at step %d", state_path, trainer.step_count)
    elif resume:
        log.info("--resume: no %s yet, starting from step 0", state_path)
    elif state_path.is_file():
        raise FileExistsError(f"{state_path} exists: pass --resume to continue that run, or choose a new --out")

    metrics_path = out / METRICS_FILE
    rows: list[dict[str, Any]] = _read_metrics(metrics_path, trainer.step_count)
    with metrics_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    writer_tb = _tensorboard(out)

    def save(final: bool) -> Path:
        state = trainer.state_dict()
        state["elapsed_s"] = elapsed_before + time.perf_counter() - started
        torch_save_atomic(state, state_path)
        extra: dict[str, Any] = {
            "step": trainer.step_count,
            "train_config": config.to_json(),
            "data": {
                "csv": str(Path(config.data).resolve()),
                "csv_sha256": cache.key["csv_sha256"],
                "train_rows": len(dataset.annotations),
                "train_images": cache.num_images,
                "views_per_image": cache.views_per_image,
                "tasks": [t for t in TASKS if t in dataset.tasks],
            },
            "train_time_s": state["elapsed_s"],
        }
        if final:
            views = None if config.prototype_views == 0 else range(min(config.prototype_views, cache.views_per_image))
            prototypes, counts = compute_prototypes(trainer.encoder, cache, views)
            extra["prototypes"] = prototypes
            extra["prototype_counts"] = counts
        path = out / CHECKPOINT_FILE
        trainer.encoder.save(path, extra)
        return path

    loop_started = time.perf_counter()
    done_here = 0
    last: dict[str, float] = {"loss": float("nan"), "train_pck": float("nan")}
    pairs_per_s = float("nan")
    bar = tqdm(total=config.steps, initial=trainer.step_count, desc="train", unit="step", disable=not config.progress)
    with metrics_path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        while trainer.step_count < config.steps:
            if stop_after is not None and done_here >= stop_after:
                bar.close()
                return TrainResult(
                    out,
                    out / CHECKPOINT_FILE,
                    trainer.step_count,
                    last["loss"],
                    last["train_pck"],
                    pairs_per_s,
                    elapsed_before + time.perf_counter() - started,
                    cache.reused,
                )
            tick = time.perf_counter()
            last = trainer.step()
            done_here += 1
            pairs_per_s = config.batch_pairs / max(time.perf_counter() - tick, 1e-9)
            row = {
                "step": trainer.step_count,
                **{k: last[k] for k in ("loss", "train_pck", "lr", "logit_scale", "valid_keypoints")},
                "pairs_per_s": round(pairs_per_s, 2),
                "elapsed_s": round(elapsed_before + time.perf_counter() - started, 2),
            }
            writer.writerow(row)
            handle.flush()
            rows.append(row)
            if writer_tb is not None:
                for key in ("loss", "train_pck", "logit_scale", "pairs_per_s"):
                    writer_tb.add_scalar(f"train/{key}", float(row[key]), trainer.step_count)
            bar.set_postfix(loss=f"{last['loss']:.3f}", pck=f"{last['train_pck']:.2f}")
            bar.update(1)
            if trainer.step_count % config.checkpoint_every == 0 and trainer.step_count < config.steps:
                save(final=False)
                log.info("step %d loss %.4f pck %.3f: checkpoint", trainer.step_count, last["loss"], last["train_pck"])
    bar.close()
    loop_time = time.perf_counter() - loop_started
    mean_rate = config.batch_pairs * done_here / loop_time if done_here else float("nan")
    checkpoint = save(final=True)
    if writer_tb is not None:
        writer_tb.close()
    if rows:
        plot_loss_curve(rows, out / CURVE_FILE)
    total = elapsed_before + time.perf_counter() - started
    log.info(
        "done: %d steps, loss %.4f, train pck %.3f, %.1f pairs/s, %.0f s; checkpoint %s",
        trainer.step_count,
        last["loss"],
        last["train_pck"],
        mean_rate,
        total,
        checkpoint,
    )
    return TrainResult(
        out, checkpoint, trainer.step_count, last["loss"], last["train_pck"], mean_rate, total, cache.reused
    )
