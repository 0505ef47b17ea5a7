"""The evaluation's options: :class:`EvalConfig` (one CLI flag per field), its ``--references-share``
parser and :class:`ReferenceOptions`, the user reference bank that detect is scored with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from funk_perception.cli import arg
from funk_perception.detector import ADD_SHARE
from funk_perception.matching import REFINE_METHODS
from funk_perception.model.letterbox import LETTERBOX_PADS
from funk_perception.onnx_backend import BACKENDS, PRECISIONS, check_backend
from funk_perception.reference_bank import REFERENCE_MODES, ReferenceBank


def share_value(text: str) -> float | None:
    """``--references-share``: a number, or ``pooled`` (None: every reference one vote)."""
    return None if text.strip().lower() == "pooled" else float(text)


@dataclass
class EvalConfig:
    """What to evaluate and where to write it; the defaults run on any FunKPoint-style CSV."""

    data: Path = field(
        default=Path("datasets/synth/annotations.csv"), metadata=arg("FunKPoint-style CSV", type=Path, required=True)
    )
    #: Take the references from this CSV instead (a seeded sample of ``references_per_task``
    #: rows per task) and use ``data``'s test-role rows as targets: e.g. references from the
    #: training categories, targets from categories never trained on (``heldout.csv``).
    references: Path | None = field(
        default=None,
        metadata=arg(
            "take references from this CSV and use --data's test rows as targets (e.g. training categories -> "
            "heldout.csv)",
            type=Path,
        ),
    )
    models: list[Path] = field(
        default_factory=list, metadata=arg("checkpoint (repeatable)", flags=("--model",), append=True, type=Path)
    )
    #: Extra trunk-only baselines by trunk name (one per distinct checkpoint trunk is always added).
    trunks: list[str] = field(
        default_factory=list,
        metadata=arg("extra trunk-only baseline (lite0, lite2, resnet50; repeatable)", flags=("--trunk",), append=True),
    )
    out: Path | None = field(
        default=None, metadata=arg("output folder (default results/eval-<csv folder>-<csv stem>)", type=Path)
    )
    seed: int = field(default=0, metadata=arg("seed of the evaluation triplets"))
    references_per_task: int = field(default=20, metadata=arg("references per task when the CSV names none"))
    max_targets_per_task: int | None = field(
        default=None, metadata=arg("a seeded subsample of each task's targets", type=int)
    )
    size: int | None = field(default=None, metadata=arg("input size (default: each checkpoint's own)", type=int))
    refine: str = field(default="parabolic", metadata=arg("sub-cell refinement of a peak", choices=REFINE_METHODS))
    device: str = field(default="auto", metadata=arg("auto (GPU when present), cpu, cuda"))
    trunk_weights: Path | None = field(default=None, metadata=arg("weights file for a resnet50 trunk", type=Path))
    batch_size: int = field(default=16, metadata=arg("images per forward pass"))
    figure_tasks: int = field(default=4, metadata=arg("tasks shown in the qualitative figure"))
    dense_examples: int = field(default=3, metadata=arg("examples in the dense-correspondence figure"))
    dense_points: int = field(default=150, metadata=arg("points per dense-correspondence example"))
    figures: bool = field(default=True, metadata=arg("write the figures"))
    progress: bool = field(default=True, metadata=arg("show progress bars"))
    flip: bool = field(
        default=False, metadata=arg("average every feature map with the mirrored image's (detector option flip=True)")
    )
    mirror: bool = field(default=False, metadata=arg("evaluate on mirrored copies of every image"))
    letterbox: bool = field(
        default=True,
        metadata=arg(
            "keep each image's aspect ratio in the square input, padding the short side (the detector's default); "
            "--squash resizes to the square ignoring it (letterbox=False, the behaviour before letterboxing)",
            false_flags=("--squash",),
        ),
    )
    letterbox_pad: str = field(
        default="mean",
        metadata=arg(
            "when letterboxing: mean (the ImageNet mean grey) or edge (border pixels replicated)",
            choices=LETTERBOX_PADS,
        ),
    )
    detect: bool = field(default=True, metadata=arg("score reference-free detection on the target rows"))
    mirror_maps: bool = field(
        default=False,
        metadata=arg(
            "detect also on the mirrored input, averaging the keypoint maps (detector option mirror_maps=True; twice "
            "the cost)"
        ),
    )
    #: A bank of the user's own labelled photos (python -m funk_perception.references): detect is scored
    #: with it too, beside the shipped bank alone (docs/REFERENCES.md).
    references_bank: Path | None = field(
        default=None,
        metadata=arg(
            "also score detect with this reference bank (python -m funk_perception.references; the detector's "
            "references= option), beside the shipped bank alone",
            type=Path,
        ),
    )
    references_mode: str = field(
        default="add",
        metadata=arg(
            "with --references-bank: add (beside the shipped bank) or replace (instead of it)", choices=REFERENCE_MODES
        ),
    )
    references_share: float | None = field(
        default=ADD_SHARE,
        metadata=arg(
            "with --references-bank and add: the share of the votes the references cast together, or 'pooled' "
            "(every reference one vote among the shipped bank's)",
            type=share_value,
        ),
    )
    #: Where each checkpoint's encoder runs (FunctionalKeypointDetector.use_backend, docs/DEPLOY.md).
    backend: str = field(
        default="torch",
        metadata=arg(
            "run each checkpoint's encoder in torch or in onnxruntime (CPU; the detector's backend; needs the deploy "
            "extra)",
            choices=BACKENDS,
        ),
    )
    precision: str = field(
        default="fp32",
        metadata=arg(
            "with --backend onnxruntime: fp32, or int8 (static quantization calibrated on the shipped synthetic "
            "renders)",
            choices=PRECISIONS,
        ),
    )

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.references = None if self.references is None else Path(self.references)
        self.models = [Path(m) for m in self.models]
        self.out = None if self.out is None else Path(self.out)
        if self.refine not in REFINE_METHODS:
            raise ValueError(f"EvalConfig.refine: expected one of {', '.join(REFINE_METHODS)}, found {self.refine!r}")
        if self.size is not None and self.size < 16:
            raise ValueError(f"EvalConfig.size: expected >= 16 (one stride-16 cell), found {self.size}")
        if self.batch_size < 1:
            raise ValueError(f"EvalConfig.batch_size: expected >= 1, found {self.batch_size}")
        if self.letterbox_pad not in LETTERBOX_PADS:
            raise ValueError(
                f"EvalConfig.letterbox_pad: expected one of {', '.join(LETTERBOX_PADS)}, found {self.letterbox_pad!r}"
            )
        self.references_bank = None if self.references_bank is None else Path(self.references_bank)
        if self.references_mode not in REFERENCE_MODES:
            raise ValueError(
                f"EvalConfig.references_mode: expected one of {', '.join(REFERENCE_MODES)}, "
                f"found {self.references_mode!r}"
            )
        if self.references_share is not None and not 0.0 < self.references_share <= 1.0:
            raise ValueError(
                f"EvalConfig.references_share: expected a number in (0, 1] or pooled, found {self.references_share!r}"
            )
        try:
            check_backend(self.backend, self.precision)
        except ValueError as exc:
            raise ValueError(f"EvalConfig.{exc}") from None

    def output_dir(self) -> Path:
        if self.out is not None:
            return self.out
        return Path("results") / f"eval-{self.data.resolve().parent.name}-{self.data.stem}"


@dataclass(frozen=True)
class ReferenceOptions:
    """A user reference bank to score detect with, and how it joins the shipped bank (funk_perception/detector.py)."""

    path: Path
    bank: ReferenceBank
    mode: str = "add"
    share: float | None = ADD_SHARE

    def describe(self) -> str:
        if self.mode == "replace":
            how = "replace"
        else:
            how = "add, pooled" if self.share is None else f"add, share {self.share:g}"
        return f"({how}) from {self.path}"
