"""FunctionalKeypointDetector: the plain-Python API the ROS node, grasping and RL use.

    detector = FunctionalKeypointDetector.load("models/funk-lite0.pt")
    found = detector.detect(rgb, tasks=["pour"])   # {"pour": TaskKeypoints}
    found["pour"].points                           # (5, 2) pixel x, y in ``rgb``

``detect`` needs no reference image. With ``method="bank"`` every keypoint is where
a bank of labelled synthetic reference images, carried over one by one, agrees
most (averaged soft votes, :func:`funk_perception.matching.vote_maps`); with
``method="heatmap"`` it is the peak of a small head trained to map embeddings to
keypoint heatmaps; ``method="bank_heatmap"`` takes the bank's points and, as their
confidence, how surely the bank and the head both put their weight there
(:func:`funk_perception.matching.agreement_confidence`); with ``method="prototypes"``
it is the location whose embedding best matches the keypoint's mean training
embedding. Each method is one object of :mod:`funk_perception.detect_methods`, which the
detector picks once (:attr:`FunctionalKeypointDetector.method_object`). ``method="auto"`` takes the method the checkpoint names
(its :class:`funk_perception.detector_config.DetectorConfig`, ``extra["detector_config"]``, set by
``model.export --detect-method``; the shipped
default names ``bank_heatmap``, the best on real photos, docs/EXPERIMENTS.md variant
39), else the heatmap head, the bank or the prototypes, whichever it holds first.
``transfer`` is the paper's protocol: keypoints given on a reference image are
matched in a target image. ``flip=True`` averages every feature map
with that of the mirrored image (:func:`funk_perception.matching.flip_averaged`);
it is off by default because it cost 7 PCK points on real photos (models/README.md).
``mirror_maps=True`` instead averages what ``detect`` concludes: the keypoint
probability maps of the image and of its mirrored input, flipped back. Labels are
semantic (a mirrored photo's p1 is still p1), so this makes ``detect`` exactly
mirror-equivariant: the same points, mirrored, whichever way the object faces. It
doubles the cost of ``detect`` and is off by default; on the real dev photos it
moved the heatmap head from 35.6 to 38.0 PCK (37.2 to 38.0 on mirrored copies),
within that set's noise (docs/EXPERIMENTS.md, variant 25).

Images are numpy ``(H, W, 3)`` uint8 RGB of any size; they are resized to the
model's square input size and the results mapped back to the input's pixels
(pixel ``(x, y)`` with ``(0, 0)`` the top-left corner of the top-left pixel).
By default (``letterbox=True``) the aspect ratio is kept: the longer side is
scaled to the input size and the shorter side padded with the ImageNet mean grey
(:mod:`funk_perception.model.letterbox`); on real photos this gained 4 PCK points
of transfer and 2 of ``detect`` over squashing (docs/EXPERIMENTS.md, variants 10 and 11),
and it changes nothing on square images such as the training renders.
``letterbox=False`` squashes as before. Points go in and come out in the input's
pixels either way. The batched calls (``features_batch``, ``keypoints_batch``) see
the same pixels as ``detect``: frames already at the model's square size (the RL
loop's renders, ``funk_rl.envs``) stay on the device, where letterboxing is the
identity; any other size goes through the same host preprocessing as ``detect``
(tests/test_detector_paths.py holds the two paths to the same keypoints).

Confidence is probability mass around the peak (3 x 3 cells): of the averaged
votes for ``bank`` (how many references agree), of ``softmax(logit_scale *
cosine)`` over all locations for ``prototypes`` and ``transfer``, with the
checkpoint's own learned ``logit_scale``, the distribution the contrastive loss
trains; unlike a raw cosine it drops when a keypoint is ambiguous.

The user's own labelled photos (a bank file written by ``python -m
funk_perception.references add``, funk_perception/reference_bank.py) join the
bank methods through ``load(..., references=PATH, references_mode="add" |
"replace")`` or :meth:`FunctionalKeypointDetector.use_references`: with
``add`` their votes and the shipped bank's are mixed (the user's references
together weigh :data:`ADD_SHARE`), with ``replace`` theirs alone decide, for the
tasks they cover (other tasks, and a keypoint none of them labels, keep the
shipped bank). Each reference votes with whichever of its two views, the photo
or its mirror image, matches the image better
(:func:`funk_perception.matching.best_views`). A bank embedded by another
encoder is refused (its fingerprint, docs/REFERENCES.md).

``load(..., backend="onnxruntime", precision="fp32" | "int8")`` (or :meth:`use_backend`) runs the encoder's
forward pass in ONNX Runtime on the CPU (funk_perception/onnx_backend.py; int8 calibrated on synthetic
renders); preprocessing and every detect method stay this class's code either way, and docs/DEPLOY.md
has the speed and accuracy of each.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from funk_perception.detect_methods import (
    BANK_METHODS,
    DETECT_METHODS,
    BankVotes,
    DetectMethod,
    MethodParts,
    build_method,
)

# defined with the methods, public here too (the names evaluate and the tests have always imported from here)
from funk_perception.detect_methods import DETECT_NEEDS as DETECT_NEEDS
from funk_perception.detect_methods import available_methods as available_methods
from funk_perception.detector_config import DetectorConfig
from funk_perception.matching import (
    REFINE_METHODS,
    flip_averaged,
    match,
    peak_confidence,
    sample_features,
)
from funk_perception.model import IMAGENET_MEAN, IMAGENET_STD, FunctionalEncoder, Trunk, preprocess, resolve_device
from funk_perception.model.heatmap import KeypointHeatmapHead
from funk_perception.model.letterbox import LETTERBOX_PADS, Letterbox
from funk_perception.model.letterbox import letterbox as letterbox_image
from funk_perception.model.onnx_int8 import Int8Recipe
from funk_perception.onnx_backend import OnnxRuntimeEncoder, check_backend
from funk_perception.reference_bank import (
    REFERENCE_MODES,
    EmbeddingSettings,
    ReferenceBank,
    ReferenceBankError,
    check_fingerprint,
    encoder_fingerprint,
    load_bank,
)
from funk_perception.stages import StageTimes, timed
from funk_perception.tasks import KEYPOINTS, NUM_KEYPOINTS, TASKS, normalize_task


@dataclass(frozen=True)
class TaskKeypoints:
    """The keypoints of one task in one image."""

    task: str
    points: np.ndarray  # (K, 2) float pixel x, y in the input image
    confidence: np.ndarray  # (K,) in [0, 1]
    names: tuple[str, ...] = KEYPOINTS


def check_image(image: object, where: str = "image") -> np.ndarray:
    """Return ``image`` if it is a non-empty numpy (H, W, 3) uint8 RGB array, else raise naming expected vs found."""
    expected = "a numpy uint8 array of shape (H, W, 3), RGB"
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected {expected}, found {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " (scale floats in [0, 1] by 255 and cast with .astype(np.uint8))" if image.dtype.kind == "f" else ""
        raise TypeError(f"{where}: expected dtype uint8, found {image.dtype}{hint}")
    if image.ndim == 2:
        raise ValueError(
            f"{where}: expected shape (H, W, 3) RGB, found grayscale {image.shape}; "
            "convert with cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)"
        )
    if image.ndim != 3:
        raise ValueError(f"{where}: expected shape (H, W, 3) RGB, found {image.ndim} dimensions {image.shape}")
    if image.shape[2] != 3:
        if image.shape[0] == 3 and image.shape[2] not in (1, 4):
            hint = "; a (3, H, W) channels-first array needs image.transpose(1, 2, 0)"
        elif image.shape[2] == 4:
            hint = "; RGBA: drop the alpha channel with image[..., :3]"
        else:
            hint = ""
        raise ValueError(f"{where}: expected shape (H, W, 3) RGB, found {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{where}: expected a non-empty image, found shape {image.shape}")
    return image


#: With ``references_mode="add"``: the share of the votes the user's references cast together, the shipped
#: bank the rest (docs/REFERENCES.md has the variants measured on the real dev photos).
ADD_SHARE = 0.5


def _to_pixels(points: torch.Tensor, image: np.ndarray, frame: Letterbox | None = None) -> np.ndarray:
    """Input-normalised points -> pixels of ``image``; through ``frame`` when the input was letterboxed."""
    normalized = points.detach().cpu().double().numpy()
    if frame is not None:
        normalized = frame.from_input(normalized)
    return normalized * np.array([image.shape[1], image.shape[0]], dtype=np.float64)


class FunctionalKeypointDetector:
    """Task-conditioned keypoints from a trained encoder and its per-task prototypes."""

    def __init__(
        self,
        encoder: FunctionalEncoder,
        prototypes: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        refine: str = "parabolic",
        image_size: int | None = None,
        bank: Mapping[str, Mapping[str, torch.Tensor | np.ndarray]] | None = None,
        method: str = "auto",
        flip: bool = False,
        heatmap_head: KeypointHeatmapHead | None = None,
        letterbox: bool = True,
        letterbox_pad: str = "mean",
        mirror_maps: bool = False,
    ) -> None:
        if refine not in REFINE_METHODS:
            raise ValueError(f"refine: expected one of {', '.join(REFINE_METHODS)}, found {refine!r}")
        if letterbox_pad not in LETTERBOX_PADS:
            raise ValueError(f"letterbox_pad: expected one of {', '.join(LETTERBOX_PADS)}, found {letterbox_pad!r}")
        self.encoder = encoder.eval()
        self._refine = refine  # validated above; the setter would re-pick a method not yet picked
        self.flip = bool(flip)
        self.mirror_maps = bool(mirror_maps)
        self.letterbox = bool(letterbox)
        self.letterbox_pad = letterbox_pad
        self.image_size = int(image_size or encoder.config.image_size)
        self.device = encoder.log_logit_scale.device
        self.logit_scale = float(encoder.logit_scale.detach())
        dim = encoder.embedding_dim
        self.prototypes: dict[str, torch.Tensor] = {}
        for name, value in (prototypes or {}).items():
            task = normalize_task(name)
            proto = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).float()
            if proto.shape != (NUM_KEYPOINTS, dim):
                raise ValueError(
                    f"prototypes[{name!r}]: expected shape ({NUM_KEYPOINTS}, {dim}), found {tuple(proto.shape)}"
                )
            self.prototypes[task] = proto.to(self.device)
        self.bank: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, entry in (bank or {}).items():
            task = normalize_task(name)
            if not isinstance(entry, Mapping) or "embeddings" not in entry or "visible" not in entry:
                raise ValueError(f"bank[{name!r}]: expected a dict with 'embeddings' (M, 5, D) and 'visible' (M, 5)")
            emb = torch.as_tensor(entry["embeddings"]).float()
            vis = torch.as_tensor(entry["visible"]).bool()
            if emb.dim() != 3 or emb.shape[1:] != (NUM_KEYPOINTS, dim) or vis.shape != emb.shape[:2]:
                raise ValueError(
                    f"bank[{name!r}]: expected embeddings (M, {NUM_KEYPOINTS}, {dim}) and visible (M, {NUM_KEYPOINTS}), "
                    f"found {tuple(emb.shape)} and {tuple(vis.shape)}"
                )
            self.bank[task] = (emb.to(self.device), vis.to(self.device))
        #: the user's references per task (:meth:`use_references`), beside or instead of ``bank``:
        #: embeddings (M, len(VIEWS), 5, D) and visible (M, 5)
        self.references: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.references_mode = "add"
        self.references_share: float | None = ADD_SHARE
        self._fingerprint: str | None = None
        #: where the encoder's forward pass runs (:meth:`use_backend`); None: the torch encoder itself
        self.backend, self.precision = "torch", "fp32"
        self.runtime: OnnxRuntimeEncoder | None = None
        self.heatmap_head = None if heatmap_head is None else heatmap_head.to(self.device).eval()
        if method == "auto":
            method = "heatmap" if self.heatmap_head is not None else "bank" if self.bank else "prototypes"
        if method not in DETECT_METHODS:
            raise ValueError(f"method: expected auto or one of {', '.join(DETECT_METHODS)}, found {method!r}")
        # picked once here (and again only when the method, refinement or references change): every detect
        # runs this object's locate (funk_perception/detect_methods.py)
        self._method = self._build(method)

    def _build(self, method: str) -> DetectMethod:
        """Detect method ``method``'s object, from this detector's parts as they are now."""
        return build_method(
            method,
            MethodParts(self.device, self.refine, self.logit_scale, self.prototypes, self._votes(), self.heatmap_head),
        )

    def _votes(self) -> BankVotes:
        """The shipped bank and the user's references, combined as :meth:`use_references` set."""
        return BankVotes(self.bank, self.logit_scale, self.references, self.references_mode, self.references_share)

    @property
    def method(self) -> str:
        """The detect method ``detect`` runs, one of :data:`DETECT_METHODS`; setting it picks that method's object."""
        return self._method.name

    @method.setter
    def method(self, method: str) -> None:
        self._method = self._build(method)

    @property
    def method_object(self) -> DetectMethod:
        """The object that runs :attr:`method` (funk_perception/detect_methods.py), picked once."""
        return self._method

    @property
    def refine(self) -> str:
        """Sub-cell refinement of every peak, one of :data:`funk_perception.matching.REFINE_METHODS`."""
        return self._refine

    @refine.setter
    def refine(self, refine: str) -> None:
        if refine not in REFINE_METHODS:
            raise ValueError(f"refine: expected one of {', '.join(REFINE_METHODS)}, found {refine!r}")
        self._refine = refine
        self._method = self._build(self.method)

    @property
    def config(self) -> DetectorConfig:
        """The settings this detector runs with now, as a checkpoint stores them (``extra["detector_config"]``)."""
        return DetectorConfig(
            self.method, self.refine, self.flip, self.letterbox, self.letterbox_pad, self.mirror_maps, self.image_size
        )

    @classmethod
    def from_encoder(
        cls, encoder: FunctionalEncoder, config: DetectorConfig | None = None, where: str = "checkpoint"
    ) -> FunctionalKeypointDetector:
        """The detector of a loaded encoder and what its checkpoint holds (``encoder.loaded_extra``: prototypes,
        bank, heatmap head), run with ``config`` (None: the checkpoint's own). :meth:`load`, ``evaluate`` and the
        benchmarks build detectors here, so they run the same settings; ``where`` names the file in errors."""
        extra = getattr(encoder, "loaded_extra", None) or {}
        config = DetectorConfig.from_extra(extra, where) if config is None else config
        head = extra.get("heatmap_head")
        return cls(
            encoder,
            extra.get("prototypes"),
            bank=extra.get("bank"),
            heatmap_head=None
            if head is None
            else KeypointHeatmapHead.from_extra(head, f"{where}: extra['heatmap_head']"),
            **asdict(config),
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        trunk_weights: str | Path | None = None,
        trunk: Trunk | None = None,
        refine: str | None = None,
        method: str = "auto",
        flip: bool | None = None,
        letterbox: bool | None = None,
        letterbox_pad: str | None = None,
        mirror_maps: bool | None = None,
        image_size: int | None = None,
        references: str | Path | None = None,
        references_mode: str = "add",
        backend: str = "torch",
        precision: str = "fp32",
    ) -> FunctionalKeypointDetector:
        """Load a checkpoint written by training (``extra["prototypes"]``, and ``extra["bank"]`` when present).

        The detector runs with the checkpoint's :class:`funk_perception.detector_config.DetectorConfig`
        (``extra["detector_config"]``); ``method`` (``auto``: the checkpoint's), ``refine``, ``flip``,
        ``letterbox``, ``letterbox_pad``, ``mirror_maps`` and ``image_size`` override its fields (None: the
        checkpoint's). ``image_size``: the network's input side when not the checkpoint's own (the encoder is
        fully convolutional); the bank, heatmap head and detect method come along either way.
        ``references``: a bank file of the user's labelled photos (funk_perception/reference_bank.py) that
        ``detect`` uses beside (``references_mode="add"``) or instead of (``"replace"``) the shipped bank;
        :meth:`use_references` says how.
        ``backend``/``precision``: where the encoder's forward pass runs (:meth:`use_backend`); with
        ``onnxruntime``, ``device="auto"`` is the CPU.
        """
        check_backend(backend, precision)
        if backend == "onnxruntime":
            device = "cpu" if device == "auto" else device
            OnnxRuntimeEncoder.check_installed()  # before the model loads: a missing package costs no seconds
        if references_mode not in REFERENCE_MODES:  # before the model loads: a typo costs no seconds
            raise ValueError(
                f"references_mode: expected one of {', '.join(REFERENCE_MODES)}, found {references_mode!r}"
            )
        user_bank = None if references is None or str(references) == "" else load_bank(references)
        encoder = FunctionalEncoder.load(path, resolve_device(device), trunk=trunk, trunk_weights=trunk_weights)
        prototypes = encoder.loaded_extra.get("prototypes")
        if not isinstance(prototypes, Mapping) or not prototypes:
            found = "none" if prototypes is None else type(prototypes).__name__
            raise ValueError(
                f"{path}: expected per-task keypoint prototypes in the checkpoint's extra['prototypes'] "
                f"({{task: ({NUM_KEYPOINTS}, D) tensor}}), found {found}; the training command writes them"
            )
        config = DetectorConfig.from_extra(encoder.loaded_extra, str(path)).override(
            method=None if method == "auto" else method,
            refine=refine,
            flip=flip,
            letterbox=letterbox,
            letterbox_pad=letterbox_pad,
            mirror_maps=mirror_maps,
            image_size=image_size,
        )
        detector = cls.from_encoder(encoder, config, str(path))
        if user_bank is not None:
            detector.use_references(user_bank, references_mode, bank_path=str(references), model=path)
        detector.use_backend(backend, precision)
        return detector

    # -- the backend of the encoder's forward pass (funk_perception/onnx_backend.py) --------------------------

    def use_backend(
        self,
        backend: str = "torch",
        precision: str = "fp32",
        cache: str | Path | None = None,
        calibration: str | Path | None = None,
        threads: int | None = None,
        int8: Int8Recipe | None = None,
    ) -> None:
        """Run the encoder's forward pass in ``backend``: ``torch`` (the encoder itself) or ``onnxruntime``
        (CPU; ``precision`` fp32 or int8, statically quantized with activation ranges from the synthetic
        renders of ``calibration``, default the shipped ``samples/synth``). Graphs are exported on first use
        per task set and kept in ``cache`` (default :func:`funk_perception.onnx_backend.default_cache_folder`);
        ``threads``: ONNX Runtime's threads (default torch's); ``int8``: how int8 graphs are made (default
        :class:`funk_perception.model.onnx_int8.Int8Recipe`'s defaults). Preprocessing and the detect methods are
        unchanged: only :meth:`encode` runs elsewhere."""
        check_backend(backend, precision)
        if backend == "torch":
            self.backend, self.precision, self.runtime = backend, precision, None
            return
        if self.device.type != "cpu":
            raise ValueError(
                f"backend {backend!r}: expected the detector on device 'cpu' (the deploy extra's "
                f"onnxruntime runs on the CPU), found {self.device}; load with device='cpu' or 'auto'"
            )
        self.runtime = OnnxRuntimeEncoder(
            self.encoder,
            self.image_size,
            self.fingerprint,
            self.prepare_batch,
            self.deployment_metadata(),
            precision,
            cache,
            calibration,
            threads=threads,
            int8=int8,
        )
        self.backend, self.precision = backend, precision

    def deployment_metadata(self) -> dict[str, str]:
        """What a deployed graph of this detector's encoder records (ONNX ``metadata_props``): the detect method,
        the preprocessing that makes its input and the layout of its output."""
        preprocessing = {
            "image_size": self.image_size,
            "channels": "RGB",
            "letterbox": self.letterbox,
            "letterbox_pad": self.letterbox_pad if self.letterbox else None,
            "resize": "OpenCV INTER_AREA when shrinking, INTER_LINEAR when enlarging (funk_perception/model/trunk.py)",
            "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": "1/255"},
        }
        return {
            "funk.format": "funk-encoder-onnx",
            "funk.detect_method": self.method,
            "funk.refine": self.refine,
            "funk.flip": json.dumps(self.flip),
            "funk.mirror_maps": json.dumps(self.mirror_maps),
            "funk.logit_scale": repr(self.logit_scale),
            "funk.preprocessing": json.dumps(preprocessing, sort_keys=True),
            "funk.input": f"images: float32 (B, 3, {self.image_size}, {self.image_size}), (rgb / 255 - mean) / std",
            "funk.output": "embeddings: float32 (B, T, D, S/16, S/16), unit norm along D, tasks as funk.tasks",
        }

    def encode(self, images: torch.Tensor, tasks: Sequence[str], stages: StageTimes | None = None) -> torch.Tensor:
        """The encoder's forward pass through this detector's backend: normalised ``(B, 3, S, S)`` images ->
        ``(B, T, D, h, w)`` unit embeddings, float32 on :attr:`device`. Callers hold ``torch.inference_mode``.
        ``stages``: timed as ``trunk`` and ``modular`` (torch), or ``encoder`` (one ONNX Runtime graph)."""
        if self.runtime is None:
            # FunctionalEncoder.forward in its two parts (funk_perception/model/encoder.py), timed apart
            with timed(stages, "trunk"):
                features = self.encoder.trunk(images.to(self.device))
            with timed(stages, "modular"):
                return self.encoder.embed(features, list(tasks)).float()
        with timed(stages, "encoder"):
            return self.runtime(images, list(tasks)).to(self.device)

    def stage_times(self) -> StageTimes:
        """A :class:`funk_perception.stages.StageTimes` for ``detect(..., stages=)``: on CUDA each stage ends
        with a synchronisation, so a stage's time is its kernels' and not the next one's."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        return StageTimes(on_exit=sync)

    def prepare_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The network input ``(B, 3, S, S)`` of uint8 RGB ``images``, exactly as ``detect`` makes it."""
        return self._prepare([check_image(im, f"images[{i}]") for i, im in enumerate(images)])[0]

    # -- the user's references (funk_perception/reference_bank.py) ------------------------------------------

    @property
    def fingerprint(self) -> str:
        """SHA-256 of this detector's encoder weights (:func:`funk_perception.reference_bank.encoder_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = encoder_fingerprint(self.encoder)
        return self._fingerprint

    @property
    def embedding_settings(self) -> EmbeddingSettings:
        """The options that change an embedding, as this detector feeds images to its encoder."""
        return EmbeddingSettings(self.image_size, self.letterbox, self.letterbox_pad, self.flip)

    def embed_keypoints(self, image: np.ndarray, points: np.ndarray, task: str) -> torch.Tensor:
        """Unit embeddings (K, D) of ``task`` at ``points`` (K, 2) of ``image``, normalised ``(x / W, y / H)``
        from the top-left pixel's corner: exactly what ``detect`` sees there (same letterbox, input size and
        flip), sampled as the shipped bank samples its references (funk_perception/train/bank.py)."""
        check_image(image, "embed_keypoints(image)")
        (name,) = self._resolve_tasks([task], TASKS)
        normalized = np.asarray(points, dtype=np.float64)
        if (
            normalized.ndim != 2
            or normalized.shape[1] != 2
            or not np.isfinite(normalized).all()
            or normalized.min(initial=0.0) < 0.0
            or normalized.max(initial=0.0) > 1.0
        ):
            raise ValueError(
                f"embed_keypoints(points): expected finite (K, 2) x, y normalised to [0, 1], "
                f"found {normalized.tolist()}"
            )
        embedded, (frame,) = self.embed([image], [name])
        if frame is not None:
            normalized = frame.to_input(normalized)  # the features cover the padded input
        grid = torch.from_numpy(normalized).float().to(self.device).unsqueeze(0)
        return sample_features(embedded[:, 0], grid)[0]

    def reference_embeddings(self, image: np.ndarray, points: np.ndarray, task: str) -> torch.Tensor:
        """:meth:`embed_keypoints` of a labelled photo in each of :data:`funk_perception.reference_bank.VIEWS`:
        (2, K, D), the photo as given, then its mirror image with x -> 1 - x and each keypoint's name kept."""
        check_image(image, "reference_embeddings(image)")
        mirrored = np.asarray(points, dtype=np.float64).copy()
        mirrored[..., 0] = 1.0 - mirrored[..., 0]
        return torch.stack(
            [
                self.embed_keypoints(image, points, task),
                self.embed_keypoints(np.ascontiguousarray(image[:, ::-1]), mirrored, task),
            ]
        )

    def use_references(
        self,
        bank: ReferenceBank,
        mode: str = "add",
        bank_path: str | Path = "references",
        model: str | Path = "this model",
        share: float | None = ADD_SHARE,
    ) -> None:
        """Let ``detect`` use ``bank``'s references beside (``mode="add"``) or instead of (``"replace"``)
        the shipped bank, for the tasks they cover; a later call replaces an earlier one.

        ``add``: per keypoint, the user's references' averaged votes weigh ``share`` and the shipped bank's
        the rest (``share=None``: every reference one vote, pooled with the shipped ones); ``replace``: the
        user's votes alone. A keypoint no user reference of the task labels keeps the shipped bank's votes.
        Refuses a bank embedded by another encoder (fingerprint; ``bank_path`` and ``model`` name them in
        the error). Photos embedded with other options (input size, letterbox, flip) are embedded again here,
        from the bytes the bank stores, so they match what ``detect`` sees."""
        if mode not in REFERENCE_MODES:
            raise ValueError(f"references_mode: expected one of {', '.join(REFERENCE_MODES)}, found {mode!r}")
        if share is not None and not 0.0 < float(share) <= 1.0:
            raise ValueError(f"use_references(share): expected a number in (0, 1] or None, found {share!r}")
        if not bank.references:
            raise ReferenceBankError(f"{bank_path}: field 'references': expected at least one reference, found none")
        check_fingerprint(bank, self.fingerprint, bank_path, model)
        if self.method not in BANK_METHODS:
            raise ValueError(
                f"{bank_path}: references vote with a bank, expected a detector whose method is one of "
                f"{', '.join(BANK_METHODS)}, found method={self.method!r}"
            )
        if bank.settings != self.embedding_settings:
            tensors = {t: [] for t in bank.tasks}
            for ref in bank.references:
                tensors[ref.task].append(self.reference_embeddings(ref.image(), ref.points, ref.task))
            embedded = {t: torch.stack(rows) for t, rows in tensors.items()}
        else:
            embedded = {t: entry["embeddings"] for t, entry in bank.by_task().items()}
        visible = {t: entry["visible"] for t, entry in bank.by_task().items()}
        self.references = {t: (embedded[t].float().to(self.device), visible[t].to(self.device)) for t in bank.tasks}
        self.references_mode = mode
        self.references_share = None if share is None else float(share)
        self._method = self._build(self.method)  # the bank method votes with them from now on

    def bank_votes(self, task: str, features: torch.Tensor) -> torch.Tensor:
        """(5, h, w) vote maps of the shipped bank and the user's references for ``task`` on one feature map
        (D, h, w), combined by ``references_mode`` (:meth:`use_references`,
        :class:`funk_perception.detect_methods.BankVotes`)."""
        return self._votes()(task, features)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks ``detect`` can answer (those with a bank or prototypes, by ``method``), in TASKS order."""
        return self._method.tasks

    def _resolve_tasks(self, tasks: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
        if tasks is None:
            return list(available)
        if isinstance(tasks, str):
            tasks = [tasks]
        resolved: list[str] = []
        for name in tasks:
            try:
                task = normalize_task(name)
            except ValueError:
                raise ValueError(f"unknown task {name!r}; expected one of {', '.join(available)}") from None
            if task not in available:
                raise ValueError(
                    f"task {name!r} has no keypoint prototype in this model; expected one of {', '.join(available)}"
                )
            if task not in resolved:
                resolved.append(task)
        if not resolved:
            raise ValueError(f"tasks: expected at least one task, found an empty list; valid: {', '.join(available)}")
        return resolved

    def embed(
        self,
        images: Sequence[np.ndarray],
        tasks: Sequence[str],
        mirrored: bool = False,
        stages: StageTimes | None = None,
    ) -> tuple[torch.Tensor, list[Letterbox | None]]:
        """Embeddings (B, T, D, h, w) and, per image, its letterbox geometry (None when squashed);
        ``mirrored``: then those of the flipped inputs too, (2B, T, D, h, w), plain ones first.
        ``stages``: the time of ``letterbox`` and of the encoder's parts (:meth:`encode`) added to it."""
        with timed(stages, "letterbox"):
            batch, frames = self._prepare(images)
            if mirrored:  # the padded input itself is flipped, so the mirrored grid is exactly the plain one reversed
                batch = torch.cat([batch, batch.flip(-1)])
        return self.embed_batch(batch, tasks, stages), frames

    def embed_batch(self, batch: torch.Tensor, tasks: Sequence[str], stages: StageTimes | None = None) -> torch.Tensor:
        """Embeddings (B, T, D, h, w) of a network input made by :meth:`prepare_batch`, as ``detect`` embeds it:
        through :meth:`encode`, averaged with the mirrored input's when ``flip``."""
        with torch.inference_mode():
            if self.flip:
                return flip_averaged(lambda x: self.encode(x, tasks, stages), batch)
            return self.encode(batch, tasks, stages)

    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox | None]]:
        """The one preprocessing of every path: letterbox (or squash) on the host with OpenCV, ImageNet-normalise,
        move to the device. Returns ``(B, 3, S, S)`` and each image's letterbox geometry (None when squashed)."""
        frames: list[Letterbox | None] = [None] * len(images)
        if self.letterbox:
            boxed = [letterbox_image(im, self.image_size, self.letterbox_pad) for im in images]
            images, frames = [im for im, _ in boxed], [box for _, box in boxed]
        return preprocess(list(images), size=self.image_size).to(self.device), frames

    def features(self, image: np.ndarray, tasks: Sequence[str] | None = None) -> torch.Tensor:
        """Unit-norm embeddings (T, D, h, w) of all requested tasks (default all 10), one forward pass;
        with ``letterbox`` the grid covers the padded square input, not only the image."""
        check_image(image, "features(image)")
        return self.embed([image], self._resolve_tasks(tasks, TASKS))[0][0]

    def detect(
        self, image: np.ndarray, tasks: Sequence[str] | None = None, stages: StageTimes | None = None
    ) -> dict[str, TaskKeypoints]:
        """Five keypoints per requested task (default: every task with a prototype), in pixels of ``image``.
        ``stages`` (:meth:`stage_times`): the time of each stage (letterbox, trunk, modular or encoder, locate,
        postprocess) added to it, as the keypoint node profiles itself (funk_perception/stages.py)."""
        check_image(image, "detect(image)")
        names = self._resolve_tasks(tasks, self.tasks)
        embedded, (frame,) = self.embed([image], names, mirrored=self.mirror_maps, stages=stages)
        with timed(stages, "locate"):
            points, confidence = self.locate(embedded[0], names, embedded[1] if self.mirror_maps else None)
        with timed(stages, "postprocess"):
            pixels = _to_pixels(points, image, frame)
            conf = confidence.cpu().numpy().astype(np.float64)
        return {t: TaskKeypoints(t, pixels[i], conf[i]) for i, t in enumerate(names)}

    def locate(
        self, features: torch.Tensor, tasks: Sequence[str], mirrored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference-free keypoints from unit embeddings ``features`` (T, D, h, w) of ``tasks``:
        normalised ``(x, y)`` (T, 5, 2) and confidence (T, 5), by this detector's ``method``.
        ``mirrored``: the embeddings of the horizontally flipped input; its keypoint probability
        maps are flipped back and averaged with the plain ones before the peak is taken."""
        return self._method.locate(features, tasks, mirrored)

    def probability_maps(self, features: torch.Tensor, names: Sequence[str], method: str | None = None) -> torch.Tensor:
        """(T, 5, h, w) distributions over the cells: softmax of the heatmap logits, the bank's averaged
        votes, or ``softmax(logit_scale * cosine)`` to the prototypes; by ``method`` (default: the detector's,
        another builds that method's object from this detector's parts)."""
        chosen = self._method if not method or method == self.method else self._build(method)
        return chosen.probability_maps(features, names)

    def transfer(
        self, reference_image: np.ndarray, reference_keypoints: np.ndarray, target_image: np.ndarray, task: str
    ) -> TaskKeypoints:
        """The paper's protocol: reference keypoints (K, 2) in reference pixels -> matched target pixels."""
        check_image(reference_image, "transfer(reference_image)")
        check_image(target_image, "transfer(target_image)")
        (name,) = self._resolve_tasks([task], TASKS)
        keypoints = np.asarray(reference_keypoints, dtype=np.float64)
        if keypoints.ndim != 2 or keypoints.shape[1] != 2 or len(keypoints) == 0:
            raise ValueError(
                f"transfer(reference_keypoints): expected shape (K, 2) pixel x, y, found {keypoints.shape}"
            )
        height, width = reference_image.shape[:2]
        outside = (
            ~np.isfinite(keypoints).all(axis=1)
            | (keypoints[:, 0] < 0)
            | (keypoints[:, 0] > width)
            | (keypoints[:, 1] < 0)
            | (keypoints[:, 1] > height)
        )
        if outside.any():
            raise ValueError(
                f"transfer(reference_keypoints): expected finite points inside the {width}x{height} reference image, "
                f"found {keypoints[outside].tolist()} (rows {np.flatnonzero(outside).tolist()})"
            )
        embedded, (ref_frame, target_frame) = self.embed([reference_image, target_image], [name])
        feats = embedded[:, 0]  # (2, D, h, w)
        normalized = keypoints / np.array([width, height])
        if ref_frame is not None:
            normalized = ref_frame.to_input(normalized)  # the features are sampled in the padded input
        queries = sample_features(
            feats[:1], torch.from_numpy(normalized).float().to(self.device).unsqueeze(0)
        )  # (1, K, D)
        result = match(queries, feats[1:], refine=self.refine)  # evaluate's transfer rows call the same function
        points = result.refined[0]
        confidence = peak_confidence(result.similarity, self.logit_scale)[0].cpu().numpy().astype(np.float64)
        names = KEYPOINTS if len(keypoints) == NUM_KEYPOINTS else tuple(f"p{i + 1}" for i in range(len(keypoints)))
        return TaskKeypoints(name, _to_pixels(points, target_image, target_frame), confidence, names)

    # Batched, device-resident calls: the per-step path of the RL environment loop. Frames go in
    # once, results stay on the model's device, so N environments cost one forward pass and no host copies.

    def _frames_on_device(
        self, images: np.ndarray | torch.Tensor, where: str
    ) -> tuple[torch.Tensor, list[Letterbox | None]]:
        """uint8 ``(N, H, W, 3)`` RGB (numpy or torch, any device) -> ImageNet-normalised ``(N, 3, S, S)`` and each
        frame's letterbox geometry. Frames at the model's square size stay on the device (letterboxing them is the
        identity); any other size takes :meth:`_prepare`, the single-image path, so both see the same pixels."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"{where}: expected a uint8 (N, H, W, 3) numpy array or torch tensor, found {type(images).__name__}"
            )
        if images.dtype != torch.uint8:
            raise TypeError(f"{where}: expected dtype uint8, found {images.dtype}")
        if images.dim() != 4 or images.shape[-1] != 3 or 0 in images.shape:
            raise ValueError(f"{where}: expected a non-empty (N, H, W, 3) RGB batch, found {tuple(images.shape)}")
        if tuple(images.shape[1:3]) != (self.image_size, self.image_size):
            return self._prepare(list(images.cpu().numpy()))
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std, [None] * len(x)

    def _forward(self, x: torch.Tensor, names: list[str], dtype: torch.dtype | None, flip: bool | None) -> torch.Tensor:
        if self.runtime is not None and dtype not in (None, torch.float32):
            raise ValueError(
                f"dtype {dtype}: autocast applies to the torch backend, found backend {self.backend!r} "
                f"({self.precision}); pass dtype=None"
            )
        with torch.inference_mode(), self._autocast(dtype):
            if self.flip if flip is None else flip:
                return flip_averaged(lambda batch: self.encode(batch, names), x).float()
            return self.encode(x, names).float()

    def _autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        if dtype is None or dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def features_batch(
        self,
        images: np.ndarray | torch.Tensor,
        tasks: Sequence[str] | None = None,
        pool: int | None = None,
        dtype: torch.dtype | None = None,
        flip: bool | None = None,
    ) -> torch.Tensor:
        """Embeddings of N frames in one forward pass, returned float32 on the model's device.

        ``images``: uint8 ``(N, H, W, 3)`` RGB, numpy or torch. Without ``pool``:
        ``(N, T, D, h, w)`` unit-norm, as :meth:`features` per image; with ``pool=g``:
        ``(N, T, D, g, g)`` averages over a ``g x g`` grid of regions. ``dtype``
        (e.g. ``torch.bfloat16``) runs the forward pass under autocast. ``flip``:
        mirror-average as :meth:`features` does (default: this detector's ``flip``);
        ``False`` halves the cost where mirror-equivariance is not needed.
        """
        names = self._resolve_tasks(tasks, TASKS)
        x, _ = self._frames_on_device(images, "features_batch(images)")
        feats = self._forward(x, names, dtype, flip)
        if pool is None:
            return feats
        n, t, d, h, w = feats.shape
        return F.adaptive_avg_pool2d(feats.reshape(n * t, d, h, w), int(pool)).reshape(n, t, d, int(pool), int(pool))

    def trunk_features_batch(
        self, images: np.ndarray | torch.Tensor, pool: int | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The frozen ImageNet trunk alone (no modular network) on N frames: ``(N, C, h, w)`` or pooled ``(N, C, g, g)``."""
        x, _ = self._frames_on_device(images, "trunk_features_batch(images)")
        with torch.inference_mode(), self._autocast(dtype):
            feats = self.encoder.trunk(x)
        feats = feats.float()
        return feats if pool is None else F.adaptive_avg_pool2d(feats, int(pool))

    def keypoints_batch(
        self,
        images: np.ndarray | torch.Tensor,
        tasks: Sequence[str] | None = None,
        dtype: torch.dtype | None = None,
        flip: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`detect` for N frames with one forward pass, on the device: normalised points ``(N, T, K, 2)``
        (x / width, y / height of each frame) and confidences ``(N, T, K)``, tasks as given (default: all
        :attr:`tasks`); the same keypoints as :meth:`detect` frame by frame (``mirror_maps`` included)."""
        names = self._resolve_tasks(tasks, self.tasks)
        x, frames = self._frames_on_device(images, "keypoints_batch(images)")
        n = len(frames)
        if self.mirror_maps:  # as embed(): the padded input itself is flipped
            x = torch.cat([x, x.flip(-1)])
        feats = self._forward(x, names, dtype, flip)
        located = [self.locate(feats[i], names, feats[n + i] if self.mirror_maps else None) for i in range(n)]
        points = torch.stack([p for p, _ in located])
        if any(frame is not None for frame in frames):  # back from the letterboxed input to each frame
            points = torch.stack(
                [
                    p if f is None else torch.from_numpy(f.from_input(p.cpu().double().numpy())).to(p)
                    for p, f in zip(points, frames)
                ]
            )
        return points, torch.stack([c for _, c in located])

    def detect_region(
        self,
        image: np.ndarray,
        roi: Sequence[int],
        tasks: Sequence[str] | None = None,
        stages: StageTimes | None = None,
    ) -> dict[str, TaskKeypoints]:
        """``detect`` on the region ``roi = (x, y, width, height)`` of ``image`` (clipped to it), with the
        points in full-image pixels: lets an object detector point funk at one object in a cluttered scene."""
        check_image(image, "detect_region(image)")
        if len(roi) != 4:
            raise ValueError(f"detect_region(roi): expected (x, y, width, height), found {tuple(roi)}")
        x, y, w, h = (int(v) for v in roi)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"detect_region(roi): expected a region overlapping the {image.shape[1]}x{image.shape[0]} image, "
                f"found (x={x}, y={y}, width={w}, height={h})"
            )
        with timed(stages, "letterbox"):  # cutting the region out is part of making the network's input
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        found = self.detect(crop, tasks, stages)
        with timed(stages, "postprocess"):
            offset = np.array([x0, y0], dtype=np.float64)
            return {t: TaskKeypoints(t, kp.points + offset, kp.confidence, kp.names) for t, kp in found.items()}
