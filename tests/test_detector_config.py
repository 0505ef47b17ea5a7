"""DetectorConfig: the detector's settings, stored in the checkpoint, read back by load, evaluate and export."""

from pathlib import Path

import pytest

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.detector_config import DetectorConfig
from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.model.export import export_checkpoint
from funk_perception.model.trunk import build_trunk
from funk_perception.shipped import default_checkpoint


@pytest.fixture(scope="module")
def shipped() -> FunctionalEncoder:
    # an untrained trunk of the right kind: these tests read settings, not features
    trunk = build_trunk(FunctionalEncoder.read_checkpoint(default_checkpoint())["config"]["trunk"], pretrained=False)
    return FunctionalEncoder.load(default_checkpoint(), device="cpu", trunk=trunk)


def _saved(encoder: FunctionalEncoder, path: Path, **extra: object) -> Path:
    kept = {k: v for k, v in encoder.loaded_extra.items() if k not in ("detect_method", "detector_config")}
    encoder.save(path, {**kept, **extra})
    return path


def test_the_shipped_file_runs_bank_heatmap_with_default_settings(shipped: FunctionalEncoder) -> None:
    config = DetectorConfig.from_extra(shipped.loaded_extra, "shipped")
    assert config == DetectorConfig(method="bank_heatmap")
    detector = FunctionalKeypointDetector.from_encoder(shipped)
    assert detector.config == DetectorConfig(method="bank_heatmap", image_size=224)


def test_a_stored_config_is_what_load_runs_and_arguments_override_it(
    shipped: FunctionalEncoder, tmp_path: Path
) -> None:
    stored = DetectorConfig(method="heatmap", refine="softargmax", letterbox=False, mirror_maps=True, image_size=160)
    path = _saved(shipped, tmp_path / "configured.pt", detector_config=stored.to_extra())
    loaded = FunctionalKeypointDetector.load(path, device="cpu", trunk=shipped.trunk)
    assert loaded.config == stored
    overridden = FunctionalKeypointDetector.load(
        path, device="cpu", trunk=shipped.trunk, method="bank", mirror_maps=False, image_size=224
    )
    assert overridden.config == stored.override(method="bank", mirror_maps=False, image_size=224)
    # what a detector runs now is what export stores: the round trip keeps every field
    assert DetectorConfig.from_extra({"detector_config": overridden.config.to_extra()}) == overridden.config


def test_export_stores_the_config_and_keeps_the_source_settings(shipped: FunctionalEncoder, tmp_path: Path) -> None:
    source = _saved(shipped, tmp_path / "src.pt", detector_config=DetectorConfig(mirror_maps=True).to_extra())
    export_checkpoint(source, tmp_path / "out.pt", detect_method="bank")
    extra = FunctionalEncoder.read_checkpoint(tmp_path / "out.pt")["extra"]
    assert extra["detector_config"] == DetectorConfig(method="bank", mirror_maps=True).to_extra()
    assert "detect_method" not in extra
    # a file of before the config (the method alone) exports to the same config with the method
    legacy = _saved(shipped, tmp_path / "legacy.pt", detect_method="heatmap")
    export_checkpoint(legacy, tmp_path / "legacy-out.pt")
    assert FunctionalEncoder.read_checkpoint(tmp_path / "legacy-out.pt")["extra"]["detector_config"]["method"] == (
        "heatmap"
    )


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        (
            {"method": "nearest"},
            r"bad.pt: extra\['detector_config'\]: DetectorConfig.method: expected one of .*nearest",
        ),
        ({"refine": "cubic"}, r"DetectorConfig.refine: expected one of .*'cubic'"),
        ({"mirror_maps": "yes"}, r"DetectorConfig.mirror_maps: expected a bool, found 'yes'"),
        ({"image_size": 8}, r"DetectorConfig.image_size: expected None or a whole number >= 16, found 8"),
        ({"thresh": 0.5}, r"bad.pt: extra\['detector_config'\]: expected fields among .*\['thresh'\]"),
        ("bank", r"expected a dict of DetectorConfig fields, found str"),
    ],
)
def test_a_bad_stored_config_names_the_file_the_field_and_what_was_found(
    shipped: FunctionalEncoder, tmp_path: Path, stored: object, match: str
) -> None:
    path = _saved(shipped, tmp_path / "bad.pt", detector_config=stored)
    with pytest.raises(ValueError, match=match):
        FunctionalKeypointDetector.load(path, device="cpu", trunk=shipped.trunk)


def test_the_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DetectorConfig().method = "bank"  # type: ignore[misc]
