"""Which region of interest applies (funk_perception/ros/roi.py), with made-up arrival times: the latest of
parameter and topic wins, the parameter clears the topic's region, a topic region expires."""

import pytest

from funk_perception.ros.roi import PARAMETER, TOPIC, RoiState, outside_image


def test_the_topic_overrides_the_parameter_and_setting_the_parameter_clears_it():
    state = RoiState([10, 10, 50, 50])
    assert state.current(0.0, 2.0) == ((10, 10, 50, 50), PARAMETER)
    state.set_topic((1, 2, 30, 40), now=5.0)
    assert state.current(5.5, 2.0) == ((1, 2, 30, 40), TOPIC)
    state.set_parameter([0, 0, 0, 0])  # the whole image, and the topic's region is gone
    assert state.current(5.6, 2.0) == ((0, 0, 0, 0), PARAMETER)
    state.set_topic((0, 0, 0, 0), now=6.0)  # an empty region from the topic also means the whole image
    assert state.current(6.1, 2.0) == ((0, 0, 0, 0), TOPIC)


def test_a_topic_region_expires_by_arrival_time_unless_the_timeout_is_zero():
    state = RoiState([0, 0, 0, 0])
    state.set_topic((1, 2, 30, 40), now=100.0)
    assert state.current(101.9, 2.0)[1] == TOPIC
    assert state.current(100.0, 0.0)[1] == TOPIC and state.current(1e6, 0.0)[1] == TOPIC  # 0: never
    assert state.current(102.1, 2.0) == ((0, 0, 0, 0), PARAMETER)
    assert state.current(102.2, 0.0)[1] == PARAMETER  # expired for good, not revived by a longer timeout
    state.set_topic((5, 5, 20, 20), now=200.0)  # a newer one starts the clock again
    assert state.current(201.0, 2.0) == ((5, 5, 20, 20), TOPIC)


def test_outside_image_names_the_source_and_the_image_size():
    assert outside_image([0, 0, 0, 0], 640, 480) is None and outside_image([600, 400, 100, 100], 640, 480) is None
    reason = outside_image([5000, 5000, 10, 10], 640, 480, "roi parameter")
    assert reason == "roi parameter: expected a region inside the 640x480 image, found [5000, 5000, 10, 10]"
    assert outside_image([639, 0, 10, 10], 640, 480) is not None  # one column is no region
    with pytest.raises(ValueError):
        RoiState([1, 2, 3])
