"""Reference-free detect methods: bank voting, the heatmap head, flip averaging, and their checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from funk_perception import detector as detector_module
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.detect_methods import (
    METHODS,
    BankHeatmapMethod,
    BankMethod,
    BankVotes,
    DetectMethod,
    HeatmapMethod,
    PrototypesMethod,
    build_method,
)
from funk_perception.detector import DETECT_METHODS, FunctionalKeypointDetector
from funk_perception.matching import flip_averaged, map_confidence, vote_maps
from funk_perception.metrics import pck
from funk_perception.model import FunctionalEncoder, build_trunk, named_config
from funk_perception.model.heatmap import HeatmapConfig, KeypointHeatmapHead
from funk_perception.tasks import TASKS
from funk_perception.train import TrainConfig
from funk_perception.train.bank import BankConfig, add_bank, choose_references
from funk_perception.train.heatmap import HeatmapTrainConfig, gaussian_targets, heatmap_loss, train_heatmap_head
from funk_perception.train.loop import prepare_cache

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "synth" / "annotations.csv"
SHIPPED = ROOT / "models" / "funk-lite0-synth.pt"


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1 if len(shape) < 4 else 1)


def test_vote_maps_follow_the_majority_and_ignore_unlabelled_references() -> None:
    d, h, w = 16, 6, 6
    features = torch.zeros(d, h, w)
    a, b = torch.eye(d)[0], torch.eye(d)[1]
    features[:, 1, 1] = a  # the place 3 references point to
    features[:, 4, 4] = b  # the place 1 reference points to
    queries = torch.stack([a, a, a, b]).unsqueeze(1)  # (M=4, K=1, D)
    visible = torch.ones(4, 1, dtype=torch.bool)
    votes = vote_maps(queries, visible, features, logit_scale=20.0)
    assert votes.shape == (1, h, w)
    assert torch.isclose(votes.sum(), torch.tensor(1.0), atol=1e-5)
    assert votes[0].flatten().argmax() == 1 * w + 1
    # the minority alone wins once the majority is marked unlabelled
    visible[:3] = False
    assert vote_maps(queries, visible, features, 20.0)[0].flatten().argmax() == 4 * w + 4
    # top_k keeps only the best-matching references: all four match perfectly, so it is the same vote
    visible[:] = True
    assert torch.allclose(vote_maps(queries, visible, features, 20.0, top_k=2).sum(), torch.tensor(1.0))
    # agreement shows in the peak mass
    conf_all = map_confidence(vote_maps(queries, torch.ones(4, 1, dtype=torch.bool), features, 20.0)[None])
    conf_one = map_confidence(vote_maps(queries[:1], torch.ones(1, 1, dtype=torch.bool), features, 20.0)[None])
    assert conf_one.item() > conf_all.item() > 0.5


def test_flip_averaged_is_mirror_equivariant() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    torch.manual_seed(0)
    images = torch.randn(2, 3, 8, 10)
    with torch.no_grad():
        plain = flip_averaged(conv, images)
        mirrored = flip_averaged(conv, images.flip(-1))
    assert torch.allclose(mirrored, plain.flip(-1), atol=1e-5)
    assert torch.allclose(plain.norm(dim=1), torch.ones(2, 8, 10), atol=1e-5)


def test_gaussian_targets_peak_on_the_keypoint_and_loss_prefers_it() -> None:
    keypoints = torch.tensor([[[0.1, 0.9], [0.55, 0.45]]])  # (1, 2, 2)
    target = gaussian_targets(keypoints, 5, 5, 0.75)
    assert torch.allclose(target.sum(-1), torch.ones(1, 2))
    assert target[0, 0].argmax() == 4 * 5 + 0 and target[0, 1].argmax() == 2 * 5 + 2
    good = torch.log(target.reshape(1, 2, 5, 5) + 1e-6)
    bad = good.flip(-1).flip(-2)
    visible = torch.ones(1, 2, dtype=torch.bool)
    assert heatmap_loss(good, keypoints, visible, 0.75) < heatmap_loss(bad, keypoints, visible, 0.75)
    assert heatmap_loss(bad, keypoints, torch.zeros(1, 2, dtype=torch.bool), 0.75) == 0


def test_choose_references_round_robin_over_categories() -> None:
    dataset = FunKPointDataset(SAMPLES, roles=["train"])
    chosen = choose_references(dataset.annotations, per_task=4, seed=0)
    for task, rows in chosen.items():
        categories = sorted({a.category for a in dataset.annotations if a.task == task})
        assert len(rows) == min(4, sum(a.task == task for a in dataset.annotations))
        # the first len(categories) picks cover every category once
        first = [a.category for a in rows[: len(categories)]]
        assert len(set(first)) == min(len(categories), len(rows)), (task, first)
    assert chosen == choose_references(dataset.annotations, per_task=4, seed=0)


@pytest.fixture(scope="module")
def banked(tmp_path_factory, prototypes_only_checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("bank") / "banked.pt"
    add_bank(prototypes_only_checkpoint, SAMPLES, out, BankConfig(per_task=6, progress=False), device="cpu")
    return out


def test_bank_round_trips_and_detects_its_own_images(banked: Path) -> None:
    detector = FunctionalKeypointDetector.load(banked, device="cpu")
    assert detector.method == "bank" and set(detector.bank) <= set(TASKS)
    emb, vis = next(iter(detector.bank.values()))
    assert emb.shape[1:] == (5, detector.encoder.embedding_dim) and vis.dtype == torch.bool
    # on images the bank was built from, voting must beat a fixed guess (the image centre) by far
    dataset = FunKPointDataset(SAMPLES, roles=["train"])
    rows = [a for a in dataset.annotations if a.task in detector.bank][:12]
    predicted = []
    for a in rows:
        image = dataset.load_image(a.image_path)
        found = detector.detect(image, [a.task])[a.task]
        predicted.append(found.points / np.array([image.shape[1], image.shape[0]]))
        assert found.confidence.shape == (5,) and np.all((found.confidence >= 0) & (found.confidence <= 1))
    truth = np.stack([a.keypoints for a in rows])
    valid = np.stack([a.visible for a in rows])
    ours = pck(np.stack(predicted), truth, valid, 0.1)
    centre = pck(np.full_like(truth, 0.5), truth, valid, 0.1)
    assert ours > centre + 20, (ours, centre)
    prototypes = FunctionalKeypointDetector.load(banked, device="cpu", method="prototypes")
    assert prototypes.method == "prototypes"


def test_detector_rejects_a_method_the_checkpoint_lacks(prototypes_only_checkpoint: Path) -> None:
    prototypes_only = prototypes_only_checkpoint
    with pytest.raises(ValueError, match="reference bank"):
        FunctionalKeypointDetector.load(prototypes_only, device="cpu", method="bank")
    with pytest.raises(ValueError, match="heatmap head"):
        FunctionalKeypointDetector.load(prototypes_only, device="cpu", method="heatmap")
    with pytest.raises(ValueError, match="method"):
        FunctionalKeypointDetector.load(SHIPPED, device="cpu", method="nearest")
    assert FunctionalKeypointDetector.load(prototypes_only, device="cpu").method == "prototypes"
    with pytest.raises(ValueError, match=r"reference bank .* and a keypoint heatmap head"):
        FunctionalKeypointDetector.load(prototypes_only, device="cpu", method="bank_heatmap")
    # the shipped model carries every method and names its default (extra["detect_method"])
    assert FunctionalKeypointDetector.load(SHIPPED, device="cpu").method == "bank_heatmap"
    assert set(DETECT_METHODS) == {"heatmap", "bank", "prototypes", "bank_heatmap"}


def test_agreement_confidence_is_high_only_where_both_maps_agree() -> None:
    from funk_perception.matching import agreement_confidence

    sharp = torch.zeros(1, 2, 5, 5)
    sharp[0, :, 2, 2] = 1.0
    same, elsewhere = sharp.clone(), torch.zeros(1, 2, 5, 5)
    elsewhere[0, :, 0, 4] = 1.0
    torch.testing.assert_close(agreement_confidence(sharp, same), torch.ones(1, 2))
    torch.testing.assert_close(agreement_confidence(sharp, elsewhere), torch.zeros(1, 2))
    flat = torch.full((1, 2, 5, 5), 1 / 25)
    torch.testing.assert_close(agreement_confidence(sharp, flat), torch.full((1, 2), (9 / 25) ** 0.5))
    with pytest.raises(ValueError, match="second probability map"):
        agreement_confidence(sharp, flat[:, :1])


def test_bank_heatmap_places_points_by_the_bank_with_both_readers_confidence() -> None:
    image = _sample_image()
    tasks = ["pour", "scrape"]
    both = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method="bank_heatmap").detect(image, tasks)
    bank = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method="bank").detect(image, tasks)
    for task in tasks:
        np.testing.assert_allclose(both[task].points, bank[task].points, atol=1e-4)
        assert not np.allclose(both[task].confidence, bank[task].confidence, atol=1e-3)
    # the confidence: the bank's and the head's mass, each around the bank's peak, geometric mean
    from funk_perception.matching import agreement_confidence

    detector = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method="bank_heatmap")
    features = detector.features(image, tasks)
    votes = torch.stack([vote_maps(*detector.bank[t], features[i], detector.logit_scale) for i, t in enumerate(tasks)])
    with torch.inference_mode():
        logits = detector.heatmap_head(features)
    head = torch.softmax(logits.flatten(2), -1).reshape(logits.shape)
    _, confidence = detector.locate(features, tasks)
    torch.testing.assert_close(confidence, agreement_confidence(votes, head), atol=1e-5, rtol=0)


def test_heatmap_head_learns_on_a_cache_and_drives_detect(tmp_path: Path) -> None:
    config = TrainConfig(
        encoder="tiny",
        data=str(SAMPLES),
        pretrained_trunk=False,
        image_size=64,
        views=1,
        device="cpu",
        cache_root=str(tmp_path / "cache"),
        progress=False,
        num_threads=1,
    )
    torch.manual_seed(0)
    trunk = build_trunk("lite0", pretrained=False)
    dataset = FunKPointDataset(SAMPLES, roles=["train"])
    cache = prepare_cache(config, config.encoder_config(), trunk, dataset)
    encoder = FunctionalEncoder(named_config("tiny"), trunk=trunk)
    head, losses = train_heatmap_head(
        encoder, cache, HeatmapTrainConfig(steps=40, batch=16, lr=3e-3, hidden=16, num_threads=1, progress=False)
    )
    assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5]), losses  # 2.77 (uniform over 16 cells) -> ~2.5
    again, losses_again = train_heatmap_head(
        encoder, cache, HeatmapTrainConfig(steps=40, batch=16, lr=3e-3, hidden=16, num_threads=1, progress=False)
    )
    assert losses == losses_again  # seeded
    restored = KeypointHeatmapHead.from_extra(head.to_extra())
    probe = torch.randn(2, encoder.embedding_dim, 4, 4)
    assert torch.equal(restored(probe), head(probe))
    detector = FunctionalKeypointDetector(encoder, heatmap_head=restored, image_size=64)
    assert detector.method == "heatmap" and detector.tasks == TASKS
    found = detector.detect(np.zeros((48, 80, 3), dtype=np.uint8), ["pour"])["pour"]
    assert found.points.shape == (5, 2) and np.all(found.points[:, 0] <= 80) and np.all(found.points[:, 1] <= 48)
    with pytest.raises(ValueError, match="heatmap head"):
        KeypointHeatmapHead.from_extra({"config": {"in_channels": 3}, "state_dict": {}})
    assert HeatmapConfig().keypoints == 5


def _field(head: KeypointHeatmapHead, size: int = 14) -> int:
    """How many cells of a size x size input the centre output cell depends on."""
    probe = torch.zeros(1, head.config.in_channels, size, size, requires_grad=True)
    head(probe)[0, :, size // 2, size // 2].sum().backward()
    return int((probe.grad.abs().sum(1)[0] > 0).sum())


def test_heatmap_head_dilations_set_its_field_of_view_and_round_trip() -> None:
    torch.manual_seed(0)
    default, wide = (
        KeypointHeatmapHead(HeatmapConfig(in_channels=8)),
        KeypointHeatmapHead(HeatmapConfig(in_channels=8, dilations=(2, 4))),
    )
    assert _field(default) == 7 * 7 and _field(wide) == 14 * 14  # 15 x 15 clipped to the map
    restored = KeypointHeatmapHead.from_extra(wide.to_extra())
    assert restored.config.dilations == (2, 4)
    probe = torch.randn(1, 8, 14, 14)
    assert torch.equal(restored(probe), wide(probe))
    # checkpoints written before the option existed hold no dilations: they load as today's head
    old = default.to_extra()
    old["config"].pop("dilations")
    assert KeypointHeatmapHead.from_extra(old).config.dilations == (2,)
    with pytest.raises(ValueError, match="dilations"):
        HeatmapConfig(dilations=())


def test_heatmap_input_dropout_changes_training_and_stays_seeded(tmp_path: Path) -> None:
    config = TrainConfig(
        encoder="tiny",
        data=str(SAMPLES),
        pretrained_trunk=False,
        image_size=64,
        views=1,
        device="cpu",
        cache_root=str(tmp_path / "cache"),
        progress=False,
        num_threads=1,
    )
    torch.manual_seed(0)
    trunk = build_trunk("lite0", pretrained=False)
    cache = prepare_cache(config, config.encoder_config(), trunk, FunKPointDataset(SAMPLES, roles=["train"]))
    encoder = FunctionalEncoder(named_config("tiny"), trunk=trunk)

    def losses(dropout: float) -> list[float]:
        return train_heatmap_head(
            encoder,
            cache,
            HeatmapTrainConfig(steps=5, batch=8, hidden=8, input_dropout=dropout, num_threads=1, progress=False),
        )[1]

    assert losses(0.3) == losses(0.3) != losses(0.0)
    with pytest.raises(ValueError, match="input_dropout"):
        HeatmapTrainConfig(input_dropout=1.0)


def _sample_image() -> np.ndarray:
    """A training render cropped to 224 x 180, so that the letterbox pads it (22 rows above and below)."""
    dataset = FunKPointDataset(SAMPLES, roles=["train"])
    image = dataset.load_image(dataset.annotations[0].image_path)
    return np.ascontiguousarray(image[22:202])


@pytest.mark.parametrize("method", DETECT_METHODS)
def test_mirror_maps_make_detect_mirror_equivariant(method: str) -> None:
    image = _sample_image()
    detector = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method=method, mirror_maps=True)
    plain = detector.detect(image, ["pour", "scrape"])
    flipped = detector.detect(np.ascontiguousarray(image[:, ::-1]), ["pour", "scrape"])
    width = image.shape[1]
    for task in plain:
        # labels are semantic: the mirrored photo's p1 is the mirror of the plain photo's p1
        np.testing.assert_allclose(flipped[task].points[:, 0], width - plain[task].points[:, 0], atol=1e-3)
        np.testing.assert_allclose(flipped[task].points[:, 1], plain[task].points[:, 1], atol=1e-3)
        np.testing.assert_allclose(flipped[task].confidence, plain[task].confidence, atol=1e-5)
    single = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method=method)
    alone = single.detect(np.ascontiguousarray(image[:, ::-1]), ["pour", "scrape"])
    assert any(
        np.abs(alone[t].points[:, 0] - (width - single.detect(image, [t])[t].points[:, 0])).max() > 1.0 for t in alone
    ), "without mirror_maps the detector is not mirror-equivariant, so the test can fail"


@pytest.mark.parametrize(
    "method", ["bank", "prototypes"]
)  # cell-wise matching (a conv head's kernels are not symmetric)
def test_locate_with_an_identical_mirror_equals_locate_alone(method: str) -> None:
    detector = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method=method)
    features = detector.features(_sample_image(), ["pour"])
    points, confidence = detector.locate(features, ["pour"])
    # the flipped-back maps of a mirror equal to the flipped features are the plain maps: nothing changes
    again, confidence_again = detector.locate(features, ["pour"], mirrored=features.flip(-1))
    torch.testing.assert_close(again, points, atol=1e-4, rtol=0)
    torch.testing.assert_close(confidence_again, confidence, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="mirrored"):
        detector.locate(features, ["pour"], mirrored=features[:, :, :2])


def test_mix_style_swaps_channel_statistics_and_keeps_the_content() -> None:
    from funk_perception.train.feature_style import mix_style

    g = torch.Generator().manual_seed(0)
    features = torch.randn(6, 4, 5, 5, generator=g) * torch.arange(1, 7).view(6, 1, 1, 1) + torch.arange(6).view(
        6, 1, 1, 1
    )
    mixed = mix_style(features, np.random.default_rng(0))
    again = mix_style(features, np.random.default_rng(0))
    assert mixed.shape == features.shape and torch.equal(mixed, again)  # seeded
    # each map keeps its pattern (a per-channel affine change of it) ...
    flat, flat_mixed = features.flatten(2), mixed.flatten(2)
    corr = torch.nn.functional.cosine_similarity(
        flat - flat.mean(-1, keepdim=True), flat_mixed - flat_mixed.mean(-1, keepdim=True), dim=-1
    )
    assert torch.allclose(corr, torch.ones_like(corr), atol=1e-4)
    # ... while its statistics move towards another sample's
    assert not torch.allclose(mixed.mean(dim=(2, 3)), features.mean(dim=(2, 3)), atol=1e-2)
    with pytest.raises(ValueError, match="mixstyle"):
        HeatmapTrainConfig(mixstyle=1.5)


def _method_object(method: str, detector: FunctionalKeypointDetector) -> DetectMethod:
    """``method``'s object built by hand from the checkpoint parts the detector parsed, not by the detector."""
    votes = BankVotes(detector.bank, detector.logit_scale, {}, "add", None)
    refine, device = detector.refine, detector.device
    return {
        "heatmap": lambda: HeatmapMethod(detector.heatmap_head, refine, device),
        "bank": lambda: BankMethod(votes, refine, device),
        "prototypes": lambda: PrototypesMethod(detector.prototypes, detector.logit_scale, refine, device),
        "bank_heatmap": lambda: BankHeatmapMethod(votes, detector.heatmap_head, refine, device),
    }[method]()


