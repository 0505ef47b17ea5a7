"""DetectorConfig: the frozen settings a :class:`funk_perception.detector.FunctionalKeypointDetector` runs with.

A checkpoint carries them as ``extra["detector_config"]`` (written by ``python -m funk_perception.model.export``
and ``scripts/build_model.py``), so ``FunctionalKeypointDetector.load``, ``evaluate`` and the ROS node start from
the same settings and override only what they are told to. Files written before this key existed name only their
detect method (``extra["detect_method"]``); :meth:`DetectorConfig.from_extra` reads them as that method with every
other setting at its default, which is how they have always been run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from funk_perception.detect_methods import DETECT_METHODS
from funk_perception.matching import REFINE_METHODS
from funk_perception.model.letterbox import LETTERBOX_PADS

#: the key of a checkpoint's ``extra`` that holds :meth:`DetectorConfig.to_extra`
EXTRA_KEY = "detector_config"


@dataclass(frozen=True)
class DetectorConfig:
    """How a detector turns a frame into keypoints; every field has the default the shipped model runs with.

    :param method: the detect method (:data:`funk_perception.detect_methods.DETECT_METHODS`), or ``auto``: the
        heatmap head, else the bank, else the prototypes, whichever the checkpoint holds first
    :param refine: sub-cell refinement of every peak (:data:`funk_perception.matching.REFINE_METHODS`)
    :param flip: average every feature map with that of the mirrored image
    :param letterbox: keep the aspect ratio (pad the shorter side) instead of squashing
    :param letterbox_pad: what the pad holds (:data:`funk_perception.model.letterbox.LETTERBOX_PADS`)
    :param mirror_maps: average the keypoint probability maps of the image and of its mirrored input
    :param image_size: the network's square input side; None: the encoder's own
    """

    method: str = "auto"
    refine: str = "parabolic"
    flip: bool = False
    letterbox: bool = True
    letterbox_pad: str = "mean"
    mirror_maps: bool = False
    image_size: int | None = None

    def __post_init__(self) -> None:
        choices = {"method": ("auto", *DETECT_METHODS), "refine": REFINE_METHODS, "letterbox_pad": LETTERBOX_PADS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"DetectorConfig.{name}: expected one of {', '.join(allowed)}, found {value!r}")
        for name in ("flip", "letterbox", "mirror_maps"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DetectorConfig.{name}: expected a bool, found {getattr(self, name)!r}")
        size = self.image_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
            raise ValueError(f"DetectorConfig.image_size: expected None or a whole number >= 16, found {size!r}")

    def override(self, **changes: object) -> DetectorConfig:
        """This config with the fields in ``changes`` that are not None replaced (None: keep this config's)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_extra(self) -> dict[str, object]:
        """The plain dict a checkpoint stores as ``extra["detector_config"]``."""
        return asdict(self)

    @classmethod
    def from_extra(cls, extra: Mapping[str, object], where: str = "checkpoint") -> DetectorConfig:
        """The config a checkpoint's ``extra`` names; ``where`` (the file) goes into every error."""
        stored = extra.get(EXTRA_KEY)
        if stored is None:
            legacy = extra.get("detect_method")
            return cls() if legacy is None else cls._checked(where, "detect_method", method=legacy)
        if not isinstance(stored, Mapping):
            raise ValueError(
                f"{where}: extra[{EXTRA_KEY!r}]: expected a dict of DetectorConfig fields, found {type(stored).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(stored) - known)
        if unknown:
            raise ValueError(
                f"{where}: extra[{EXTRA_KEY!r}]: expected fields among {', '.join(sorted(known))}, found {unknown}"
            )
        return cls._checked(where, EXTRA_KEY, **dict(stored))

    @classmethod
    def _checked(cls, where: str, key: str, **values: object) -> DetectorConfig:
        try:
            return cls(**values)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: extra[{key!r}]: {error}") from None
