"""How camera frames reach the node: the shipped Fast DDS profile, the topic names camera drivers use, and the
run-time checks that say why frames are not arriving. No rclpy here, so tests/test_ros_transport.py checks
the logic without a ROS graph.

Fast DDS (the middleware of ROS 2 Jazzy) sends a message between processes on
one machine through the *sender's* shared-memory segment, 512 KiB unless a
profile says otherwise; a 640 x 480 rgb8 frame is 900 KiB, and most such
frames are dropped before they leave the camera's process (measured in
benchmarks/results/transport-probe-*.md: 2-39 % arrived; nothing the
subscriber configures brings them back while it offers shared memory). The fix is
``config/fastdds.xml`` on the publishing side: the camera driver, and this
node for its own ``keypoints/image``. The node gives it to itself
(:func:`apply_profile`, before rclpy creates its DDS participant); the camera
driver gets it through the environment variable named in docs/ROS.md.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from funk_perception.shipped import shipped_file

#: The profile the package ships (setup.py installs config/ into share/funk_perception).
PROFILE = "config/fastdds.xml"

#: The variable Fast DDS 2.x, the Fast DDS of ROS 2 Jazzy, reads its profile file from.
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"

#: Both spellings count as the user's choice: the second is the one Fast DDS 3 reads.
USER_PROFILE_VARIABLES = (PROFILE_VARIABLE, "FASTDDS_DEFAULT_PROFILES_FILE")

#: The file Fast DDS also loads from the working directory unless SKIP_DEFAULT_XML_FILE=1.
CWD_PROFILE = "DEFAULT_FASTRTPS_PROFILES.xml"

#: Seconds with a publisher matched and no frame before the node says so.
STALL_S = 5.0

#: Seconds between repeats of the same warning while the condition lasts.
REPEAT_S = 60.0


@dataclass(frozen=True)
class ProfileChoice:
    """Which Fast DDS profile the process runs with, and why (for the node's start-up log line)."""

    path: str | None  # the profile file; None: Fast DDS's built-in defaults
    source: str  # "shipped" (set by apply_profile), "user" (kept), "defaults" or "other_rmw"
    detail: str = ""

    def describe(self) -> str:
        if self.source == "shipped":
            return f"Fast DDS profile {self.path} (shipped; {PROFILE_VARIABLE} was not set)"
        if self.source == "user":
            return f"Fast DDS profile {self.path} ({self.detail}, kept)"
        if self.source == "other_rmw":
            return f"no Fast DDS profile applied ({self.detail})"
        return f"Fast DDS built-in defaults ({self.detail}): camera-sized frames may be lost, see docs/ROS.md"


def profile_path() -> Path:
    """The installed config/fastdds.xml (checkout, colcon share directory or pip prefix)."""
    return shipped_file(PROFILE)


def apply_profile(environ: MutableMapping[str, str] | None = None, cwd: Path | None = None) -> ProfileChoice:
    """Give this process the shipped profile unless the user chose one; must run before ``rclpy.init``.

    The user's choice is any of :data:`USER_PROFILE_VARIABLES` being set or a
    ``DEFAULT_FASTRTPS_PROFILES.xml`` in the working directory, which Fast DDS loads by itself. Set
    empty, a variable means Fast DDS's defaults on purpose; it is then removed, since Fast DDS logs an
    XMLPARSER error for an empty path. Another RMW than Fast DDS ignores the file, so it is not set then."""
    environ = os.environ if environ is None else environ
    for name in USER_PROFILE_VARIABLES:
        if name in environ:
            value = environ[name]
            if not value:
                del environ[name]
                return ProfileChoice(None, "defaults", f"{name} was set empty")
            return ProfileChoice(value, "user", f"from {name}")
    local = (cwd or Path.cwd()) / CWD_PROFILE
    if environ.get("SKIP_DEFAULT_XML_FILE") != "1" and local.is_file():
        return ProfileChoice(str(local), "user", "from the working directory")
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return ProfileChoice(None, "other_rmw", f"RMW_IMPLEMENTATION={rmw}")
    path = profile_path()
    if not path.is_file():
        return ProfileChoice(None, "defaults", f"{path} is missing from this install")
    environ[PROFILE_VARIABLE] = str(path)
    return ProfileChoice(str(path), "shipped")


# -- topic names, as camera drivers and image_transport lay them out ----------------------------------------------


def compressed_topic(image_topic: str) -> str:
    """image_transport's name for the compressed stream of ``image_topic``: ``<image topic>/compressed``."""
    return image_topic.rstrip("/") + "/compressed"


def camera_info_topic(image_topic: str) -> str:
    """image_transport's camera_info of ``image_topic``: its sibling, ``<namespace of the image>/camera_info``."""
    parent = posixpath.dirname(image_topic.rstrip("/"))
    return posixpath.join(parent or "/", "camera_info")


def input_topic(remapped: str, expanded: str, derived: str) -> str:
    """The topic to subscribe to for an input the user may have remapped: ``remapped`` when a remap rule
    changed it (``remapped != expanded``), else ``derived`` from the image topic."""
    return remapped if remapped != expanded else derived


def input_topics(resolve: Callable[..., str], compressed: bool, use_depth: bool) -> dict[str, str]:
    """The node's input topics, fully resolved: ``{"image": ..., ["depth": ..., "camera_info": ...,] "roi": ...}``.

    ``resolve`` is rclpy's ``Node.resolve_topic_name`` (namespace expansion and remap rules; with
    ``only_expand=True`` expansion alone). ``image`` is the node's own name, remappable; with ``compressed``
    the node listens on ``<image>/compressed`` and with ``use_depth`` on ``<namespace of image>/camera_info``,
    each unless its own name (``image/compressed``, ``camera_info``) was remapped; ``depth`` and ``roi`` as
    remapped."""
    image = resolve("image")

    def derived(name: str, default: str) -> str:
        return input_topic(resolve(name), resolve(name, only_expand=True), default)

    topics = {"image": derived("image/compressed", compressed_topic(image)) if compressed else image}
    if use_depth:
        topics["depth"] = resolve("depth")
        topics["camera_info"] = derived("camera_info", camera_info_topic(image))
    topics["roi"] = resolve("roi")
    return topics


# -- run-time checks ----------------------------------------------------------------------------------------------


def fix_hint(path: str | Path | None = None) -> str:
    """The one-line fix: the camera driver started with the shipped profile (docs/ROS.md says where)."""
    return (
        f"start the camera driver with {PROFILE_VARIABLE}={path or profile_path()} in its environment "
        f'(docs/ROS.md, "Wire it to your camera")'
    )


class StallWatch:
    """Says when a publisher has been matched for :data:`STALL_S` seconds and no frame came in that time.

    Time and counts are passed in (:meth:`check` once a second from the node's timer), so the logic is
    tested without a clock or a graph."""

    def __init__(self, topic: str, after_s: float = STALL_S, repeat_s: float = REPEAT_S) -> None:
        self.topic = topic
        self.after_s = after_s
        self.repeat_s = repeat_s
        self._since: float | None = None  # start of the current wait: publisher matched, no frame since
        self._received = 0
        self._warned_at: float | None = None

    def check(self, now: float, publishers: int, received: int) -> str | None:
        """A warning to log now, or None. ``publishers``: matched publishers; ``received``: frames so far."""
        if publishers <= 0 or received != self._received:
            self._since = None if publishers <= 0 else now
            self._received = received
            self._warned_at = None
            return None
        if self._since is None:
            self._since = now
        waited = now - self._since
        if waited < self.after_s:
            return None
        if self._warned_at is not None and now - self._warned_at < self.repeat_s:
            return None
        self._warned_at = now
        return (
            f"{publishers} publisher(s) matched on {self.topic} but no frame arrived for {waited:.0f} s. "
            f"Likely cause: frames larger than Fast DDS's default 512 KiB shared-memory segment (640 x 480 "
            f"rgb8 is 900 KiB) are dropped inside the camera's process. Fix: {fix_hint()}"
        )


def lost_message(topic: str, lost_total: int) -> str:
    """The warning for frames the middleware reports lost before they reached the node."""
    return (
        f"{lost_total} frame(s) on {topic} lost in transport so far (gaps in the publisher's sequence "
        f"numbers seen by the middleware, counted as transport.lost). Likely cause: the camera driver runs "
        f"without a shared-memory segment large enough for its frames. Fix: {fix_hint()}"
    )


def incompatible_qos_message(topic: str, policy: str, image_qos: str) -> str:
    """The warning for a publisher whose QoS this subscription cannot match (nothing from it arrives)."""
    text = f"a publisher on {topic} offers QoS this subscription cannot match ({policy}); none of its messages arrive"
    if policy.upper() == "RELIABILITY" and image_qos == "reliable":
        return (
            text + ". The node subscribes reliable (image_qos:=reliable) and the publisher is best effort: "
            "start the node with image_qos:=sensor_data, which matches any publisher"
        )
    return text + f". Compare with the publisher's QoS: ros2 topic info -v {topic}"


if __name__ == "__main__":  # the installed profile's path, for the camera driver's environment (docs/ROS.md)
    print(profile_path())
