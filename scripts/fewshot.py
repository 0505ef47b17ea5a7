"""Few-shot classification of object categories from functional features (paper Table 3; docs/DESIGN.md, "Few-shot classification").

``python scripts/fewshot.py --data CSV --model CKPT [--finetuned CLASSIFIER_CKPT]``

The default data are 20 distinct objects (one view each) of each of the 5 held-out
categories, rendered in seconds by ``python -m funk_perception.data.synth --out
datasets/synth-fewshot --categories bottle --instances-per-category 1
--views-per-instance 1 --heldout-instances-per-category 20`` (``heldout.csv``; the
one bottle is unused). ``scripts/make_results.sh`` runs both protocols of the
results page: that one, and the real-photo dev set.

The question is whether features learned for functional correspondence
describe objects well enough to tell new categories apart from one to five
examples. Every distinct image of the CSV is one sample labelled with its
object category. For each number of shots ``k`` and each of ``--splits``
random splits, ``k`` images per class train a linear classifier (L2-normalised
features, multinomial logistic regression, scikit-learn) and the rest of each
class test it. Every feature is computed on the same splits:

- the checkpoint's encoder: embeddings of all 10 tasks, spatially averaged and
  concatenated (10 x 128 = 1280-d; the paper's "ours");
- the checkpoint's frozen trunk, spatially averaged (the paper's "ImageNet");
- with ``--finetuned``, the trunk fine-tuned to classify the 20 training
  categories (``python scripts/classify.py``; the paper's "ImageNet FT").

Images that are the same photograph, also mirrored (a curated set may list one
photo under several tasks, some flipped), count once (scripts/fewshot_data.py).
Accuracy is pooled over the test images of a split; the balanced accuracy (mean
of per-class recalls) is reported too, since real sets are unbalanced. Mean and
standard deviation are over splits.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
from fewshot_data import ClassImages, distinct_class_images
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer
from tqdm import tqdm

from funk_perception.atomic import save_figure_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.model import FunctionalEncoder, Trunk, preprocess, resolve_device
from funk_perception.shipped import DEFAULT_CHECKPOINT
from funk_perception.tasks import CATEGORIES

#: Paper Table 3 (docs/DESIGN.md, "Few-shot classification"): few-shot accuracy (%) on 5 held-out FunKPoint-like categories, ResNet-50.
PAPER_TABLE3: Mapping[str, Mapping[str, float]] = {
    "ImageNet": {"1": 44.68, "2": 52.52, "5": 54.63},
    "ImageNet fine-tuned on FunKPoint categories": {"1": 45.03, "2": 53.91, "5": 55.55},
    "ours (task-driven modular network)": {"1": 47.46, "2": 55.68, "5": 56.32},
}

#: (B, 3, S, S) ImageNet-normalised images -> (B, D) pooled features.
FeatureFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FewShotConfig:
    """One few-shot benchmark; the defaults are the synthetic held-out protocol of the paper."""

    data: Path = Path("datasets/synth-fewshot/heldout.csv")
    model: Path = Path(DEFAULT_CHECKPOINT)
    finetuned: Path | None = None
    out: Path | None = None  # default results/fewshot-<csv folder>-<csv stem>
    shots: tuple[int, ...] = (1, 2, 5)
    splits: int = 3
    #: Use this many images per class (the first ones in CSV order); classes with fewer are left out.
    #: None: every distinct image.
    images_per_class: int | None = 20
    #: Leave out classes with fewer distinct images than this (and always those with <= max(shots)).
    min_images_per_class: int = 0
    seed: int = 0
    #: Inverse L2 regularisation of the logistic regression (one value for every method; nothing is tuned).
    C: float = 1.0
    device: str = "auto"
    batch_size: int = 16
    progress: bool = True
    #: What the classes are, for the tables ("synthetic held-out categories", "real photos").
    label: str = ""

    def __post_init__(self) -> None:
        self.data, self.model = Path(self.data), Path(self.model)
        self.finetuned = None if self.finetuned is None else Path(self.finetuned)
        self.out = None if self.out is None else Path(self.out)
        self.shots = tuple(int(k) for k in self.shots)
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"FewShotConfig.shots: expected positive numbers of training images, found {self.shots}")
        if self.splits < 1:
            raise ValueError(f"FewShotConfig.splits: expected >= 1, found {self.splits}")
        if self.images_per_class is not None and self.images_per_class <= max(self.shots):
            raise ValueError(
                f"FewShotConfig.images_per_class: expected more than the largest shot {max(self.shots)} "
                f"(at least one test image per class), found {self.images_per_class}"
            )
        if self.C <= 0:
            raise ValueError(f"FewShotConfig.C: expected > 0, found {self.C}")

    def output_dir(self) -> Path:
        if self.out is not None:
            return self.out
        return Path("results") / f"fewshot-{self.data.resolve().parent.name}-{self.data.stem}"


# --------------------------------------------------------------------------- splits and the probe


@dataclass(frozen=True)
class Split:
    """Indices into the sample list: ``shots`` training images per class, the rest for testing."""

    shots: int
    index: int
    train: np.ndarray
    test: np.ndarray


def make_splits(labels: Sequence[int], shots: Sequence[int], splits: int, seed: int) -> list[Split]:
    """Class-balanced random splits, the same for the same arguments.

    Split ``i`` of ``k`` shots draws, per class, a permutation from ``(seed, k, i)``
    and takes its first ``k`` images for training. Every class must have more than
    ``max(shots)`` images.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"make_splits: expected at least 2 classes, found {len(classes)}")
    if counts.min() <= max(shots):
        small = classes[counts <= max(shots)].tolist()
        raise ValueError(
            f"make_splits: expected more than {max(shots)} images in every class, classes {small} "
            f"have {counts[counts <= max(shots)].tolist()}"
        )
    members = {c: np.flatnonzero(labels == c) for c in classes}
    out = []
    for k in shots:
        for i in range(splits):
            rng = np.random.default_rng([seed, k, i])
            train, test = [], []
            for c in classes:
                order = members[c][rng.permutation(len(members[c]))]
                train.append(order[:k])
                test.append(order[k:])
            out.append(Split(k, i, np.sort(np.concatenate(train)), np.sort(np.concatenate(test))))
    return out


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, C: float = 1.0) -> np.ndarray:
    """Fit L2 normalisation + multinomial logistic regression on the training features; predict the test labels."""
    probe = make_pipeline(Normalizer(), LogisticRegression(C=C, max_iter=5000))
    probe.fit(train_x, train_y)
    return probe.predict(test_x)


