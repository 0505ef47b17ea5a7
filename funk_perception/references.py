"""Your own reference photos: label your mug or hammer once, and ``detect`` (and the ROS node) use it.

    python -m funk_perception.references add --image mug.jpg --task pour \\
        --points "412,88;455,130;430,160;300,250;210,260" --bank my_bank.pt
    python -m funk_perception.references add --csv my_labels.csv --bank my_bank.pt      # role "reference" rows
    python -m funk_perception.references list --bank my_bank.pt
    python -m funk_perception.references preview --bank my_bank.pt --out sheet.png
    python -m funk_perception.references reembed --bank my_bank.pt --model models/other.pt

then ``FunctionalKeypointDetector.load(model, references="my_bank.pt")`` or the node's
``-p references:=my_bank.pt`` (docs/REFERENCES.md, docs/ROS.md).

``--points`` are five ``x,y`` pairs p1..p5 in pixels of the photo as any image
viewer or OpenCV shows them: ``(0, 0)`` is the *centre* of the top-left pixel
(the convention of the node's published ``u, v``, funk_perception/ros/pipeline.py).
The detector measures from the top-left pixel's *corner*, so each point is
shifted by +0.5 pixel before it is normalised by the photo's width and height
(:func:`pixel_points`). CSV rows are already normalised (FunKPoint's
convention, funk_perception/data/annotations.py) and are taken as they are.

Each reference is embedded once, when added, by the model given (default: the
shipped one), exactly as ``detect`` embeds a photo, as given and mirrored
(:meth:`FunctionalKeypointDetector.reference_embeddings`); the bank file keeps the
photo's bytes, so ``reembed`` can redo it for another model. Adding the same
photo for the same task again is skipped, so a script that builds a bank can
be rerun.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from funk_perception.atomic import write_png_atomic
from funk_perception.cli import command
from funk_perception.data.annotations import ROLES, FunKPointDataset
from funk_perception.data.preview import KEYPOINT_COLORS, draw_keypoints
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.reference_bank import (
    Reference,
    ReferenceBank,
    ReferenceBankError,
    check_fingerprint,
    decode_image,
    load_bank,
    save_bank,
)
from funk_perception.shipped import default_checkpoint
from funk_perception.tasks import KEYPOINTS, NUM_KEYPOINTS, TASKS, normalize_task

#: OpenCV pixel-centre coordinates plus this are the detector's corner-origin pixels (funk_perception/ros/pipeline.py
#: subtracts the same half pixel on the way out).
CENTRE_TO_CORNER = 0.5


@dataclass(frozen=True)
class PreviewConfig:
    """The preview sheet: tile side in pixels and tiles per row."""

    tile: int = 256
    columns: int = 5

    def __post_init__(self) -> None:
        if self.tile < 64 or self.columns < 1:
            raise ValueError(f"PreviewConfig: expected tile >= 64 and columns >= 1, found {self.tile}, {self.columns}")


# --------------------------------------------------------------------------- input parsing


def parse_task(name: str, where: str = "--task") -> str:
    """A task name in any FunKPoint spelling -> canonical; the error names ``where``."""
    try:
        return normalize_task(name)
    except ValueError:
        raise ValueError(f"{where}: expected one of {', '.join(TASKS)}, found {name!r}") from None


def pixel_points(text: str, width: int, height: int, where: str = "--points") -> np.ndarray:
    """``"x1,y1;...;x5,y5"`` in pixel-centre pixels of a ``width x height`` photo -> (5, 2) normalised
    corner-origin coordinates (module docstring); raises ValueError naming the point, expected and found."""
    parts = [p.strip() for p in text.strip().strip(";").split(";")]
    if len(parts) != NUM_KEYPOINTS:
        raise ValueError(
            f"{where}: expected {NUM_KEYPOINTS} points 'x,y' separated by ';' (p1..p5), found {len(parts)}: {text!r}"
        )
    points = np.zeros((NUM_KEYPOINTS, 2), dtype=np.float64)
    for k, part in enumerate(parts):
        try:
            x, y = (float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"{where}: {KEYPOINTS[k]}: expected two numbers 'x,y', found {part!r}") from None
        # pixel centres: the photo spans [-0.5, W - 0.5] x [-0.5, H - 0.5]
        if not (np.isfinite([x, y]).all() and -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            raise ValueError(
                f"{where}: {KEYPOINTS[k]}: expected a point inside the {width}x{height} photo, x in "
                f"[-0.5, {width - 0.5:g}] and y in [-0.5, {height - 0.5:g}] (pixel centres, as OpenCV), "
                f"found ({x:g}, {y:g})"
            )
        points[k] = (x + CENTRE_TO_CORNER, y + CENTRE_TO_CORNER)
    return points / np.array([width, height], dtype=np.float64)


def parse_hidden(text: str, where: str = "--hidden") -> np.ndarray:
    """``"p3,p5"`` or ``"3,5"``: keypoints not visible in the photo -> (5,) visibility."""
    visible = np.ones(NUM_KEYPOINTS, dtype=bool)
    for item in filter(None, (s.strip().lower() for s in text.split(","))):
        name = item if item.startswith("p") else f"p{item}"
        if name not in KEYPOINTS:
            raise ValueError(f"{where}: expected keypoint names from {', '.join(KEYPOINTS)} (or 1..5), found {item!r}")
        visible[KEYPOINTS.index(name)] = False
    if not visible.any():
        raise ValueError(f"{where}: expected at least one visible keypoint, found all five hidden")
    return visible


def read_photo(path: str | Path, where: str = "--image") -> tuple[bytes, np.ndarray]:
    """A photo's bytes and its decoded (H, W, 3) RGB; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: expected an existing image file, found no such file: {path}")
    data = path.read_bytes()
    try:
        return data, decode_image(data, str(path))
    except ReferenceBankError as exc:
        raise ValueError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- banks


