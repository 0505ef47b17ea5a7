"""Shipping a checkpoint at half precision keeps its outputs and metadata."""

import pytest
import torch

from funk_perception.detector_config import DetectorConfig
from funk_perception.model import CheckpointError, FunctionalEncoder, build_trunk, named_config
from funk_perception.model.export import export_checkpoint, main


def _trained_like_encoder() -> FunctionalEncoder:
    torch.manual_seed(0)
    config = named_config("paper")
    encoder = FunctionalEncoder(config, trunk=build_trunk("lite0", pretrained=False)).eval()
    # move BatchNorm statistics away from their 0/1 defaults, as training does
    for module in encoder.head.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return encoder


def test_float16_export_halves_the_file_and_keeps_outputs_and_extra(tmp_path):
    encoder = _trained_like_encoder()
    source, shipped = tmp_path / "full.pt", tmp_path / "half.pt"
    prototypes = {"pour": torch.nn.functional.normalize(torch.randn(5, 128), dim=-1)}
    encoder.save(source, extra={"prototypes": prototypes, "step": 7})
    export_checkpoint(source, shipped)

    assert shipped.stat().st_size < 0.55 * source.stat().st_size
    loaded = FunctionalEncoder.load(shipped, trunk=encoder.trunk).eval()
    assert loaded.loaded_extra["step"] == 7 and loaded.loaded_extra["stored_dtype"] == "float16"
    assert torch.equal(loaded.loaded_extra["prototypes"]["pour"], prototypes["pour"])
    assert all(p.dtype == torch.float32 for p in loaded.head.parameters())
    features = torch.randn(2, encoder.trunk.out_channels, 8, 10)
    with torch.no_grad():
        a, b = encoder.embed(features, ["pour", "poke"]), loaded.embed(features, ["pour", "poke"])
    cosine = (a * b).sum(dim=2)
    assert cosine.min() > 0.999


def test_export_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt"):
        export_checkpoint(bogus, tmp_path / "out.pt")
    assert main([str(bogus), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "notes.pt" in err and "Traceback" not in err
    assert not (tmp_path / "out.pt").exists()
    assert not (tmp_path / "out.pt").exists()


def test_export_records_the_default_detect_method_and_refuses_an_unknown_one(tmp_path):
    from funk_perception.detector import FunctionalKeypointDetector

    encoder = _trained_like_encoder()
    source = tmp_path / "full.pt"
    prototypes = {"pour": torch.nn.functional.normalize(torch.randn(5, encoder.embedding_dim), dim=-1)}
    encoder.save(source, extra={"prototypes": prototypes})
    export_checkpoint(source, tmp_path / "plain.pt")
    export_checkpoint(source, tmp_path / "named.pt", detect_method="prototypes")
    plain = FunctionalEncoder.load(tmp_path / "plain.pt", trunk=encoder.trunk).loaded_extra
    assert plain["detector_config"] == DetectorConfig().to_extra()  # "auto": whichever part the file holds
    named = FunctionalKeypointDetector.load(tmp_path / "named.pt", device="cpu", trunk=encoder.trunk)
    assert named.encoder.loaded_extra["detector_config"]["method"] == "prototypes" and named.method == "prototypes"
    assert "detect_method" not in named.encoder.loaded_extra  # one name per idea: the config's field
    with pytest.raises(ValueError, match="method.*nearest"):
        export_checkpoint(source, tmp_path / "bad.pt", detect_method="nearest")
    assert not (tmp_path / "bad.pt").exists()
    # a checkpoint naming a method it cannot run is refused when loaded, naming the file and the field
    encoder.save(tmp_path / "odd.pt", extra={"prototypes": prototypes, "detect_method": "nearest"})
    with pytest.raises(ValueError, match=r"odd.pt.*detect_method"):
        FunctionalKeypointDetector.load(tmp_path / "odd.pt", device="cpu", trunk=encoder.trunk)
