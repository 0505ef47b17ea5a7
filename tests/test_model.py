"""The task-conditioned encoder: trunks, modular network, gating, save/load (docs/DESIGN.md, "Model")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch  # before anything that could create a GL context

from funk_perception.model import (
    NAMED_CONFIGS,
    TRUNKS,
    CheckpointError,
    EncoderConfig,
    FunctionalEncoder,
    GatingNetwork,
    ModularConfig,
    build_trunk,
    load_efficientnet_lite,
    named_config,
    preprocess,
    resolve_device,
)
from funk_perception.model.trunk import IMAGENET_MEAN, IMAGENET_STD
from funk_perception.tasks import TASKS


@pytest.fixture(scope="module")
def random_lite0():
    torch.manual_seed(0)
    return build_trunk("lite0", pretrained=False)


def tiny_encoder(trunk, gating: str = "task", seed: int = 0, **modular) -> FunctionalEncoder:
    config = named_config("tiny")
    config.modular = dataclasses.replace(config.modular, gating=gating, **modular)
    torch.manual_seed(seed)
    return FunctionalEncoder(config, trunk=trunk)


def images(batch: int = 2, height: int = 64, width: int = 80, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TRUNKS)
def test_trunk_output_is_stride_16_with_the_documented_channels(name):
    expected_channels = {"lite0": 112, "lite2": 120, "lite0-ms": 432, "lite2-ms": 472, "resnet50": 1024}[name]
    trunk = build_trunk(name, pretrained=False)
    assert trunk.out_channels == expected_channels and trunk.stride == 16
    for height, width in ((64, 64), (67, 93)):
        out = trunk(torch.zeros(1, 3, height, width))
        assert tuple(out.shape) == (1, expected_channels, math.ceil(height / 16), math.ceil(width / 16))


@pytest.mark.parametrize("name", ["lite0-ms", "lite2-ms"])
def test_multi_stage_trunk_is_the_normalised_stride_16_stage_then_the_upsampled_stride_32_stage(name):
    base = build_trunk(name.removesuffix("-ms"))
    trunk = build_trunk(name)
    x = images(2, 96, 112)
    with torch.no_grad():
        out, s16 = trunk(x), base(x)
    c = base.out_channels
    # The first block is exactly the plain trunk's output, normalised: the same weights, the same cut.
    torch.testing.assert_close(out[:, :c], torch.nn.functional.normalize(s16, dim=1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[:, c:].norm(dim=1), torch.ones(2, 6, 7), atol=1e-5, rtol=1e-4)
    # The stride-32 half is spatially smooth (upsampled from a 3 x 4 grid), not a copy of the stride-16 half.
    assert not torch.allclose(out[:, c : 2 * c], out[:, :c], atol=1e-2)


def test_input_projection_keeps_layer_0_narrow_and_checkpoints_without_it_still_load(random_lite0, tmp_path):
    projected = tiny_encoder(random_lite0, input_projection=24).eval()
    assert projected.head.project.weight.shape == (24, 112, 1, 1)
    assert projected.head.blocks[0][0].weight.shape[1] == 24
    with torch.no_grad():
        assert tuple(projected(images()).shape) == (2, 10, 16, 4, 5)
    plain = tiny_encoder(random_lite0)
    assert not hasattr(plain.head, "project")
    path = tmp_path / "plain.pt"
    plain.save(path)
    assert FunctionalEncoder.load(path, trunk=random_lite0).config.modular.input_projection == 0
    with pytest.raises(ValueError, match="ModularConfig.input_projection"):
        ModularConfig(input_projection=-1)
    config = named_config("paper_ms")
    assert (config.trunk, config.modular.input_projection, config.modular.gating) == ("lite0-ms", 128, "task")


def test_trunk_stays_frozen_and_in_eval_mode_when_the_encoder_trains(random_lite0):
    encoder = tiny_encoder(random_lite0).train()
    assert encoder.head.training
    assert not encoder.trunk.training
    assert not any(m.training for m in encoder.trunk.modules())
    assert not any(p.requires_grad for p in encoder.trunk.parameters())
    running_mean = encoder.trunk.body[1].running_mean.clone()
    encoder(images())
    assert torch.equal(encoder.trunk.body[1].running_mean, running_mean)


def test_only_non_trunk_parameters_receive_gradients(random_lite0):
    encoder = tiny_encoder(random_lite0).train()
    out = encoder(images(), tasks=["pour", "flip", "poke", "mix"])
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ((out * weights).sum() * encoder.logit_scale).backward()
    for name, param in encoder.named_parameters():
        if name.startswith("trunk."):
            assert param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert encoder.log_logit_scale.grad is not None


def test_task_gating_rows_lie_on_the_simplex_and_differ_across_tasks():
    torch.manual_seed(0)
    gating = GatingNetwork(ModularConfig(gating="task"))
    weights = gating(torch.arange(len(TASKS)))
    assert [tuple(w.shape) for w in weights] == [(10, 6, 6), (10, 6, 6), (10, 1, 6)]
    for w in weights:
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert (w[0] - w[1]).abs().max() > 1e-4


def test_uniform_gating_is_exactly_uniform_and_shared_gating_is_one_for_all_tasks():
    uniform = GatingNetwork(ModularConfig(gating="uniform"))(torch.arange(len(TASKS)))
    for w in uniform:
        assert torch.equal(w, torch.full_like(w, 1.0 / w.shape[-1]))
    assert not list(GatingNetwork(ModularConfig(gating="uniform")).parameters())
    torch.manual_seed(0)
    shared = GatingNetwork(ModularConfig(gating="shared"))(torch.arange(len(TASKS)))
    for w in shared:
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert torch.equal(w, w[:1].expand_as(w))
        assert (w[0] - 1.0 / w.shape[-1]).abs().max() > 1e-4  # learned, not uniform


@pytest.mark.parametrize("gating", ["task", "uniform", "shared"])
def test_batched_all_task_forward_equals_one_task_at_a_time(random_lite0, gating):
    encoder = tiny_encoder(random_lite0, gating).eval()
    with torch.no_grad():
        features = encoder.trunk(images())
        batched = encoder.embed(features)  # 10 tasks > 3 modules: the conv-then-mix path
        few = encoder.embed(features, ["scoop", "Mash/Pound"])  # the mix-then-conv path
        single = torch.cat([encoder.embed(features, [t]) for t in TASKS], dim=1)
        per_sample = encoder.embed_per_sample(features, ["pour", "flip"])
    assert tuple(batched.shape) == (2, len(TASKS), 16, 4, 5)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(few, single[:, [1, 3]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_sample, torch.stack([single[0, 0], single[1, 9]]), atol=1e-5, rtol=1e-5)
    if gating == "task":
        assert (single[:, 0] - single[:, 1]).abs().max() > 1e-3
    else:
        torch.testing.assert_close(single[:, 0], single[:, 1])


def test_output_is_unit_norm_per_location_and_shapes_follow_the_image(random_lite0):
    encoder = tiny_encoder(random_lite0).eval()
    with torch.no_grad():
        out = encoder(images(1, 67, 93), tasks=["pour"])
    assert tuple(out.shape) == (1, 1, 16, 5, 6)
    torch.testing.assert_close(out.norm(dim=2), torch.ones(1, 1, 5, 6))
    assert encoder.stride == 16 and encoder.embedding_dim == 16
    torch.testing.assert_close(encoder.logit_scale, torch.tensor(1 / 0.07))


def test_paper_config_sizes_and_final_relu_switch(random_lite0):
    config = named_config("paper")
    assert config.modular.modules_per_layer == (6, 6, 6, 1)
    assert config.modular.kernels == (7, 3, 3, 1) and config.modular.paddings == (3, 1, 1, 0)
    assert (config.modular.filters, config.modular.embedding_dim, config.modular.gating_hidden) == (128, 100, 100)
    assert {"paper", "uniform", "shared", "tiny"} <= set(NAMED_CONFIGS)
    encoder = FunctionalEncoder(config, trunk=random_lite0).eval()
    assert encoder.config.modular.in_channels == 112
    with torch.no_grad():
        assert tuple(encoder(images(1, 32, 32)).shape) == (1, 10, 128, 2, 2)
    signed = tiny_encoder(random_lite0, final_relu=False).eval()
    with torch.no_grad():
        assert (signed(images()) < 0).any()
        assert (tiny_encoder(random_lite0)(images()) >= 0).all()


def test_same_seed_gives_same_model(random_lite0):
    with torch.no_grad():
        a = tiny_encoder(random_lite0, seed=3).eval()(images())
        b = tiny_encoder(random_lite0, seed=3).eval()(images())
        c = tiny_encoder(random_lite0, seed=4).eval()(images())
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_save_load_round_trip_gives_identical_outputs(random_lite0, tmp_path):
    encoder = tiny_encoder(random_lite0)
    with torch.no_grad():
        encoder.log_logit_scale.fill_(2.5)
    encoder.train()
    encoder(images())  # moves the BatchNorm running statistics away from their initial values
    encoder.eval()
    prototypes = {t: torch.randn(5, 16) for t in TASKS[:2]}
    path = tmp_path / "sub" / "model.pt"
    encoder.save(path, extra={"prototypes": prototypes, "epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    assert all(not k.startswith("trunk.") for k in torch.load(path, weights_only=True)["state_dict"])
    loaded = FunctionalEncoder.load(path, trunk=random_lite0)
    assert not loaded.training and loaded.config == encoder.config
    with torch.no_grad():
        assert torch.equal(loaded(images()), encoder(images()))
    assert torch.equal(loaded.logit_scale, encoder.logit_scale)
    assert loaded.loaded_extra["epoch"] == 3
    assert torch.equal(loaded.loaded_extra["prototypes"]["pour"], prototypes["pour"])
    assert FunctionalEncoder(named_config("tiny"), trunk=random_lite0).loaded_extra == {}
    with pytest.raises(TypeError, match="extra\\['bad'\\]"):
        encoder.save(tmp_path / "bad.pt", extra={"bad": np.zeros(3)})


def test_load_builds_the_pretrained_trunk_when_none_is_given(random_lite0, tmp_path):
    encoder = tiny_encoder(random_lite0)
    encoder.save(tmp_path / "model.pt")
    loaded = FunctionalEncoder.load(tmp_path / "model.pt", device="auto")
    assert loaded.trunk.name == "lite0" and loaded.log_logit_scale.device == resolve_device("auto")
    assert not torch.equal(loaded.trunk.body[0].weight, random_lite0.body[0].weight)


def test_bad_checkpoints_give_clear_errors(random_lite0, tmp_path):
    encoder = tiny_encoder(random_lite0)
    good = tmp_path / "good.pt"
    encoder.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n")
    cases = {
        tmp_path / "missing.pt": "not found",
        truncated: "truncated or corrupt",
        foreign: "not a funk encoder checkpoint",
        text: "not a funk encoder checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            FunctionalEncoder.load(path, trunk=random_lite0)
        assert str(path) in str(info.value)

    payload = torch.load(good, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        FunctionalEncoder.load(tmp_path / "future.pt", trunk=random_lite0)

    payload = torch.load(good, weights_only=True)
    payload["config"]["modular"]["filters"] = 32
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match its config"):
        FunctionalEncoder.load(tmp_path / "mismatch.pt", trunk=random_lite0)

    payload = torch.load(good, weights_only=True)
    payload["config"]["colour"] = "blue"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="colour"):
        FunctionalEncoder.load(tmp_path / "unknown.pt", trunk=random_lite0)

    with pytest.raises(CheckpointError, match="trunk 'resnet50' given"):
        FunctionalEncoder.load(good, trunk=build_trunk("resnet50", pretrained=False))


def test_missing_resnet50_weights_name_where_they_were_looked_for(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(FileNotFoundError, match="resnet50-\\*.pth") as info:
            build_trunk("resnet50")
        assert str(tmp_path / "hub") in str(info.value)
        with pytest.raises(FileNotFoundError, match="nowhere.pth"):
            build_trunk("resnet50", weights=tmp_path / "nowhere.pth")
        # A weights file in the hub cache is found and loaded exactly.
        torch.manual_seed(0)
        reference = __import__("torchvision").models.resnet50(weights=None)
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet50-0000.pth")
        trunk = build_trunk("resnet50")
        assert torch.equal(trunk.body[0].weight, reference.conv1.weight)
    finally:
        torch.hub.set_dir(previous)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="ModularConfig.kernels"):
        ModularConfig(kernels=(7, 3, 3))
    with pytest.raises(ValueError, match="ModularConfig.gating"):
        ModularConfig(gating="random")
    with pytest.raises(ValueError, match="last layer must have 1 module"):
        ModularConfig(modules_per_layer=(6, 6, 6, 2))
    with pytest.raises(ValueError, match="EncoderConfig.trunk"):
        EncoderConfig(trunk="vgg")
    with pytest.raises(ValueError, match="unknown task"):
        FunctionalEncoder.task_ids(tiny_encoder(build_trunk("lite0", pretrained=False)), ["juggle"])
    assert ModularConfig(filters=[8, 8, 8, 4]).out_channels == 4


def test_preprocess_normalises_resizes_and_rejects_bad_input():
    image = np.full((30, 40, 3), 255, dtype=np.uint8)
    out = preprocess(image)
    assert tuple(out.shape) == (1, 3, 30, 40) and out.dtype == torch.float32
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    assert tuple(preprocess([image, np.zeros((60, 20, 3), np.uint8)], size=(32, 48)).shape) == (2, 3, 32, 48)
    assert tuple(preprocess(np.zeros((4, 10, 12, 3), np.uint8), size=16).shape) == (4, 3, 16, 16)
    with pytest.raises(TypeError, match="uint8"):
        preprocess(image.astype(np.float32))
    with pytest.raises(ValueError, match="\\(H, W, 3\\)"):
        preprocess(np.zeros((30, 40, 4), np.uint8))
    with pytest.raises(ValueError, match="different sizes"):
        preprocess([image, np.zeros((10, 10, 3), np.uint8)])
    with pytest.raises(TypeError, match="found str"):
        preprocess("cat.jpg")


def test_lite0_imagenet_weights_load_exactly_a_cat_is_a_cat():
    # A wrong key mapping gives a near-uniform or nonsense prediction; exact
    # weights put a cat class (281-285) on top with high confidence.
    from skimage import data

    model = load_efficientnet_lite("lite0")
    x = preprocess(data.chelsea(), size=224)
    x = (x * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) - 127 / 255) / (
        128 / 255
    )
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in range(281, 286) and probs[top5[0]] > 0.5
    # The trunk is the same network cut at stride 16, fed ImageNet-normalised input.
    trunk = build_trunk("lite0")
    with torch.no_grad():
        expected = model.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
        torch.testing.assert_close(trunk(preprocess(data.chelsea(), size=224)), expected, atol=1e-4, rtol=1e-4)
