"""Joined encoders (seeds of one recipe, optionally with the trunk blended in): the composite embedding."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch  # before anything that could create a GL context
import torch.nn.functional as F
from test_train import _make_dataset

from funk_perception.model import EncoderConfig, FunctionalEncoder, build_trunk, named_config
from funk_perception.train.ensemble import join_checkpoints, join_encoders, main


@pytest.fixture(scope="module")
def trunk():
    torch.manual_seed(0)
    return build_trunk("lite0", pretrained=False)


def member(trunk, seed: int, **modular) -> FunctionalEncoder:
    config = named_config("tiny")
    config.modular = dataclasses.replace(config.modular, **modular)
    torch.manual_seed(seed)
    encoder = FunctionalEncoder(config, trunk=trunk)
    with torch.no_grad():
        encoder.log_logit_scale.fill_(math.log(10.0 + seed))
    return encoder.eval()


def images(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(seed))


def cosines(embedding: torch.Tensor) -> torch.Tensor:
    """Cosine between every cell of image 0 and every cell of image 1, per task: (T, h*w, h*w)."""
    a, b = embedding[0].flatten(2), embedding[1].flatten(2)  # (T, D, hw)
    return torch.einsum("tdi,tdj->tij", a, b)


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_joined_cosine_is_the_members_mean_blended_with_the_trunk(trunk, weight):
    a, b = member(trunk, 1), member(trunk, 2)
    joined = join_encoders([a, b], weight)
    x = images()
    with torch.no_grad():
        out = joined(x, ["pour", "flip"])
        ca, cb = cosines(a(x, ["pour", "flip"])), cosines(b(x, ["pour", "flip"]))
        ct = cosines(F.normalize(trunk(x), dim=1).unsqueeze(1))
    assert out.shape[2] == joined.embedding_dim == 2 * 16 + (112 if weight else 0)
    torch.testing.assert_close(out.norm(dim=2), torch.ones(2, 2, 3, 4))
    expected = (ca + cb + weight**2 * ct) / (2 + weight**2)
    torch.testing.assert_close(cosines(out), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(joined.logit_scale, torch.tensor(11.5))  # mean of 11 and 12


def test_per_sample_embedding_equals_the_all_task_one(trunk):
    joined = join_encoders([member(trunk, 1), member(trunk, 2)], 0.5)
    features = trunk(images())
    with torch.no_grad():
        every = joined.embed(features, ["scoop", "mix"])
        one = joined.embed_per_sample(features, ["mix", "scoop"])
    torch.testing.assert_close(one[0], every[0, 1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(one[1], every[1, 0], atol=1e-5, rtol=1e-4)


def test_one_member_without_trunk_is_the_member_itself(trunk):
    a = member(trunk, 3)
    with torch.no_grad():
        assert torch.equal(join_encoders([a])(images()), a(images()))


def test_joining_rejects_different_architectures_and_bad_weights(trunk):
    with pytest.raises(ValueError, match="member 1's config differs"):
        join_encoders([member(trunk, 1), member(trunk, 2, filters=8)])
    with pytest.raises(ValueError, match="at least one member"):
        join_encoders([])
    with pytest.raises(ValueError, match="EncoderConfig.trunk_weight"):
        EncoderConfig(trunk_weight=-1.0)
    with pytest.raises(ValueError, match="EncoderConfig.members"):
        EncoderConfig(members=0)


def test_join_checkpoints_writes_a_loadable_encoder_with_prototypes_of_the_joined_size(tmp_path, capsys):
    pretrained = build_trunk("lite0")
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"seed{seed}.pt")
        member(pretrained, seed).save(paths[-1], {"prototypes": {}})
    csv_path = _make_dataset(tmp_path)
    out = join_checkpoints(
        paths,
        tmp_path / "joined.pt",
        csv_path,
        trunk_weight=0.5,
        num_threads=1,
        device="cpu",
        cache_root=tmp_path / "cache",
    )
    loaded = FunctionalEncoder.load(out, trunk=pretrained)
    assert (loaded.config.members, loaded.config.trunk_weight) == (2, 0.5)
    prototypes = loaded.loaded_extra["prototypes"]
    assert set(prototypes) == {"pour", "scoop"} and tuple(prototypes["pour"].shape) == (5, 2 * 16 + 112)
    torch.testing.assert_close(prototypes["pour"].norm(dim=1), torch.ones(5))
    assert [m["path"] for m in loaded.loaded_extra["joined_from"]] == [str(p) for p in paths]
    direct = join_encoders([FunctionalEncoder.load(p, trunk=pretrained) for p in paths], 0.5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images()), direct(images()))
    assert (
        main(
            [
                "--member",
                str(paths[0]),
                "--data",
                str(csv_path),
                "--out",
                str(tmp_path / "x.pt"),
                "--trunk-weight",
                "-2",
            ]
        )
        == 2
    )
    assert "trunk_weight" in capsys.readouterr().err