def score_splits(features: np.ndarray, labels: np.ndarray, splits: Sequence[Split], C: float) -> dict:
    """Accuracy and balanced accuracy (%) per split and their mean / std per number of shots."""
    per_shot: dict[str, dict] = {}
    for split in splits:
        predicted = linear_probe(features[split.train], labels[split.train], features[split.test], C)
        truth = labels[split.test]
        row = {
            "split": split.index,
            "accuracy": 100.0 * float((predicted == truth).mean()),
            "balanced_accuracy": 100.0 * float(balanced_accuracy_score(truth, predicted)),
            "train_images": int(len(split.train)),
            "test_images": int(len(split.test)),
        }
        per_shot.setdefault(str(split.shots), {"per_split": []})["per_split"].append(row)
    for entry in per_shot.values():
        for metric in ("accuracy", "balanced_accuracy"):
            values = np.array([r[metric] for r in entry["per_split"]])
            entry[f"{metric}_mean"] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        entry["splits"] = len(entry["per_split"])
    return per_shot


# --------------------------------------------------------------------------- features


@dataclass
class FeatureMethod:
    """One row of the table: a pooled-feature function and where it came from."""

    name: str
    kind: str  # "trunk" | "finetuned" | "model"
    extract: FeatureFn
    image_size: int
    info: dict = field(default_factory=dict)


def _pooled_trunk(trunk: Trunk) -> FeatureFn:
    return lambda images: trunk(images).float().mean(dim=(2, 3))