def open_bank(path: str | Path, detector: FunctionalKeypointDetector, model: str | Path) -> ReferenceBank:
    """The bank at ``path`` (checked to be ``detector``'s), or a new empty one for it when absent."""
    path = Path(path)
    if not path.exists():
        return ReferenceBank(detector.fingerprint, str(model), detector.embedding_settings, [])
    bank = load_bank(path)
    check_fingerprint(bank, detector.fingerprint, path, model)
    if bank.settings != detector.embedding_settings:
        raise ReferenceBankError(
            f"{path}: field 'settings': expected {detector.embedding_settings.as_dict()} (how "
            f"{model} embeds here), found {bank.settings.as_dict()}; re-embed it first"
        )
    return bank


def add_reference(
    bank: ReferenceBank,
    detector: FunctionalKeypointDetector,
    image_bytes: bytes,
    rgb: np.ndarray,
    name: str,
    task: str,
    points: np.ndarray,
    visible: np.ndarray,
    category: str = "",
) -> bool:
    """Embed and append one reference; False (bank unchanged) when this photo is already there for ``task``."""
    if bank.find(task, image_bytes) is not None:
        return False
    embeddings = detector.reference_embeddings(rgb, points, task).to("cpu")
    bank.references.append(
        Reference(
            task,
            np.asarray(points, np.float64),
            np.asarray(visible, bool),
            image_bytes,
            name,
            embeddings,
            int(rgb.shape[1]),
            int(rgb.shape[0]),
            category,
        )
    )
    return True


def add_image(
    bank: ReferenceBank,
    detector: FunctionalKeypointDetector,
    image: str | Path,
    task: str,
    points: str,
    hidden: str = "",
) -> bool:
    """``add --image``: one photo, its task and its five pixel points (pixel centres)."""
    task = parse_task(task)
    data, rgb = read_photo(image)
    normalized = pixel_points(points, rgb.shape[1], rgb.shape[0], f"--points (for {image})")
    return add_reference(bank, detector, data, rgb, Path(image).name, task, normalized, parse_hidden(hidden))


