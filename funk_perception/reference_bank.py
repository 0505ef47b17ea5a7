"""The user's reference bank file: labelled photos, their keypoint embeddings, and the model that made them.

A bank file (``python -m funk_perception.references add ... --bank my_bank.pt``)
holds, per reference, the photo's encoded bytes as given (so it can be embedded
again by another model: ``references reembed``), the task, its five keypoints
normalised by the photo's width and height, which of them are visible, and
their embeddings ``(2, 5, D)`` float16 (the shipped synthetic bank stores its
own as float16 too, funk_perception/train/bank.py): one row for the photo as
given and one for its mirror image, keypoints kept (labels are semantic: a
mirrored photo's p1 is still p1). ``detect`` lets each reference vote with the
view that matches the image better (:func:`funk_perception.matching.best_views`),
so a mug photographed handle-left still helps when the camera sees it
handle-right; on the real dev photos, one view alone gained 5 points on the
photos as curated and lost 1.4 on their mirrored copies (docs/REFERENCES.md).
Embeddings only mean something to the
encoder that made them, so the file records that encoder's fingerprint
(:func:`encoder_fingerprint`) and how the photos were fed to it
(:class:`EmbeddingSettings`); :func:`check_fingerprint` refuses a bank made by
another model, naming both fingerprints and the command that re-embeds it.

Coordinates are the detector's: normalised ``(x / W, y / H)`` with ``(0, 0)``
the top-left *corner* of the top-left pixel (funk_perception/model/letterbox.py),
the convention of FunKPoint CSVs. Pixel input on the command line uses OpenCV's
pixel-centre convention instead and is converted where it is parsed
(funk_perception/references.py).

This module knows the file only: it imports neither the detector nor the
command line, so the detector can load a bank without an import cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from funk_perception.atomic import torch_save_atomic
from funk_perception.tasks import NUM_KEYPOINTS, TASKS, normalize_task

FORMAT = "funk-reference-bank"
VERSION = 1
#: The views each reference is embedded in, in this order along its embeddings' first axis.
VIEWS: tuple[str, ...] = ("as given", "mirrored")
#: How the user's references join the shipped synthetic bank in ``detect`` (docs/REFERENCES.md):
#: ``add`` votes beside it, ``replace`` instead of it for the tasks the bank covers.
REFERENCE_MODES: tuple[str, ...] = ("add", "replace")
#: The command that re-embeds a bank for another model (quoted in every mismatch error).
REEMBED_COMMAND = "python -m funk_perception.references reembed --bank {bank} --model {model}"


class ReferenceBankError(ValueError):
    """A bank file is missing, malformed or made by another model; the message names file, field, expected, found."""


class FingerprintMismatch(ReferenceBankError):
    """The bank's embeddings come from a different encoder than the one asked to use them."""


@dataclass(frozen=True)
class EmbeddingSettings:
    """How the photos were fed to the encoder: the detector options that change an embedding."""

    image_size: int = 224
    letterbox: bool = True
    letterbox_pad: str = "mean"
    flip: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "image_size": int(self.image_size),
            "letterbox": bool(self.letterbox),
            "letterbox_pad": str(self.letterbox_pad),
            "flip": bool(self.flip),
        }


@dataclass(frozen=True, eq=False)
class Reference:
    """One labelled photo: task, normalised keypoints (5, 2), visibility (5,), the photo's bytes, and the
    embeddings (len(VIEWS), 5, D) of the photo and of its mirror image."""

    task: str
    points: np.ndarray
    visible: np.ndarray
    image_bytes: bytes
    name: str
    embeddings: torch.Tensor
    width: int
    height: int
    category: str = ""

    @property
    def image_sha256(self) -> str:
        """The photo's identity (with the task, what makes a reference a duplicate)."""
        return hashlib.sha256(self.image_bytes).hexdigest()

    def image(self) -> np.ndarray:
        """The photo as (H, W, 3) uint8 RGB, decoded from the stored bytes."""
        return decode_image(self.image_bytes, self.name)


