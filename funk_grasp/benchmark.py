"""The grasp benchmark: the paper's Table 4 rows on the same splits and seeds (``python -m funk_grasp.benchmark``).

Rows (docs/DESIGN.md, "Grasp success"): ``trunk`` (ImageNet EfficientNet-Lite0 features),
``trunk_categories`` (its last stage fine-tuned to classify the 20 training
categories, :mod:`funk_grasp.categories`), ``funk`` (the shipped funk
encoder's task embeddings). Each row is trained with every seed, in head
mode (frozen features, MLP head) and, with ``--modes head joint``, jointly
fine-tuned at lr 2e-4 (the trunk's last stage, the funk modular network and
the head). Results: accuracy and ROC AUC on ``Test`` (object instances never
trained on) and ``TestHeldout`` (the 5 held-out categories), mean and
standard deviation over seeds, beside the paper's accuracies.

Before the rows, the pooling and the funk task set are chosen on the
validation split (head mode, the same seeds): every pooling for the trunk,
every pooling x {all 10 tasks, lift_something} for funk; the best mean
validation AUC wins. That measurement is part of the output.

Outputs under ``--out`` (default benchmarks/results), named by ``--name``
(default ``grasp``): ``grasp.json``, ``grasp.md``, ``grasp_roc.png`` (ROC
curves, first seed) and ``grasp_angles.png`` (predicted success over the 18 angles at grasp points of
test scenes, simulated data only). Checkpoints go to ``--runs``.
"""

from __future__ import annotations

import csv
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

from funk_grasp.draw import draw_angle_fan
from funk_grasp.features import CACHE, file_identity, top_features
from funk_grasp.model import DEFAULT_ENCODER, FEATURE_KINDS, POOLINGS, FeatureConfig, GraspModel, load_encoder
from funk_grasp.predict import score_grasps
from funk_grasp.train import MODES, Split, TrainConfig, fit, load_split, metrics, predict_split
from funk_perception.atomic import save_figure_atomic, write_json_atomic, write_text_atomic
from funk_perception.cli import arg, command, parse_config
from funk_perception.model import resolve_device
from funk_perception.tasks import TASKS

LOG = logging.getLogger("funk_grasp.benchmark")
#: Paper Table 4 (accuracy %, Pinto-Gupta robot data, ResNet-50 trunk; docs/DESIGN.md, "Grasp success").
PAPER_ACCURACY = {"trunk": 88.17, "trunk_categories": 88.64, "funk": 89.85}
ROW_NAMES = {
    "trunk": "trunk only (ImageNet)",
    "trunk_categories": "trunk fine-tuned on the 20 categories",
    "funk": "funk features",
}
TASK_SETS: dict[str, tuple[str, ...]] = {"all": TASKS, "lift_something": ("lift_something",)}
TEST_SPLITS: tuple[str, ...] = ("Test", "TestHeldout")


@dataclass
class BenchmarkConfig:
    data: Path = field(
        default=Path("datasets/grasp"),
        metadata=arg("simulated dataset or a Pinto-Gupta folder (Train/ Validation/ Test/)"),
    )
    heldout_data: Path | None = field(  # generate --categories with none makes such a dataset
        default=None,
        metadata=arg(
            "a dataset whose TestHeldout/ replaces the one in --data (more held-out-category attempts)", type=Path
        ),
    )
    out: Path = Path("benchmarks/results")
    runs: Path = Path("runs/grasp-benchmark")
    encoder: Path = DEFAULT_ENCODER
    categories_checkpoint: Path = Path("runs/grasp/trunk_categories.pt")
    rows: tuple[str, ...] = field(default=FEATURE_KINDS, metadata=arg(choices=FEATURE_KINDS))
    modes: tuple[str, ...] = field(default=("head",), metadata=arg(choices=MODES))
    seeds: tuple[int, ...] = (0, 1, 2)
    head_epochs: int = 40
    joint_epochs: int = 3
    measure_pooling: bool = field(default=True, metadata=arg(false_flags=("--no-pooling-measurement",)))
    pooling: str = field(default="mean_centre", metadata=arg(choices=POOLINGS))  # used when measure_pooling is off
    task_set: str = field(default="all", metadata=arg(choices=sorted(TASK_SETS)))
    figures: bool = True
    #: output file stem under out: <name>.json, <name>.md, <name>_roc.png, <name>_angles.png
    name: str = field(default="grasp", metadata=arg("output file stem"))
    device: str = "auto"

    def __post_init__(self) -> None:
        for row in self.rows:
            if row not in FEATURE_KINDS:
                raise ValueError(
                    f"BenchmarkConfig.rows: expected a subset of {', '.join(FEATURE_KINDS)}, found {row!r}"
                )
        for mode in self.modes:
            if mode not in MODES:
                raise ValueError(f"BenchmarkConfig.modes: expected a subset of {', '.join(MODES)}, found {mode!r}")
        if not self.seeds:
            raise ValueError("BenchmarkConfig.seeds: expected at least one seed")
        if self.task_set not in TASK_SETS:
            raise ValueError(
                f"BenchmarkConfig.task_set: expected one of {', '.join(TASK_SETS)}, found {self.task_set!r}"
            )