def add_csv(
    bank: ReferenceBank,
    detector: FunctionalKeypointDetector,
    csv: str | Path,
    roles: Sequence[str] = ("reference",),
    tasks: Sequence[str] | None = None,
) -> tuple[int, int]:
    """``add --csv``: every row of ``roles`` (and ``tasks``) of a FunKPoint-style CSV; (added, already there)."""
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"--roles: expected roles from {', '.join(ROLES)}, found {bad}")
    wanted = None if not tasks else [parse_task(t, "--tasks") for t in tasks]
    dataset = FunKPointDataset(csv, roles=list(roles), tasks=wanted)
    if not dataset.annotations:
        raise ValueError(
            f"{csv}: column 'role': expected rows with role {' or '.join(roles)}"
            + (f" for {', '.join(wanted)}" if wanted else "")
            + ", found none"
        )
    added = skipped = 0
    for row in dataset.annotations:
        data, rgb = read_photo(row.image_path, f"{csv}, line {row.line}, column 'dataset_image_path'")
        if add_reference(
            bank, detector, data, rgb, row.relative_path, row.task, row.keypoints, row.visible, row.category
        ):
            added += 1
        else:
            skipped += 1
    return added, skipped


def reembed(bank_path: str | Path, model: str | Path, out: str | Path | None = None, device: str = "auto") -> Path:
    """Embed every stored photo of a bank again with ``model`` and write it to ``out`` (default: in place)."""
    old = load_bank(bank_path)
    detector = FunctionalKeypointDetector.load(model, device=device)
    new = ReferenceBank(detector.fingerprint, str(model), detector.embedding_settings, [])
    for ref in old.references:
        add_reference(
            new, detector, ref.image_bytes, ref.image(), ref.name, ref.task, ref.points, ref.visible, ref.category
        )
    return save_bank(new, out or bank_path)


# --------------------------------------------------------------------------- list and preview


def describe(bank: ReferenceBank, path: str | Path) -> str:
    """What ``list`` prints: the model and settings, then one line per reference."""
    lines = [
        f"{path}: {len(bank.references)} references for {', '.join(bank.tasks) or 'no task'}",
        f"  embedded by {bank.model} (encoder fingerprint {bank.fingerprint[:16]}), {bank.settings.as_dict()}",
    ]
    for i, ref in enumerate(bank.references):
        hidden = [KEYPOINTS[k] for k in range(NUM_KEYPOINTS) if not ref.visible[k]]
        lines.append(
            f"  #{i:<3d} {ref.task:<15s} {ref.name}  {ref.width}x{ref.height}"
            + (f"  {ref.category}" if ref.category else "")
            + (f"  hidden {','.join(hidden)}" if hidden else "")
        )
    return "\n".join(lines)


