"""Training pair sampling and evaluation triplets (funk_perception.data.pairs)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from funk_perception.data.annotations import Annotation, read_annotations, write_annotations
from funk_perception.data.pairs import Pair, PairSampler, evaluation_pairs, pair_kind
from funk_perception.tasks import TASK_CATEGORIES, TASKS


def _annotations(
    instances_per_category: int = 3,
    views: int = 2,
    role_of: Callable[[int], str] = lambda instance: "train",
    tasks: tuple[str, ...] = TASKS,
) -> list[Annotation]:
    """Rows for every (task, category) of paper Table 1; several views share an instance_id."""
    rng = np.random.default_rng(0)
    rows = []
    for task in tasks:
        for category in TASK_CATEGORIES[task]:
            for instance in range(instances_per_category):
                for view in range(views):
                    name = f"{category}/{instance}_{view}.png"
                    rows.append(
                        Annotation(
                            image_path=Path("/data") / name,
                            relative_path=name,
                            task=task,
                            category=category,
                            role=role_of(instance),
                            keypoints=rng.random((5, 2)),
                            instance_id=f"{category}_{instance}",
                        )
                    )
    return rows


def test_sampler_is_deterministic_for_a_seed() -> None:
    annotations = _annotations()
    first = PairSampler(annotations, seed=7).sample(200)
    assert PairSampler(annotations, seed=7).sample(200) == first
    assert PairSampler(annotations, seed=8).sample(200) != first
    sampler = PairSampler(annotations, seed=7)
    assert list(itertools.islice(iter(sampler), 200)) == first
    assert list(itertools.islice(iter(sampler), 200)) == first  # each iterator restarts the stream
    assert sampler.sample(100) + sampler.sample(100) == first  # sample() continues one stream


def test_pairs_share_task_and_differ_in_instance() -> None:
    annotations = _annotations()
    pairs = PairSampler(annotations, seed=1).sample(2000)
    for pair in pairs:
        source, target = annotations[pair.source], annotations[pair.target]
        assert source.task == target.task == pair.task
        assert source.instance_id != target.instance_id
    assert set(Counter(p.task for p in pairs)) == set(TASKS)
    # Tasks are drawn uniformly: each of 10 tasks gets about 200 of 2000.
    assert min(Counter(p.task for p in pairs).values()) > 140


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.8, 1.0])
def test_cross_category_fraction_is_respected(fraction: float) -> None:
    annotations = _annotations()
    pairs = PairSampler(annotations, seed=3, cross_category_fraction=fraction).sample(2000)
    cross = np.mean([pair_kind(annotations, p) == "cross_category" for p in pairs])
    assert abs(cross - fraction) < 0.04


def test_fallbacks_when_a_kind_is_impossible() -> None:
    # One instance per category: no same-category pair exists, so every pair is cross-category.
    single = _annotations(instances_per_category=1)
    pairs = PairSampler(single, seed=0, cross_category_fraction=0.0).sample(300)
    assert all(pair_kind(single, p) == "cross_category" for p in pairs)
    # Restricted to one category: no cross pair exists, so every pair is same-category.
    spoons = [a for a in _annotations() if a.category == "spoon"]
    pairs = PairSampler(spoons, seed=0, cross_category_fraction=1.0).sample(300)
    assert all(pair_kind(spoons, p) == "same_category" for p in pairs)
    assert all(spoons[p.source].instance_id != spoons[p.target].instance_id for p in pairs)
    with pytest.raises(ValueError, match="two distinct object instances"):
        PairSampler(_annotations(instances_per_category=1, tasks=("pour",))[:2], seed=0)


def test_task_restriction_and_category_weights() -> None:
    annotations = _annotations()
    pairs = PairSampler(annotations, seed=2, tasks=["Mash/Pound", "pour"]).sample(500)
    assert {p.task for p in pairs} == {"mash_pound", "pour"}

    weights = {"frying_pan": 5.0, "bottle": 0.0}
    pairs = PairSampler(annotations, seed=2, tasks=["pour"], category_weights=weights).sample(1000)
    categories = Counter(annotations[i].category for p in pairs for i in (p.source, p.target))
    assert categories["bottle"] == 0
    assert categories["frying_pan"] > 2 * max(v for k, v in categories.items() if k != "frying_pan")
    with pytest.raises(ValueError, match="cross_category_fraction"):
        PairSampler(annotations, cross_category_fraction=1.5)
    with pytest.raises(ValueError, match="category_weights"):
        PairSampler(annotations, category_weights={"spoon": -1.0})


def _eval_annotations() -> list[Annotation]:
    # Instance 0: reference, 1: train, 2-3: test; two views each so same-instance exclusion matters.
    roles = {0: "reference", 1: "train", 2: "test", 3: "test"}
    return _annotations(instances_per_category=4, role_of=roles.__getitem__)


def test_evaluation_pairs_use_reference_rows() -> None:
    annotations = _eval_annotations()
    pairs = evaluation_pairs(annotations, seed=0)
    assert pairs == evaluation_pairs(annotations, seed=123)  # nothing random when references exist
    assert pairs == sorted(pairs, key=lambda p: (TASKS.index(p.task), p.source, p.target))
    for pair in pairs:
        source, target = annotations[pair.source], annotations[pair.target]
        assert source.role == "reference" and target.role == "test"
        assert source.task == target.task == pair.task
        assert source.instance_id != target.instance_id
    # Every reference row meets every test row of its task: 5 categories x 2 views, 5 x 2 x 2 targets.
    assert Counter(p.task for p in pairs) == {t: 10 * 20 for t in TASKS}


def test_evaluation_pairs_fall_back_to_seeded_train_references() -> None:
    annotations = [a for a in _eval_annotations() if a.role != "reference"]
    pairs = evaluation_pairs(annotations, seed=5, references_per_task=4)
    assert pairs == evaluation_pairs(annotations, seed=5, references_per_task=4)
    assert pairs != evaluation_pairs(annotations, seed=6, references_per_task=4)
    assert {annotations[p.source].role for p in pairs} == {"train"}
    for task in TASKS:
        assert len({p.source for p in pairs if p.task == task}) == 4
    assert all(annotations[p.source].instance_id != annotations[p.target].instance_id for p in pairs)


def test_evaluation_pairs_never_pair_one_instance_and_bound_targets() -> None:
    # The same instance as both reference and test (two views): those pairs must be dropped.
    roles = {0: "reference", 1: "test", 2: "test", 3: "test"}
    annotations = _annotations(instances_per_category=4, views=2, role_of=roles.__getitem__)
    shared = Annotation(
        **{**_field_dict(annotations[0]), "role": "test", "relative_path": "x.png", "image_path": Path("/data/x.png")}
    )
    annotations.append(shared)  # a test view of the first reference's instance
    pairs = evaluation_pairs(annotations, seed=0)
    assert all(annotations[p.source].instance_id != annotations[p.target].instance_id for p in pairs)
    assert not any(p.target == len(annotations) - 1 and p.source in (0, 1) for p in pairs)

    bounded = evaluation_pairs(annotations, seed=0, max_targets_per_task=3)
    for task in TASKS:
        assert len({p.target for p in bounded if p.task == task}) <= 3
    assert bounded == evaluation_pairs(annotations, seed=0, max_targets_per_task=3)
    assert bounded != evaluation_pairs(annotations, seed=1, max_targets_per_task=3)
    with pytest.raises(ValueError, match="no \\(reference, test\\) pairs"):
        evaluation_pairs([a for a in annotations if a.role != "test"])


def _field_dict(annotation: Annotation) -> dict:
    return {name: getattr(annotation, name) for name in annotation.__dataclass_fields__}


def test_sampler_on_annotations_read_from_csv(tmp_path: Path) -> None:
    # The sampler and the reader agree on indices: pairs index the list read_annotations returns.
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    rows = [
        Annotation(tmp_path / n, n, "Pour", c, "train", np.full((5, 2), 0.5))
        for n, c in (("a.png", "cup"), ("b.png", "bottle"), ("c.png", "cup"))
    ]
    write_annotations(tmp_path / "ann.csv", rows)
    annotations = read_annotations(tmp_path / "ann.csv")
    pairs = PairSampler(annotations, seed=0).sample(50)
    assert all(p.source != p.target for p in pairs)
    assert {pair_kind(annotations, p) for p in pairs} == {"same_category", "cross_category"}
    assert Pair(0, 1, "pour") == Pair(0, 1, "pour")