@dataclass
class Data:
    splits: dict[str, Split]
    cached: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # feature key -> split -> pooled features


def _feature_config(kind: str, pooling: str, tasks: tuple[str, ...], config: BenchmarkConfig) -> FeatureConfig:
    return FeatureConfig(
        kind=kind,
        tasks=tasks,
        pooling=pooling,
        encoder=str(config.encoder),
        categories_checkpoint=str(config.categories_checkpoint) if kind == "trunk_categories" else "",
    )


def _slice(features: torch.Tensor, pooling: str, task_index: Sequence[int], dim: int, maps: int) -> torch.Tensor:
    """Cut one pooling / task subset out of mean_centre features over all ``maps`` task maps of ``dim`` each."""
    halves = features.reshape(len(features), 2, maps, dim)[:, :, list(task_index)]
    if pooling == "mean":
        halves = halves[:, :1]
    elif pooling == "centre":
        halves = halves[:, 1:]
    return halves.reshape(len(features), -1)


def _all_features(
    kind: str, tasks: tuple[str, ...], data: Data, encoder, config: BenchmarkConfig, device
) -> dict[str, torch.Tensor]:
    """mean_centre features of the ``tasks`` maps, per split (computed once per kind and task set)."""
    key = f"{kind}/{','.join(tasks)}"
    if key not in data.cached:
        model = GraspModel(_feature_config(kind, "mean_centre", tasks, config), encoder).to(device)
        data.cached[key] = {
            name: top_features(model.features, split.maps, progress=True, cache=CACHE)
            for name, split in data.splits.items()
        }
    return data.cached[key]


def features_for(fc: FeatureConfig, data: Data, encoder, config: BenchmarkConfig, device) -> dict[str, torch.Tensor]:
    """Pooled head-mode features of ``fc``, cut out of the all-task features when the measurement computed them."""
    if fc.kind == "funk":
        # the pooling measurement needs every task anyway; a fixed choice computes only its own tasks
        tasks = TASKS if config.measure_pooling else fc.tasks
        idx, dim = [tasks.index(t) for t in fc.tasks], encoder.embedding_dim
    else:
        tasks, idx, dim = TASKS, [0], encoder.trunk.out_channels
    full = _all_features(fc.kind, tasks, data, encoder, config, device)
    maps = len(tasks) if fc.kind == "funk" else 1
    return {name: _slice(f, fc.pooling, idx, dim, maps) for name, f in full.items()}


def _train_config(config: BenchmarkConfig, fc: FeatureConfig, mode: str, seed: int, tag: str) -> TrainConfig:
    return TrainConfig(
        data=config.data,
        out=config.runs / tag / f"{fc.kind}-{mode}-seed{seed}",
        features=fc,
        mode=mode,
        epochs=config.head_epochs if mode == "head" else config.joint_epochs,
        seed=seed,
        device=config.device,
    )


