"""build_object numbers keypoints as FunKPoint does (objects.FUNKPOINT_ORDER)."""

from __future__ import annotations

import numpy as np
import pytest

from funk_perception.data.objects import CATEGORY_BUILDERS, FUNKPOINT_ORDER, build_object
from funk_perception.tasks import NUM_KEYPOINTS, TASK_CATEGORIES, TASKS


def test_orders_are_permutations_of_known_tasks():
    assert set(FUNKPOINT_ORDER) <= set(TASKS)
    for order in FUNKPOINT_ORDER.values():
        assert sorted(order) == list(range(NUM_KEYPOINTS))


@pytest.mark.parametrize("category", sorted(CATEGORY_BUILDERS))
def test_renumbering_moves_labels_not_points(category):
    raw = CATEGORY_BUILDERS[category](np.random.default_rng(3)).with_placement("builder")
    numbered = build_object(category, np.random.default_rng(3))
    assert set(numbered.keypoints) == set(raw.keypoints)
    for task, points in raw.keypoints.items():
        order = list(FUNKPOINT_ORDER.get(task, range(NUM_KEYPOINTS)))
        np.testing.assert_array_equal(numbered.keypoints[task], points[order])
        np.testing.assert_array_equal(numbered.keypoint_radii[task], raw.keypoint_radii[task][order])
    assert [g.pos for g in numbered.geoms] == [g.pos for g in raw.geoms]


@pytest.mark.parametrize("task", sorted(FUNKPOINT_ORDER))
def test_p3_lies_between_p1_and_p2_on_the_renumbered_tasks(task):
    """FunKPoint's convention on these tasks: p3 is nearer the working tip p1 than p2 is."""
    nearer = []
    for category in TASK_CATEGORIES[task]:
        for seed in range(4):
            p = build_object(category, np.random.default_rng(seed)).keypoints[task]
            nearer.append(np.linalg.norm(p[2] - p[0]) < np.linalg.norm(p[1] - p[0]))
    assert np.mean(nearer) >= 0.75, f"{task}: p3 nearer p1 than p2 in only {np.mean(nearer):.0%} of instances"
