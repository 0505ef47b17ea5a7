"""The grasp-success model on the real shipped encoder: the head fits a tiny set, checkpoints round-trip, training resumes."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from funk_grasp.data import ANGLE_BINS, load_patches, read_split
from funk_grasp.features import base_maps, top_features
from funk_grasp.model import FeatureConfig, GraspHead, GraspModel, load_encoder, pool
from funk_grasp.train import TrainConfig, fit, load_split
from funk_perception.model import preprocess

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "grasp_pinto"
ENCODER = ROOT / "models" / "funk-lite0-synth.pt"


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    return load_encoder(ENCODER)


def test_pooling_shapes():
    maps = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert pool(maps, "mean").shape == (2, 3)
    centre = pool(maps, "centre")
    assert torch.allclose(centre, maps[:, :, 3:5, 3:5].mean(dim=(2, 3)))
    assert pool(maps, "mean_centre").shape == (2, 6)


@pytest.mark.parametrize("kind,tasks", [("trunk", ("pour",)), ("funk", ("lift_something", "pour"))])
def test_head_overfits_a_tiny_set(encoder, kind, tasks):
    torch.manual_seed(0)
    model = GraspModel(FeatureConfig(kind=kind, tasks=tasks, pooling="mean_centre", encoder=str(ENCODER)), encoder)
    patches = load_patches(read_split(FIXTURE / "Train"))
    feats = top_features(model.features, base_maps(model.features, patches.images, cache=None, progress=False))
    assert feats.shape == (len(patches), model.features.out_dim)
    labels = torch.from_numpy(patches.labels)
    one_hot = F.one_hot(torch.from_numpy(patches.bins), ANGLE_BINS).float()
    head = model.head
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    head.train()
    for _ in range(150):
        loss = F.binary_cross_entropy_with_logits(head(feats, one_hot), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        predicted = torch.sigmoid(head(feats, one_hot)) > 0.5
    assert loss.item() < 0.05
    assert torch.equal(predicted, labels > 0.5)


def test_head_uses_the_angle():
    torch.manual_seed(0)
    head = GraspHead(4, hidden=32, dropout=0.0)
    feats = torch.ones(ANGLE_BINS, 4)  # same patch at every angle: only the angle can explain the label
    bins = torch.arange(ANGLE_BINS)
    labels = (bins < 9).float()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.binary_cross_entropy_with_logits(head(feats, F.one_hot(bins, ANGLE_BINS).float()), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(head(feats, F.one_hot(bins, ANGLE_BINS).float()) > 0, labels > 0.5)


def _config(out: Path, mode: str, epochs: int, resume: bool = False) -> TrainConfig:
    features = FeatureConfig(kind="funk", tasks=("lift_something",), pooling="mean", encoder=str(ENCODER))
    return TrainConfig(
        data=FIXTURE,
        out=out,
        features=features,
        mode=mode,
        epochs=epochs,
        batch_size=8,
        seed=3,
        device="cpu",
        resume=resume,
        checkpoint_every=1,
    )


@pytest.mark.parametrize("mode", ["head", "joint"])
def test_training_resumes_to_the_same_result_and_checkpoint_round_trips(encoder, tmp_path, mode):
    def run(out, epochs, resume=False):
        torch.manual_seed(3)
        model = GraspModel(_config(out, mode, epochs).features, encoder)
        train, val = load_split(FIXTURE / "Train", model, False), load_split(FIXTURE / "Validation", model, False)
        return model, fit(model, train, val, _config(out, mode, epochs, resume), progress=False), val

    _, straight, _ = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2)  # a run that stopped after 2 of 3 epochs
    model, resumed, val = run(tmp_path / "resumed", 3, resume=True)
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in straight], rel=1e-5)
    assert (tmp_path / "resumed" / "metrics.csv").read_text().count("\n") == 4
    loaded = GraspModel.load(tmp_path / "resumed" / "best.pt")
    batch = preprocess(list(val.patches.images), size=128)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(batch, val.bins), loaded(batch, val.bins), atol=1e-5)
