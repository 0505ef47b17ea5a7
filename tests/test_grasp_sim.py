"""The grasp simulator: labels come from MuJoCo contacts, friction and gravity, not from a geometric rule."""

import math

import numpy as np
import pytest

from funk_grasp.sim import GraspScene, GraspSimConfig
from funk_perception.data.objects.base import ObjectModel, box

# A 12 x 5 x 6 cm box: narrower than the 11 cm opening one way, wider the other.
HALF = (0.06, 0.025, 0.03)


@pytest.fixture(scope="module")
def scene() -> GraspScene:
    obj = ObjectModel("box", [box((0, 0, HALF[2]), HALF, "body")], {})
    return GraspScene(obj, np.random.default_rng(0), GraspSimConfig(), position=(0.0, 0.0), yaw=0.0)


def _attempt(scene: GraspScene, world_xy, angle):
    view = scene.render()
    x, y = scene.world_to_pixel(np.asarray(world_xy, dtype=float))
    surface, clearance = scene.grasp_heights(view.height, x, y, angle)
    return scene.attempt(x, y, angle, surface, clearance)


def test_settled_view_sees_the_box_from_above(scene):
    view = scene.render()
    metres_per_px = scene.config.metres_per_pixel
    area = view.mask.sum() * metres_per_px**2
    assert area == pytest.approx(4 * HALF[0] * HALF[1], rel=0.1)
    assert float(view.height[view.mask].max()) == pytest.approx(2 * HALF[2], abs=0.004)
    assert scene.settled_speed < 1e-3


def test_centre_grasp_across_the_narrow_side_lifts_the_box(scene):
    # image up is world +y: the narrow side (5 cm) lies along y, an image angle of 90 degrees
    outcome = _attempt(scene, (0.0, 0.0), math.pi / 2)
    assert outcome.success
    assert outcome.rise > 0.1
    assert outcome.opening == pytest.approx(2 * HALF[1], abs=0.004)


def test_grasp_across_the_long_side_lands_on_the_box_and_fails(scene):
    outcome = _attempt(scene, (0.0, 0.0), 0.0)
    assert not outcome.success
    assert outcome.touched  # the fingers met the top of the 12 cm box and stopped there


def test_grasp_that_misses_the_box_fails(scene):
    outcome = _attempt(scene, (0.15, 0.0), math.pi / 2)
    assert not outcome.success
    assert outcome.rise == pytest.approx(0.0, abs=1e-3)
    assert outcome.opening < 0.005  # closed on nothing


def test_attempts_are_deterministic(scene):
    a = _attempt(scene, (0.01, 0.005), math.radians(80))
    b = _attempt(scene, (0.01, 0.005), math.radians(80))
    assert a == b