@dataclass
class ReferenceBank:
    """A bank file in memory: who embedded it, how, and the references in the order they were added."""

    fingerprint: str
    model: str
    settings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    references: list[Reference] = field(default_factory=list)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks with at least one reference, in TASKS order."""
        present = {r.task for r in self.references}
        return tuple(t for t in TASKS if t in present)

    def by_task(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{task: {"embeddings": (M, V, 5, D), "visible": (M, 5)}}``: the shipped bank's layout
        (funk_perception/train/bank.py) with a views axis (:data:`VIEWS`)."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        for task in self.tasks:
            rows = [r for r in self.references if r.task == task]
            out[task] = {
                "embeddings": torch.stack([r.embeddings for r in rows]),
                "visible": torch.from_numpy(np.stack([r.visible for r in rows])).bool(),
            }
        return out

    def find(self, task: str, image_bytes: bytes) -> int | None:
        """Index of the reference of this photo for this task, None if absent."""
        digest = hashlib.sha256(image_bytes).hexdigest()
        return next((i for i, r in enumerate(self.references) if r.task == task and r.image_sha256 == digest), None)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, anything OpenCV reads) -> (H, W, 3) uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise ReferenceBankError(
            f"{name}: expected a decodable JPEG or PNG image, found {len(data)} bytes that OpenCV cannot decode"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """SHA-256 of every tensor of ``encoder.state_dict()`` (names, dtypes, shapes, values), trunk included.

    The encoder's weights alone decide its embeddings: hashing them, not the checkpoint file, keeps a bank
    valid when the file is only re-saved with other extras (``train.bank`` and ``model.export`` do that), and
    tells apart two checkpoints whose trunks load different weights. It costs about 0.1 s for lite0 on a CPU."""
    digest = hashlib.sha256()
    state = encoder.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_fingerprint(bank: ReferenceBank, fingerprint: str, bank_path: str | Path, model: str | Path) -> None:
    """Raise :class:`FingerprintMismatch` unless ``bank`` was embedded by the encoder of ``fingerprint``."""
    if bank.fingerprint == fingerprint:
        return
    raise FingerprintMismatch(
        f"{bank_path}: field 'fingerprint': expected {fingerprint[:16]} (the encoder of {model}), found "
        f"{bank.fingerprint[:16]} (the encoder of {bank.model}): its embeddings belong to another model; "
        f"re-embed its stored photos with: {REEMBED_COMMAND.format(bank=bank_path, model=model)}"
    )


# --------------------------------------------------------------------------- file I/O


def save_bank(bank: ReferenceBank, path: str | Path) -> Path:
    """Write ``bank`` to ``path`` atomically (funk_perception/atomic.py): plain types and tensors only,
    so :func:`load_bank` reads it with ``torch.load(weights_only=True)``."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": bank.fingerprint,
        "model": bank.model,
        "settings": bank.settings.as_dict(),
        "references": [
            {
                "task": r.task,
                "category": r.category,
                "name": r.name,
                "width": int(r.width),
                "height": int(r.height),
                "points": torch.tensor(np.asarray(r.points, np.float64)),
                "visible": torch.tensor(np.asarray(r.visible, bool)),
                "image_bytes": bytes(r.image_bytes),
                "embeddings": r.embeddings.detach().to("cpu", torch.float16).contiguous(),
            }
            for r in bank.references
        ],
    }
    torch_save_atomic(payload, path)
    return Path(path)


def _field(path: Path, entry: Mapping[str, object], key: str, kinds: type | tuple[type, ...], where: str) -> object:
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if not isinstance(value, kinds):
        found = "nothing" if value is None else type(value).__name__
        names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise ReferenceBankError(f"{path}: field {where}{key!r}: expected {names}, found {found}")
    return value