def _pooled_encoder(encoder: FunctionalEncoder) -> FeatureFn:
    # (B, 10, D, h, w) -> average over the grid -> concatenate the 10 tasks
    return lambda images: encoder(images, None).float().mean(dim=(3, 4)).flatten(1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def feature_methods(config: FewShotConfig, device: torch.device) -> list[FeatureMethod]:
    """ImageNet trunk, fine-tuned trunk (with ``config.finetuned``) and the checkpoint's encoder."""
    encoder = FunctionalEncoder.load(config.model, device).eval()
    size = int(encoder.config.image_size)
    trunk_name = str(encoder.config.trunk)
    methods = [
        FeatureMethod(
            f"ImageNet {trunk_name} trunk",
            "trunk",
            _pooled_trunk(encoder.trunk),
            size,
            {"trunk": trunk_name, "feature": "stride-16 trunk features, spatial mean"},
        )
    ]
    if config.finetuned is not None:
        from classify import load_finetuned_trunk, read_classifier_checkpoint

        payload = read_classifier_checkpoint(config.finetuned)
        if payload["trunk"] != trunk_name:
            raise ValueError(
                f"{config.finetuned}: fine-tuned trunk is {payload['trunk']!r}, the checkpoint "
                f"{config.model} uses {trunk_name!r}; compare like with like"
            )
        methods.append(
            FeatureMethod(
                f"{trunk_name} trunk fine-tuned on the {len(payload['classes'])} training categories",
                "finetuned",
                _pooled_trunk(load_finetuned_trunk(config.finetuned, device)),
                size,
                {
                    "checkpoint": str(config.finetuned),
                    "checkpoint_sha256": _sha256(config.finetuned),
                    "steps": payload["step"],
                    "category_test_accuracy": payload["extra"].get("test_accuracy"),
                    "feature": "stride-16 trunk features, spatial mean",
                },
            )
        )
    methods.append(
        FeatureMethod(
            f"funk: {encoder.config.modular.gating} gating ({config.model.name})",
            "model",
            _pooled_encoder(encoder),
            size,
            {
                "checkpoint": str(config.model),
                "checkpoint_sha256": _sha256(config.model),
                "gating": str(encoder.config.modular.gating),
                "feature": "embeddings of all 10 tasks, spatial mean, concatenated",
            },
        )
    )
    return methods


def compute_features(
    method: FeatureMethod, images: ClassImages, batch_size: int = 16, progress: bool = False
) -> np.ndarray:
    """(N, D) float64 pooled features of every image, in order."""
    out = []
    starts = range(0, len(images.paths), batch_size)
    for start in tqdm(starts, desc=f"features {method.name}", disable=not progress, leave=False):
        batch = preprocess(
            [images.load(i) for i in range(start, min(start + batch_size, len(images.paths)))], size=method.image_size
        )
        with torch.inference_mode():
            out.append(method.extract(batch).cpu().double().numpy())
    return np.concatenate(out)


# --------------------------------------------------------------------------- tables, figure, entry points


def _cell(entry: Mapping | None, metric: str = "accuracy") -> str:
    if not entry:
        return "-"
    return f"{entry[f'{metric}_mean']:.1f} ± {entry[f'{metric}_std']:.1f}"


def markdown_table(results: Mapping, metric: str = "accuracy", paper: bool = True) -> str:
    """Methods x shots, ``mean ± std`` over splits, with the paper's Table 3 rows beneath (when ``paper``)."""
    shots = [str(k) for k in results["shots"]]
    lines = ["| method | " + " | ".join(f"{k}-shot" for k in shots) + " |", "|---" * (1 + len(shots)) + "|"]
    for row in results["methods"]:
        lines.append(f"| {row['name']} | " + " | ".join(_cell(row["results"].get(k), metric) for k in shots) + " |")
    if paper:
        for name, values in results["paper_table3"].items():
            lines.append(
                f"| paper Table 3: {name} | "
                + " | ".join(f"{values[k]:.2f}" if k in values else "-" for k in shots)
                + " |"
            )
    return "\n".join(lines)


def markdown_report(results: Mapping) -> str:
    classes = ", ".join(f"{c} ({n})" for c, n in results["images_per_class"].items())
    lines = [
        f"# Few-shot classification: {results['data']}",
        "",
        f"{len(results['classes'])} classes, distinct images per class: {classes}; "
        f"{results['splits_per_shot']} random splits per shot count, seed {results['seed']}. "
        "Accuracy (%) on the images not used for training, mean ± std over splits.",
        "",
        markdown_table(results),
        "",
        "Balanced accuracy (mean per-class recall, %):",
        "",
        markdown_table(results, "balanced_accuracy", paper=False),
        "",
    ]
    if results["dropped_classes"]:
        lines.insert(
            3,
            "Left out (too few distinct images): "
            + ", ".join(f"{c} ({n})" for c, n in results["dropped_classes"].items())
            + ".",
        )
    return "\n".join(lines)


def plot_accuracy(results: Mapping, path: Path) -> None:
    """Accuracy vs shots, one line per method with the spread over splits as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    shots = [str(k) for k in results["shots"]]
    for row in results["methods"]:
        ks = [k for k in shots if k in row["results"]]
        ax.errorbar(
            [int(k) for k in ks],
            [row["results"][k]["accuracy_mean"] for k in ks],
            yerr=[row["results"][k]["accuracy_std"] for k in ks],
            marker="o",
            capsize=3,
            label=row["name"],
        )
    ax.set_xticks([int(k) for k in shots])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Few-shot classification, {len(results['classes'])} classes", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)


def _run_info(device: torch.device) -> dict:
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "device": str(device),
        **({"gpu": torch.cuda.get_device_name(0)} if device.type == "cuda" else {}),
    }


def run_fewshot(config: FewShotConfig, command: str | None = None) -> dict:
    """Run the benchmark; write ``fewshot.json``, ``fewshot.md`` and ``fewshot.png`` into ``config.output_dir()``."""
    images = distinct_class_images(
        config.data, config.images_per_class, max(config.min_images_per_class, max(config.shots) + 1)
    )
    labels = np.array([images.classes.index(c) for c in images.labels])
    splits = make_splits(labels, config.shots, config.splits, config.seed)
    device = resolve_device(config.device)
    rows = []
    for method in feature_methods(config, device):
        features = compute_features(method, images, config.batch_size, config.progress)
        rows.append(
            {
                "name": method.name,
                "kind": method.kind,
                "feature_dim": int(features.shape[1]),
                "info": method.info,
                "results": score_splits(features, labels, splits, config.C),
            }
        )
    results = {
        "kind": "fewshot",
        "label": config.label,
        "command": command or "run_fewshot(" + json.dumps({k: str(v) for k, v in asdict(config).items()}) + ")",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": _run_info(device),
        "data": str(config.data),
        "seed": config.seed,
        "shots": list(config.shots),
        "splits_per_shot": config.splits,
        "classifier": f"L2-normalised features, scikit-learn LogisticRegression(C={config.C}, lbfgs, multinomial)",
        "classes": list(images.classes),
        "images_per_class": images.counts(),
        "dropped_classes": dict(images.dropped),
        "duplicates_removed": images.duplicates_removed,
        "classes_seen_in_training": [c for c in images.classes if c in CATEGORIES],
        "methods": rows,
        "paper_table3": {k: dict(v) for k, v in PAPER_TABLE3.items()},
    }
    out = config.output_dir()
    write_text_atomic(out / "fewshot.json", json.dumps(results, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out / "fewshot.md", markdown_report(results))
    plot_accuracy(results, out / "fewshot.png")
    return results


def build_parser() -> argparse.ArgumentParser:
    d = FewShotConfig()
    p = argparse.ArgumentParser(prog="python scripts/fewshot.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=d.data, help="FunKPoint-style CSV; each distinct image is one sample")
    p.add_argument("--model", type=Path, default=d.model, help="funk encoder checkpoint")
    p.add_argument(
        "--finetuned",
        type=Path,
        default=None,
        help="trunk fine-tuned on the training categories (python scripts/classify.py)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/fewshot-<data name>)")
    p.add_argument("--shots", type=int, nargs="+", default=list(d.shots))
    p.add_argument("--splits", type=int, default=d.splits, help="random splits per shot count")
    p.add_argument("--images-per-class", type=int, default=d.images_per_class, help="0: all distinct images")
    p.add_argument("--min-images-per-class", type=int, default=d.min_images_per_class)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--C", type=float, default=d.C, help="inverse regularisation of the logistic regression")
    p.add_argument("--device", default=d.device)
    p.add_argument("--label", default=d.label, help="what the classes are, for the tables")
    p.add_argument("--no-progress", action="store_true")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    config = FewShotConfig(
        data=args.data,
        model=args.model,
        finetuned=args.finetuned,
        out=args.out,
        shots=tuple(args.shots),
        splits=args.splits,
        images_per_class=args.images_per_class or None,
        min_images_per_class=args.min_images_per_class,
        seed=args.seed,
        C=args.C,
        device=args.device,
        progress=not args.no_progress,
        label=args.label,
    )
    command = "python scripts/fewshot.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    results = run_fewshot(config, command=command)
    print(markdown_report(results))
    print(f"wrote {config.output_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
