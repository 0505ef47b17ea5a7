"""NodeClient, the test and benchmark side of the ROS graph: it must stop cleanly every time.

Its old close() shut the executor down from the main thread while the spin thread was inside
wait_for_ready_callbacks (ros2/rclpy#968); about once in twenty closes the spin thread then looped
with the GIL held and the main thread starved (a test teardown waited minutes on a node that had
already exited)."""

import os
import time

import pytest

rclpy = pytest.importorskip("rclpy")

from funk_perception.ros import client  # noqa: E402

DOMAIN = 20 + (os.getpid() + 40) % 80


@pytest.fixture(scope="module")
def ros_graph():
    with pytest.MonkeyPatch.context() as patch:
        for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
            patch.setenv(key, os.environ.get(key, ""))  # client.init overwrites them; undone (or removed) on exit
        client.init(DOMAIN)
        yield
        rclpy.shutdown()


def test_close_stops_the_spin_thread_every_time(ros_graph):
    # the race needs the spin thread mid-wait when close() comes: vary the moment over many closes
    for i in range(40):
        probe = client.NodeClient(name=f"funk_close_{i}", namespace=f"/funk_client_test_{os.getpid()}")
        time.sleep((i % 8) * 0.013)
        started = time.monotonic()
        probe.close()
        assert not probe._thread.is_alive(), f"close {i}: the spin thread is still running"
        assert time.monotonic() - started < 5.0, f"close {i} took {time.monotonic() - started:.1f} s"
