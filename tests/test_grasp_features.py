"""The pooled-feature cache and batching of funk_grasp.features, on a stub top (no encoder: fast)."""

import os

import torch
from torch import nn

from funk_grasp.features import MAX_MAPS_PER_BATCH, file_identity, top_features
from funk_grasp.model import FeatureConfig


class StubTop(nn.Module):
    """Stands in for GraspFeatures: ``top`` scales the pooled maps and records each batch's size."""

    def __init__(self, encoder: str, maps: int = 1, scale: float = 1.0) -> None:
        super().__init__()
        self.config = FeatureConfig(kind="funk", tasks=("pour",), pooling="mean", encoder=encoder)
        self.register_buffer("in_scale", torch.ones(3))
        self.maps, self.scale, self.batches = maps, scale, []

    def top(self, base: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(base))
        return base.float().mean(dim=(-2, -1)) * self.scale


def test_replaced_weights_with_the_same_size_and_mtime_are_not_served_stale(tmp_path):
    weights = tmp_path / "encoder.pt"
    maps = torch.ones(5, 2, 4, 4, dtype=torch.float16)
    weights.write_bytes(b"A" * 64)
    os.utime(weights, ns=(10**18, 10**18))
    first = top_features(StubTop(str(weights), scale=1.0), maps, cache=tmp_path / "cache")
    # other weights at the same path, same size, mtime kept (as cp -p or rsync -a leave it)
    weights.write_bytes(b"B" * 64)
    os.utime(weights, ns=(10**18, 10**18))
    second = top_features(StubTop(str(weights), scale=2.0), maps, cache=tmp_path / "cache")
    assert torch.equal(second, 2 * first)
    # the same bytes under another name are the same weights: the cached features serve it
    copy = tmp_path / "renamed.pt"
    copy.write_bytes(b"B" * 64)
    assert file_identity(str(copy)) == file_identity(str(weights))
    stub = StubTop(str(copy), scale=3.0)
    assert torch.equal(top_features(stub, maps, cache=tmp_path / "cache"), second) and stub.batches == []


def test_many_task_tops_take_fewer_images_per_batch(tmp_path):
    maps = torch.randn(50, 2, 4, 4).to(torch.float16)
    one = StubTop("", maps=1)
    ten = StubTop("", maps=10)
    single, many = top_features(one, maps), top_features(ten, maps)
    assert max(one.batches) == 50 and len(one.batches) == 1  # one task: up to batch_size images
    assert max(ten.batches) * 10 <= MAX_MAPS_PER_BATCH and sum(ten.batches) == 50
    assert torch.allclose(single, many)