def preview_sheet(bank: ReferenceBank, config: PreviewConfig | None = None) -> np.ndarray:
    """An RGB sheet: every reference fitted into a tile (aspect kept) with its p1..p5 drawn, labelled
    ``#index task name``; a legend row of the keypoint colours on top."""
    config = config or PreviewConfig()
    if not bank.references:
        raise ValueError("preview: expected a bank with at least one reference, found none")
    t, columns = config.tile, min(config.columns, len(bank.references))
    rows = -(-len(bank.references) // columns)
    header = 28
    sheet = np.full((header + rows * (t + 20), columns * t, 3), 32, np.uint8)
    for k, name in enumerate(KEYPOINTS):
        cv2.circle(sheet, (12 + 60 * k, 14), 6, KEYPOINT_COLORS[k], -1, cv2.LINE_AA)
        cv2.putText(sheet, name, (22 + 60 * k, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    for i, ref in enumerate(bank.references):
        image = ref.image()
        scale = t / max(image.shape[:2])
        w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
        tile = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        # normalised corner-origin points -> this tile's pixel centres, where cv2 draws
        tile = draw_keypoints(
            tile, ref.points * np.array([w, h]) - CENTRE_TO_CORNER, ref.visible, radius=max(3, t // 48)
        )
        y0, x0 = header + (i // columns) * (t + 20), (i % columns) * t
        sheet[y0 + (t - h) // 2 : y0 + (t - h) // 2 + h, x0 + (t - w) // 2 : x0 + (t - w) // 2 + w] = tile
        label = f"#{i} {ref.task} {Path(ref.name).name}"[: max(8, t // 7)]
        cv2.putText(sheet, label, (x0 + 4, y0 + t + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
    return sheet


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funk_perception.references", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add labelled photos to a bank (created if absent)")
    add.add_argument("--bank", type=Path, required=True, help="bank file to add to (written atomically)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="one photo (JPEG, PNG)")
    source.add_argument("--csv", type=Path, help="a FunKPoint-style CSV (funk_perception/data/annotations.py)")
    add.add_argument("--task", help="with --image: the task (pour, scoop, ..., any FunKPoint spelling)")
    add.add_argument(
        "--points",
        help='with --image: "x1,y1;...;x5,y5", p1..p5 in pixels of the photo, (0, 0) the '
        "centre of its top-left pixel (as OpenCV)",
    )
    add.add_argument(
        "--hidden",
        default="",
        help="with --image: keypoints not visible in the photo, e.g. p3,p5 "
        "(give them any point inside the photo in --points: they do not vote)",
    )
    add.add_argument(
        "--roles", nargs="+", default=["reference"], help="with --csv: rows of these roles (default: reference)"
    )
    add.add_argument("--tasks", nargs="+", default=None, help="with --csv: only these tasks")
    add.add_argument("--model", type=Path, default=None, help="model that embeds them (default: the shipped one)")
    add.add_argument("--device", default="auto")
    listing = sub.add_parser("list", help="print a bank's model, settings and references")
    listing.add_argument("--bank", type=Path, required=True)
    preview = sub.add_parser("preview", help="a PNG sheet of every reference with its points drawn")
    preview.add_argument("--bank", type=Path, required=True)
    preview.add_argument("--out", type=Path, required=True, help="PNG to write")
    preview.add_argument("--tile", type=int, default=PreviewConfig().tile)
    preview.add_argument("--columns", type=int, default=PreviewConfig().columns)
    again = sub.add_parser("reembed", help="embed a bank's stored photos again with another model")
    again.add_argument("--bank", type=Path, required=True)
    again.add_argument("--model", type=Path, required=True)
    again.add_argument("--out", type=Path, default=None, help="where to write it (default: over --bank)")
    again.add_argument("--device", default="auto")
    return parser


def run_add(args: argparse.Namespace) -> str:
    if args.image is not None:
        missing = [flag for flag, value in (("--task", args.task), ("--points", args.points)) if not value]
        if missing:
            raise ValueError(f"add --image: expected {' and '.join(missing)} too, found none")
    elif args.task or args.points or args.hidden:
        raise ValueError(
            "add --csv: expected the tasks and points from the CSV, found --task/--points/--hidden; "
            "use --tasks to choose tasks"
        )
    bad = [r for r in args.roles if r not in ROLES]
    if bad:  # the cheap checks before the model loads
        raise ValueError(f"--roles: expected roles from {', '.join(ROLES)}, found {bad}")
    if args.image is not None:
        parse_task(args.task)
        data, rgb = read_photo(args.image)
        pixel_points(args.points, rgb.shape[1], rgb.shape[0], f"--points (for {args.image})")
        parse_hidden(args.hidden)
    model = args.model or default_checkpoint()
    detector = FunctionalKeypointDetector.load(model, device=args.device)
    bank = open_bank(args.bank, detector, model)
    if args.image is not None:
        added = add_image(bank, detector, args.image, args.task, args.points, args.hidden)
        counts = (int(added), int(not added))
    else:
        counts = add_csv(bank, detector, args.csv, args.roles, args.tasks)
    if counts[0]:
        save_bank(bank, args.bank)
    return (
        f"{args.bank}: added {counts[0]}, already there {counts[1]}; now {len(bank.references)} references for "
        f"{', '.join(bank.tasks)}"
    )


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "add":
        print(run_add(args))
    elif args.command == "list":
        print(describe(load_bank(args.bank), args.bank))
    elif args.command == "preview":
        write_png_atomic(args.out, preview_sheet(load_bank(args.bank), PreviewConfig(args.tile, args.columns)))
        print(args.out)
    else:
        print(f"{reembed(args.bank, args.model, args.out, args.device)}: re-embedded by {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