def load_bank(path: str | Path) -> ReferenceBank:
    """Read and check a bank file; every problem is a :class:`ReferenceBankError` naming file, field, expected,
    found."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceBankError(
            f"{path}: expected a reference bank file (python -m funk_perception.references add "
            f"... --bank {path} writes one), found no such file"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  any unreadable file is the same user error
        raise ReferenceBankError(
            f"{path}: expected a reference bank written by python -m funk_perception.references, "
            f"found a file torch cannot read ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, Mapping) else type(payload).__name__
        raise ReferenceBankError(
            f"{path}: field 'format': expected {FORMAT!r}, found {found!r}"
            + (
                " (a model checkpoint? pass it as --model)"
                if isinstance(payload, Mapping) and "state_dict" in payload
                else ""
            )
        )
    if payload.get("version") != VERSION:
        raise ReferenceBankError(f"{path}: field 'version': expected {VERSION}, found {payload.get('version')!r}")
    fingerprint = str(_field(path, payload, "fingerprint", str, ""))
    model = str(_field(path, payload, "model", str, ""))
    raw = _field(path, payload, "settings", Mapping, "")
    try:
        settings = EmbeddingSettings(**dict(raw))  # type: ignore[arg-type]
    except TypeError:
        raise ReferenceBankError(
            f"{path}: field 'settings': expected keys {sorted(EmbeddingSettings().as_dict())}, found {sorted(raw)}"
        ) from None  # type: ignore[arg-type]
    references: list[Reference] = []
    dim = None
    for i, entry in enumerate(_field(path, payload, "references", (list, tuple), "")):  # type: ignore[union-attr]
        where = f"references[{i}]."
        emb = _field(path, entry, "embeddings", torch.Tensor, where)
        points = _field(path, entry, "points", torch.Tensor, where)
        visible = _field(path, entry, "visible", torch.Tensor, where)
        dim = emb.shape[-1] if dim is None else dim  # type: ignore[union-attr]
        shapes = (tuple(emb.shape), tuple(points.shape), tuple(visible.shape))  # type: ignore[union-attr]
        if shapes != ((len(VIEWS), NUM_KEYPOINTS, dim), (NUM_KEYPOINTS, 2), (NUM_KEYPOINTS,)):
            raise ReferenceBankError(
                f"{path}: field {where}embeddings/points/visible: expected shapes "
                f"({len(VIEWS)}, {NUM_KEYPOINTS}, {dim}), ({NUM_KEYPOINTS}, 2), "
                f"({NUM_KEYPOINTS},), found {shapes}"
            )
        if not (torch.isfinite(points).all() and points.min() >= 0 and points.max() <= 1):  # type: ignore[union-attr]
            raise ReferenceBankError(
                f"{path}: field {where}points: expected x, y normalised to [0, 1], found {points.tolist()}"
            )  # type: ignore[union-attr]
        if not visible.any():  # type: ignore[union-attr]
            raise ReferenceBankError(
                f"{path}: field {where}visible: expected at least one visible keypoint, found none"
            )
        try:
            task = normalize_task(str(_field(path, entry, "task", str, where)))
        except ValueError as exc:
            raise ReferenceBankError(f"{path}: field {where}task: {exc}") from None
        references.append(
            Reference(
                task=task,
                points=points.double().numpy(),
                visible=visible.bool().numpy(),  # type: ignore[union-attr]
                image_bytes=bytes(_field(path, entry, "image_bytes", bytes, where)),  # type: ignore[arg-type]
                name=str(_field(path, entry, "name", str, where)),
                embeddings=emb.to(torch.float16),  # type: ignore[union-attr]
                width=int(_field(path, entry, "width", int, where)),  # type: ignore[arg-type]
                height=int(_field(path, entry, "height", int, where)),  # type: ignore[arg-type]
                category=str(entry.get("category", "")),
            )
        )
    return ReferenceBank(fingerprint, model, settings, references)
