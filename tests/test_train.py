"""Training: feature cache, gradients, overfitting a tiny dataset, resume and seeded determinism."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_perception.data.annotations import Annotation, FunKPointDataset, write_annotations
from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.model.trunk import build_trunk
from funk_perception.tasks import TASKS
from funk_perception.train import TrainConfig, Trainer, build_cache, make_key, train
from funk_perception.train.augment import AugmentConfig
from funk_perception.train.loop import prepare_cache
from funk_perception.train.loss import correspondence_loss

SIZE = 64  # 4 x 4 cells at stride 16
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def _centre(cell):
    return ((cell[0] + 0.5) / 4, (cell[1] + 0.5) / 4)


def _make_dataset(folder: Path) -> Path:
    """4 images (2 bottles, 2 cups): five coloured blobs, one per keypoint, at cell centres."""
    rng = np.random.default_rng(0)
    layouts = {
        "bottle_a": [(0, 0), (1, 2), (3, 3), (2, 1), (3, 0)],
        "bottle_b": [(3, 1), (0, 3), (1, 0), (2, 2), (0, 1)],
        "cup_a": [(2, 0), (3, 2), (0, 2), (1, 1), (2, 3)],
        "cup_b": [(1, 3), (2, 1), (3, 0), (0, 0), (1, 2)],
    }
    rows = []
    for name, cells in layouts.items():
        image = rng.integers(0, 40, size=(SIZE, SIZE, 3), dtype=np.uint8)
        for cell, colour in zip(cells, COLOURS):
            x, y = (np.array(_centre(cell)) * SIZE).astype(int)
            cv2.circle(image, (int(x), int(y)), 6, colour, -1)
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        keypoints = np.array([_centre(c) for c in cells])
        category = name.split("_")[0]
        rows.append(Annotation(path, path.name, "pour", category, "train", keypoints, instance_id=name))
        if category == "cup":  # a second task, with the keypoints in another order
            rows.append(Annotation(path, path.name, "scoop", category, "train", keypoints[::-1], instance_id=name))
    csv_path = folder / "annotations.csv"
    write_annotations(csv_path, rows)
    return csv_path


@pytest.fixture(scope="module")
def dataset_csv(tmp_path_factory) -> Path:
    return _make_dataset(tmp_path_factory.mktemp("tiny_data"))


def _config(csv_path: Path, cache_root: Path, **changes) -> TrainConfig:
    values = dict(
        encoder="tiny",
        data=str(csv_path),
        pretrained_trunk=False,
        image_size=SIZE,
        views=2,
        batch_pairs=8,
        steps=6,
        checkpoint_every=3,
        device="cpu",
        cache_root=str(cache_root),
        progress=False,
        num_threads=1,
    )
    values.update(changes)
    return TrainConfig(**values)


def _head(path: Path) -> dict[str, torch.Tensor]:
    return FunctionalEncoder.read_checkpoint(path)["state_dict"]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cache_reused_for_same_key_and_rebuilt_when_trunk_changes(dataset_csv, tmp_path):
    dataset = FunKPointDataset(dataset_csv, roles=["train"])
    torch.manual_seed(0)
    lite0 = build_trunk("lite0", pretrained=False)
    augment = AugmentConfig()
    key0 = make_key(dataset_csv, "lite0", "random", SIZE, 2, 0, augment)
    first = build_cache(tmp_path, dataset, lite0, key0, augment, progress=False)
    assert not first.reused and first.features.shape == (8, lite0.out_channels, 4, 4)
    assert first.visible[:, TASKS.index("scoop")].any() and first.visible[:, TASKS.index("pour")].all()
    again = build_cache(
        tmp_path, dataset, lite0, make_key(dataset_csv, "lite0", "random", SIZE, 2, 0, augment), augment, progress=False
    )
    assert again.reused
    np.testing.assert_array_equal(np.asarray(again.features), np.asarray(first.features))
    lite2 = build_trunk("lite2", pretrained=False)
    key2 = make_key(dataset_csv, "lite2", "random", SIZE, 2, 0, augment)
    rebuilt = build_cache(tmp_path, dataset, lite2, key2, augment, progress=False)
    assert not rebuilt.reused and rebuilt.features.shape[1] == lite2.out_channels != lite0.out_channels
    assert rebuilt.key["trunk"] == "lite2"


def test_only_head_parameters_receive_gradients(dataset_csv, tmp_path):
    config = _config(dataset_csv, tmp_path / "cache")
    torch.manual_seed(0)
    trunk = build_trunk("lite0", pretrained=False)
    dataset = FunKPointDataset(dataset_csv, roles=["train"])
    cache = prepare_cache(config, config.encoder_config(), trunk, dataset)
    encoder = FunctionalEncoder(config.encoder_config(), trunk=trunk)
    trunk_before = {k: v.clone() for k, v in trunk.state_dict().items()}
    trainer = Trainer(config, encoder, cache, torch.device("cpu"))
    trainer.step()
    assert all(p.grad is None for p in trunk.parameters())
    head = [(n, p) for n, p in encoder.named_parameters() if not n.startswith("trunk.")]
    assert head and all(p.grad is not None for _, p in head)
    assert any(p.grad.abs().sum() > 0 for n, p in head if "gating" not in n)
    assert encoder.log_logit_scale.grad is not None
    _assert_same(trunk_before, trunk.state_dict())


def _pck_over_all_pairs(checkpoint: Path, config: TrainConfig) -> float:
    """Train PCK of the saved model (eval mode) over every same-task pair of different instances."""
    trunk = build_trunk("lite0", pretrained=False)
    encoder = FunctionalEncoder.load(checkpoint, trunk=trunk)
    dataset = FunKPointDataset(config.data, roles=["train"])
    cache = prepare_cache(config, config.encoder_config(), trunk, dataset)
    assert cache.reused
    rows = dataset.annotations
    pairs = [
        (i, j)
        for i in range(len(rows))
        for j in range(len(rows))
        if rows[i].task == rows[j].task and rows[i].instance_id != rows[j].instance_id
    ]
    views = cache.view_id(cache.image_of_annotation[np.array(pairs)], 0)  # (P, 2)
    tasks = np.array([TASKS.index(rows[i].task) for i, _ in pairs])
    with torch.no_grad():
        src = encoder.embed_per_sample(cache.load_features(views[:, 0]), torch.from_numpy(tasks))
        tgt = encoder.embed_per_sample(cache.load_features(views[:, 1]), torch.from_numpy(tasks))
    out = correspondence_loss(
        src,
        tgt,
        torch.from_numpy(cache.keypoints[views[:, 0], tasks]),
        torch.from_numpy(cache.keypoints[views[:, 1], tasks]),
        torch.ones(len(pairs), 5, dtype=torch.bool),
        encoder.logit_scale,
    )
    assert out.num_valid == 5 * len(pairs) == 5 * 14
    return out.pck


def test_overfits_tiny_dataset_to_pck_one(dataset_csv, tmp_path):
    config = _config(dataset_csv, tmp_path / "cache", steps=300, views=1, checkpoint_every=1000)
    result = train(config, tmp_path / "run")
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 301
    assert float(rows[-1].split(",")[2]) == 1.0
    assert _pck_over_all_pairs(result.checkpoint, config) == 1.0
    assert result.final_loss < float(rows[1].split(",")[1])
    extra = FunctionalEncoder.read_checkpoint(result.checkpoint)["extra"]
    prototypes = extra["prototypes"]
    assert set(prototypes) == {"pour", "scoop"}
    assert prototypes["pour"].shape == (5, 16)  # tiny config: 16 filters in the last module
    torch.testing.assert_close(prototypes["pour"].norm(dim=-1), torch.ones(5))
    assert extra["data"]["train_rows"] == 6 and extra["train_time_s"] > 0
    assert extra["train_config"]["encoder"] == "tiny"
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 0
    assert "done:" in (tmp_path / "run" / "train.log").read_text()


def test_resume_after_kill_equals_unbroken_run_and_seed_is_deterministic(dataset_csv, tmp_path):
    cache = tmp_path / "cache"
    straight = train(_config(dataset_csv, cache), tmp_path / "straight")
    again = train(_config(dataset_csv, cache), tmp_path / "again")
    assert again.cache_reused
    _assert_same(_head(straight.checkpoint), _head(again.checkpoint))

    killed = train(_config(dataset_csv, cache), tmp_path / "killed", stop_after=3)
    assert killed.steps_done == 3 and (tmp_path / "killed" / "train_state.pt").is_file()
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(dataset_csv, cache), tmp_path / "killed")
    resumed = train(_config(dataset_csv, cache), tmp_path / "killed", resume=True)
    assert resumed.steps_done == 6
    _assert_same(_head(straight.checkpoint), _head(resumed.checkpoint))
    lines = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4", "5", "6"]
    losses = [line.split(",")[1] for line in lines[1:]]
    assert losses == [
        line.split(",")[1] for line in (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[1:]
    ]

    other = train(_config(dataset_csv, cache, seed=1), tmp_path / "seed1")
    assert any(
        not torch.equal(a, b) for a, b in zip(_head(straight.checkpoint).values(), _head(other.checkpoint).values())
    )
    with pytest.raises(ValueError, match="different configuration"):
        train(_config(dataset_csv, cache, lr=0.02), tmp_path / "killed", resume=True)


def test_mixstyle_changes_training_and_resumes_exactly(dataset_csv, tmp_path):
    cache = tmp_path / "cache"
    plain = train(_config(dataset_csv, cache), tmp_path / "plain")
    styled = train(_config(dataset_csv, cache, mixstyle=1.0), tmp_path / "styled")
    assert any(
        not torch.equal(a, b) for a, b in zip(_head(plain.checkpoint).values(), _head(styled.checkpoint).values())
    )
    # its draws come from each step's own seeded generator, so a killed run resumes onto the same weights
    train(_config(dataset_csv, cache, mixstyle=1.0), tmp_path / "killed", stop_after=3)
    resumed = train(_config(dataset_csv, cache, mixstyle=1.0), tmp_path / "killed", resume=True)
    _assert_same(_head(styled.checkpoint), _head(resumed.checkpoint))
    with pytest.raises(ValueError, match="mixstyle"):
        TrainConfig(mixstyle=-0.1)


def test_run_saved_before_a_field_existed_resumes_with_its_default(dataset_csv, tmp_path):
    cache = tmp_path / "cache"
    straight = train(_config(dataset_csv, cache), tmp_path / "straight")
    train(_config(dataset_csv, cache), tmp_path / "old", stop_after=3)
    state_path = tmp_path / "old" / "train_state.pt"
    state = torch.load(state_path, weights_only=True)
    del state["config"]["mixstyle"]  # as written by the code before mixstyle was a TrainConfig field
    torch.save(state, state_path)
    resumed = train(_config(dataset_csv, cache), tmp_path / "old", resume=True)
    assert resumed.steps_done == 6
    _assert_same(_head(straight.checkpoint), _head(resumed.checkpoint))
    # the missing field read as its default (0): resuming with another value is still a different run
    train(_config(dataset_csv, cache), tmp_path / "old2", stop_after=3)
    state = torch.load(tmp_path / "old2" / "train_state.pt", weights_only=True)
    del state["config"]["mixstyle"]
    torch.save(state, tmp_path / "old2" / "train_state.pt")
    with pytest.raises(ValueError, match="mixstyle: saved 0.0, now 0.5"):
        train(_config(dataset_csv, cache, mixstyle=0.5), tmp_path / "old2", resume=True)


def test_cli_trains_and_rejects_bad_overrides(dataset_csv, tmp_path, capsys):
    from funk_perception.train.__main__ import apply_overrides, main

    with pytest.raises(ValueError, match="unknown key"):
        apply_overrides(TrainConfig(), ["nonsense=1"])
    with pytest.raises(ValueError, match="not an EncoderConfig field"):
        apply_overrides(TrainConfig(), ["model.modular.nope=3"])
    config = apply_overrides(TrainConfig(), ["views=3", "augment.jpeg_quality=[40, 60]", "model.temperature=0.05"])
    assert config.views == 3 and config.augment.jpeg_quality == (40, 60)
    assert config.encoder_config().temperature == 0.05
    args = [
        "--config",
        "tiny",
        "--data",
        str(dataset_csv),
        "--out",
        str(tmp_path / "cli"),
        "--steps",
        "2",
        "--batch-pairs",
        "4",
        "--device",
        "cpu",
        "--set",
        "pretrained_trunk=false",
        "--set",
        f"image_size={SIZE}",
        "--set",
        "views=1",
        "--set",
        f"cache_root={tmp_path / 'cache'}",
        "--set",
        "progress=false",
    ]
    assert main(args) == 0
    assert "2 steps" in capsys.readouterr().out
    assert (tmp_path / "cli" / "checkpoint.pt").is_file()