@pytest.mark.parametrize("method", DETECT_METHODS)
def test_the_detector_picks_each_method_object_once(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method=method, mirror_maps=True)
    chosen = detector.method_object
    assert type(chosen) is METHODS[method] and chosen.name == detector.method == method
    assert type(chosen).__name__.lower().startswith(method.replace("_", ""))  # the class names the method
    assert detector.tasks == chosen.tasks
    built = []
    monkeypatch.setattr(detector_module, "build_method", lambda *args: built.append(args) or build_method(*args))
    image = _sample_image()
    detector.detect(image, ["pour"])
    detector.keypoints_batch(image[None], ["pour"])
    detector.locate(detector.features(image, ["pour"]), ["pour"])
    assert built == [] and detector.method_object is chosen  # no call picks again, none branches on the name
    # only a change of what the object is built from picks again: the same method, a new object
    detector.refine = "softargmax"
    assert built and type(detector.method_object) is METHODS[method] and detector.method_object is not chosen


@pytest.mark.parametrize("method", DETECT_METHODS)
@pytest.mark.parametrize("mirror", [False, True])
def test_a_detector_per_method_finds_what_its_method_object_finds(method: str, mirror: bool) -> None:
    detector = FunctionalKeypointDetector.load(SHIPPED, device="cpu", method=method, mirror_maps=mirror)
    direct = _method_object(method, detector)
    dataset = FunKPointDataset(SAMPLES, roles=["train"])
    image = dataset.load_image(dataset.annotations[0].image_path)  # at the model's size: letterboxing is the identity
    assert image.shape[:2] == (detector.image_size, detector.image_size)
    tasks = ["pour", "scrape"]
    found = detector.detect(image, tasks)
    embedded, _ = detector.embed([image], tasks, mirrored=mirror)
    points, confidence = direct.locate(embedded[0], tasks, embedded[1] if mirror else None)
    for i, task in enumerate(tasks):
        np.testing.assert_allclose(found[task].points, points[i].double().numpy() * image.shape[1], atol=1e-6, rtol=0)
        np.testing.assert_allclose(found[task].confidence, confidence[i].double().numpy(), atol=1e-6, rtol=0)
    # another method's maps, asked of this detector, are that method's object's
    for other in DETECT_METHODS:
        torch.testing.assert_close(
            detector.probability_maps(embedded[0], tasks, other),
            _method_object(other, detector).probability_maps(embedded[0], tasks),
            atol=0,
            rtol=0,
        )
