"""A keypoint_node of one test module on a localhost ROS graph of its own: start it, probe it, stop it.

The same recipe as tests/test_ros_node.py's fixture (the installed executable
started with config/keypoints.yaml, a domain id and namespace of this test
process alone, stopped as ros2 launch stops a node), for the test files that
need a live node with parameters of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import parameter_value_to_python

from funk_perception.ros import client

ROOT = Path(__file__).resolve().parents[1]


def domain(offset: int) -> int:
    """A DDS domain id for this test process, different per test module (``offset``)."""
    return 20 + (os.getpid() + offset) % 80


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGINT, then SIGKILL, 30 s apart; a node that needs the last is a failure."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        warnings.warn("keypoint_node did not stop within 30 s of SIGTERM; sending SIGINT", stacklevel=2)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError("keypoint_node did not stop within 30 s of SIGTERM, then 30 s of SIGINT") from None


@contextlib.contextmanager
def saved_environment(*keys: str) -> Iterator[None]:
    """Put back ``keys`` of ``os.environ`` (ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE always) as they were."""
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", *keys)}
    try:
        yield
    finally:
        restore_environment(saved)


def restore_environment(saved: dict[str, str | None]) -> None:
    """Put ``os.environ`` back as ``saved`` recorded it (None: the key was unset)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def running_node(
    domain_id: int, namespace: str, parameters: dict[str, Any], log: Path, probe_namespace: str | None = None
) -> Iterator[tuple[client.NodeClient, subprocess.Popen]]:
    """(probe, process): keypoint_node in ``namespace`` with ``parameters`` over config/keypoints.yaml,
    and a :class:`~funk_perception.ros.client.NodeClient` in ``probe_namespace`` (default: the same)."""
    with saved_environment():
        client.init(domain_id)
        proc = client.start_node(
            domain_id, ROOT / "config" / "keypoints.yaml", parameters=parameters, remap={"__ns": namespace}, log=log
        )
        probe = client.NodeClient(namespace=probe_namespace or namespace)
        try:
            probe.wait_connected(240.0)  # torch + model load; minutes on a loaded 2-core VM
            yield probe, proc
        finally:
            probe.close()
            stop(proc)
            rclpy.shutdown()


def get_parameters(probe: client.NodeClient, node: str, names: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """Parameters of ``node`` (its full name) through its get_parameters service, as Python values."""
    service = probe.create_client(GetParameters, f"{node}/get_parameters")
    try:
        if not service.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{node}/get_parameters did not appear within {timeout:g} s")
        future = service.call_async(GetParameters.Request(names=names))
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}/get_parameters did not answer within {timeout:g} s")
            time.sleep(0.01)
        return {name: parameter_value_to_python(v) for name, v in zip(names, future.result().values)}
    finally:
        probe.destroy_client(service)


def start_and_fail(args: list[str], domain_id: int, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """``python -m funk_perception.ros.keypoint_node --ros-args ARGS`` to its end (it is expected to refuse)."""
    cmd = [sys.executable, "-m", "funk_perception.ros.keypoint_node", "--ros-args", *args]
    return subprocess.run(cmd, env=client.ros_environment(domain_id), capture_output=True, text=True, timeout=timeout)