def run_one(
    fc: FeatureConfig,
    mode: str,
    seed: int,
    data: Data,
    encoder,
    config: BenchmarkConfig,
    device,
    tag: str,
    evaluate: Sequence[str],
) -> tuple[dict, dict[str, np.ndarray], GraspModel]:
    """Train one (features, mode, seed); return metrics and probabilities on the ``evaluate`` splits."""
    torch.manual_seed(seed)
    tc = _train_config(config, fc, mode, seed, tag)
    model = GraspModel(fc, encoder, tc.hidden, tc.dropout).to(device)
    feats = features_for(fc, data, encoder, config, device) if mode == "head" else None
    fit(
        model,
        data.splits["Train"],
        data.splits["Validation"],
        tc,
        progress=mode == "joint",
        train_feats=feats["Train"] if feats else None,
        val_feats=feats["Validation"] if feats else None,
    )
    result, probs = {}, {}
    for name in evaluate:
        if name not in data.splits:
            continue
        p = predict_split(model, data.splits[name], feats[name] if feats else None)
        probs[name] = p
        result[name] = metrics(data.splits[name].labels.numpy(), p)
    return result, probs, model


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(arr)), "std": float(np.nanstd(arr)), "values": [float(v) for v in arr]}


def measure_pooling(data: Data, encoder, config: BenchmarkConfig, device) -> dict:
    """Validation AUC of every pooling (and funk task set), head mode, over the seeds."""
    results: dict = {}
    for kind, task_sets in (("trunk", {"-": TASKS}), ("funk", TASK_SETS)):
        if kind not in config.rows and not (kind == "trunk" and "trunk_categories" in config.rows):
            continue
        for set_name, tasks in task_sets.items():
            for pooling in POOLINGS:
                fc = _feature_config(kind, pooling, tasks, config)
                # one folder per choice, so every measured run's metrics.csv and best.pt stay on disk
                tag = f"pooling/{set_name if kind == 'funk' else 'all'}-{pooling}"
                aucs = [
                    run_one(fc, "head", s, data, encoder, config, device, tag, ["Validation"])[0]["Validation"]["auc"]
                    for s in config.seeds
                ]
                results[f"{kind}|{set_name}|{pooling}"] = _summary(aucs)
                LOG.info("pooling %s %s %s: validation AUC %.3f", kind, set_name, pooling, np.mean(aucs))
    return results


def _choice(pooling_results: dict, kind: str) -> tuple[str, str]:
    options = {k: v["mean"] for k, v in pooling_results.items() if k.startswith(kind + "|")}
    best = max(options, key=options.get)
    _, task_set, pooling = best.split("|")
    return (task_set if task_set != "-" else "all"), pooling


def _roc_figure(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    splits = sorted({s for c in curves.values() for s in c})
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for label, per_split in curves.items():
            if split in per_split:
                y, p = per_split[split]
                fpr, tpr, _ = roc_curve(y, p)
                ax.plot(fpr, tpr, label=label)
        ax.plot([0, 1], [0, 1], color="0.7", linestyle=":")
        ax.set_title({"Test": "held-out instances", "TestHeldout": "held-out categories"}.get(split, split))
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=90)


def _angle_figure(
    models: dict[str, GraspModel], data_dir: Path, path: Path, scenes: int = 4, patch_size: int = 128
) -> None:
    """For a few test scenes: success over the 18 angles at their first successful attempt point, per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attempts = data_dir / "attempts.csv"
    if not attempts.is_file():
        return
    rows = [
        r for r in csv.DictReader(open(attempts, newline="")) if r["split"] in TEST_SPLITS and r["success"] == "True"
    ]
    picked, seen = [], set()
    for r in rows:
        scene = f"{r['instance']}_p{r['placement']}"
        if r["category"] not in seen:
            seen.add(r["category"])
            picked.append((scene, r))
        if len(picked) == scenes:
            break
    if not picked:
        return
    fig, axes = plt.subplots(len(picked), len(models), figsize=(3.2 * len(models), 3.2 * len(picked)), squeeze=False)
    for i, (scene, r) in enumerate(picked):
        image = cv2.cvtColor(cv2.imread(str(data_dir / "scenes" / r["category"] / f"{scene}.png")), cv2.COLOR_BGR2RGB)
        x, y = float(r["x"]), float(r["y"])
        for j, (label, model) in enumerate(models.items()):
            probs = score_grasps(model, image, np.array([[x, y]]), patch_size)[0]
            canvas = draw_angle_fan(image.copy(), x, y, probs, patch_size * 0.9)
            h = patch_size
            x0, y0 = int(max(0, x - h)), int(max(0, y - h))
            ax = axes[i][j]
            ax.imshow(canvas[y0 : y0 + 2 * h, x0 : x0 + 2 * h])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{r['category']}\nsuccess at {float(r['angle']) * 180 / np.pi:.0f} deg", fontsize=8)
    fig.suptitle("predicted success over the 18 angles (line length and colour: red 0 to green 1)", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=80)


def _markdown(result: dict) -> str:
    lines = [
        "# Grasp-success benchmark (paper Table 4 rows)",
        "",
        f"Command: `{result['command']}`; {result['machine']}, {result['date']}.",
        f"Encoder: `{result.get('encoder', '?')}` (sha256 {result.get('encoder_sha256', '?')}...).",
        f"Data: `{result['data']}` ({result['data_kind']}); seeds {result['seeds']}; accuracy at p = 0.5 and ROC AUC, "
        "mean +- standard deviation over seeds (training randomness only: every seed sees the same splits).",
        "",
        *(
            []
            if result.get("complete", True)
            else ["**Partial: the run was still going (or was stopped) after these rows.**", ""]
        ),
        "| row | mode | Test acc % | Test AUC | TestHeldout acc % | TestHeldout AUC | paper acc % (robot data) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in result["rows"].items():
        kind, mode = key.split("/")
        cells = []
        for split in TEST_SPLITS:
            if split in row:
                a, u = row[split]["accuracy"], row[split]["auc"]
                cells += [f"{100 * a['mean']:.1f} +- {100 * a['std']:.1f}", f"{u['mean']:.3f} +- {u['std']:.3f}"]
            else:
                cells += ["-", "-"]
        lines.append(f"| {ROW_NAMES[kind]} | {mode} | " + " | ".join(cells) + f" | {PAPER_ACCURACY[kind]:.2f} |")
    counts = result["counts"]
    lines += [
        "",
        "Patches per split (balanced, so the majority-class rate is 50 %): "
        + ", ".join(f"{k} {v['count']} ({100 * v['positive_rate']:.0f} % positive)" for k, v in counts.items())
        + ".",
    ]
    if result.get("pooling"):
        lines += [
            "",
            "Pooling and task choice (validation AUC, head mode, mean +- std over the seeds; the best is used):",
            "",
            "| features | tasks | pooling | validation AUC |",
            "| --- | --- | --- | --- |",
        ]
        for key, s in result["pooling"].items():
            kind, tasks, pooling = key.split("|")
            lines.append(f"| {kind} | {tasks} | {pooling} | {s['mean']:.3f} +- {s['std']:.3f} |")
    lines += [
        "",
        f"Chosen: trunk pooling `{result['choice']['trunk_pooling']}`; funk tasks `{result['choice']['funk_tasks']}`, "
        f"pooling `{result['choice']['funk_pooling']}`.",
        f"Total time {result['seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def _result(
    config: BenchmarkConfig, data: Data, pooling: dict, choice: dict, rows: dict, device, start: float, complete: bool
) -> dict:
    return {
        "command": "python -m funk_grasp.benchmark " + " ".join(sys.argv[1:])
        if sys.argv and "benchmark" in sys.argv[0]
        else "python -m funk_grasp.benchmark",
        "machine": f"{os.cpu_count()}-core {platform.machine()} machine, "
        f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else 'no GPU'}, "
        f"{torch.get_num_threads()} torch thread(s), device {device}",
        "date": time.strftime("%Y-%m-%d"),
        "data": str(config.data) + (f" (TestHeldout from {config.heldout_data})" if config.heldout_data else ""),
        "data_kind": "simulated (funk_grasp.generate)"
        if (config.data / "attempts.csv").is_file()
        else "Pinto-Gupta layout",
        # which funk checkpoint made the funk row: the default path has held different weights over time
        "encoder": str(config.encoder),
        "encoder_sha256": file_identity(str(config.encoder)),
        "seeds": list(config.seeds),
        "epochs": {"head": config.head_epochs, "joint": config.joint_epochs},
        "counts": {
            name: {"count": len(s.labels), "positive_rate": float(s.labels.mean())} for name, s in data.splits.items()
        },
        "pooling": pooling,
        "choice": choice,
        "rows": rows,
        "complete": complete,  # False while rows are still running (results are written after every row)
        "paper_accuracy": PAPER_ACCURACY,
        "seconds": time.perf_counter() - start,
    }


def run_benchmark(config: BenchmarkConfig) -> dict:
    start = time.perf_counter()
    device = resolve_device(config.device)
    encoder = load_encoder(config.encoder, device)
    probe = GraspModel(_feature_config("trunk", "mean", TASKS, config), encoder).to(device)
    folders = {name: config.data / name for name in ("Train", "Validation") + TEST_SPLITS}
    if config.heldout_data is not None:
        folders["TestHeldout"] = Path(config.heldout_data) / "TestHeldout"
        if not folders["TestHeldout"].is_dir():
            raise FileNotFoundError(
                f"{folders['TestHeldout']}: not found (--heldout-data must hold a TestHeldout/ split)"
            )
    data = Data({name: load_split(folder, probe) for name, folder in folders.items() if folder.is_dir()})
    pooling = measure_pooling(data, encoder, config, device) if config.measure_pooling else {}
    _, trunk_pooling = _choice(pooling, "trunk") if "trunk|-|mean" in pooling else ("all", config.pooling)
    funk_tasks, funk_pooling = (
        _choice(pooling, "funk") if "funk|all|mean" in pooling else (config.task_set, config.pooling)
    )
    choice = {"trunk_pooling": trunk_pooling, "funk_tasks": funk_tasks, "funk_pooling": funk_pooling}
    rows: dict = {}
    curves: dict = {}
    figure_models: dict = {}
    evaluate = [s for s in TEST_SPLITS if s in data.splits]
    for kind in config.rows:
        tasks = TASK_SETS[funk_tasks] if kind == "funk" else TASKS
        fc = _feature_config(kind, funk_pooling if kind == "funk" else trunk_pooling, tasks, config)
        for mode in config.modes:
            per_seed: dict[str, list[dict]] = {s: [] for s in evaluate}
            for seed in config.seeds:
                LOG.info("row %s, mode %s, seed %d", kind, mode, seed)
                result, probs, model = run_one(fc, mode, seed, data, encoder, config, device, "rows", evaluate)
                for s in evaluate:
                    per_seed[s].append(result[s])
                if seed == config.seeds[0]:
                    curves[f"{kind} ({mode})"] = {s: (data.splits[s].labels.numpy(), probs[s]) for s in evaluate}
                    if mode == "head":
                        figure_models[kind] = model
            rows[f"{kind}/{mode}"] = {
                s: {m: _summary([r[m] for r in per_seed[s]]) for m in ("accuracy", "auc")} for s in evaluate
            }
            partial = _result(config, data, pooling, choice, rows, device, start, complete=False)
            write_json_atomic(Path(config.out) / f"{config.name}.json", partial, indent=1)
            write_text_atomic(Path(config.out) / f"{config.name}.md", _markdown(partial))
    result = _result(config, data, pooling, choice, rows, device, start, complete=True)
    out = Path(config.out)
    write_json_atomic(out / f"{config.name}.json", result, indent=1)
    write_text_atomic(out / f"{config.name}.md", _markdown(result))
    if config.figures:
        _roc_figure(curves, out / f"{config.name}_roc.png")
        if figure_models:
            _angle_figure(figure_models, config.data, out / f"{config.name}_angles.png")
    return result


@command
def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(BenchmarkConfig, argv, "python -m funk_grasp.benchmark", __doc__.split("\n\n")[0])
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if "trunk_categories" in config.rows and not config.categories_checkpoint.is_file():
        raise FileNotFoundError(
            f"{config.categories_checkpoint}: the trunk_categories row needs it; run python -m funk_grasp.categories "
            "first or leave the row out with --rows trunk funk"
        )
    result = run_benchmark(config)
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
