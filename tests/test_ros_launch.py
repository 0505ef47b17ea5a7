"""launch/keypoints.launch.py and config/keypoints.yaml, checked without launch/launch_ros (not installable
here): the file parses and, run against stand-ins for the launch API that do what launch does with them
(a command-line argument wins over the declared default; OpaqueFunction runs with the context; a
LaunchConfiguration substitution reads the context; ParameterValue converts as launch_ros does; the
parameter list is applied in order, later entries winning, as rcl applies launch_ros's --params-file
arguments), declares the documented arguments and starts the executable setup.py installs with
parameters the node declares. The precedence of the resulting parameter files is checked once more on
real rclpy."""

import ast
import importlib.util
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml

from funk_perception.ros.params import PARAMETER_NAMES, PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "keypoints.launch.py"
CONFIG = ROOT / "config" / "keypoints.yaml"
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"


class Recorded:
    """Stands in for a launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context) -> str:
        return context.launch_configurations[self.args[0]]


class OpaqueFunction(Recorded):
    def execute(self, context) -> list:
        return self.kwargs["function"](context, *self.kwargs.get("args", []), **self.kwargs.get("kwargs", {}))


class Context:
    def __init__(self) -> None:
        self.launch_configurations: dict[str, str] = {}


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def load_launch(monkeypatch, share: Path) -> types.ModuleType:
    kinds = {
        name: type(name, (Recorded,), {})
        for name in ("LaunchDescription", "DeclareLaunchArgument", "Node", "ParameterValue")
    }
    fakes = {
        "ament_index_python": _module("ament_index_python"),
        "ament_index_python.packages": _module(
            "ament_index_python.packages", get_package_share_directory=lambda pkg: str(share)
        ),
        "launch": _module("launch", LaunchDescription=kinds["LaunchDescription"]),
        "launch.actions": _module(
            "launch.actions", DeclareLaunchArgument=kinds["DeclareLaunchArgument"], OpaqueFunction=OpaqueFunction
        ),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=kinds["Node"]),
        "launch_ros.parameter_descriptions": _module(
            "launch_ros.parameter_descriptions", ParameterValue=kinds["ParameterValue"]
        ),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("keypoints_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch(monkeypatch, share: Path, **command_line: str) -> tuple[dict[str, dict], Recorded, Context]:
    """(declared arguments, the node action, the context) as ``ros2 launch ... name:=value`` would make them:
    command-line values first, declared defaults for the rest, then the OpaqueFunction run."""
    description = load_launch(monkeypatch, share).generate_launch_description()
    context = Context()
    context.launch_configurations.update(command_line)
    declared = {}
    actions = []
    for action in description.args[0]:
        if type(action).__name__ == "DeclareLaunchArgument":
            declared[action.args[0]] = action.kwargs
            context.launch_configurations.setdefault(action.args[0], action.kwargs["default_value"])
        elif isinstance(action, OpaqueFunction):
            actions += action.execute(context)
        else:
            actions.append(action)
    unknown = set(command_line) - set(declared)
    assert not unknown, f"not declared: {unknown}"
    (node,) = [a for a in actions if type(a).__name__ == "Node"]
    return declared, node, context


def _convert(value, context):
    """A substitution or ParameterValue as launch_ros hands it to the node."""
    if isinstance(value, LaunchConfiguration):
        return value.perform(context)
    if type(value).__name__ == "ParameterValue":
        text = value.args[0].perform(context)
        kind = value.kwargs["value_type"]
        parsed = yaml.safe_load(text)
        if kind is bool:
            assert isinstance(parsed, bool), f"{text!r} is no bool"
        elif typing.get_origin(kind) is list:
            parsed = parsed if isinstance(parsed, list) else [parsed]
            parsed = [str(v) for v in parsed]
        return parsed
    return value


def parameter_files(node: Recorded, context: Context, folder: Path) -> list[Path]:
    """The --params-file arguments launch_ros gives the node, in order: a path as it is, a dict written
    to a file of its own under the wildcard node name."""
    files = []
    for n, entry in enumerate(node.kwargs["parameters"]):
        if isinstance(entry, dict):
            path = folder / f"launch_params_{n}.yaml"
            path.write_text(
                yaml.safe_dump({"/**": {"ros__parameters": {k: _convert(v, context) for k, v in entry.items()}}})
            )
            files.append(path)
        else:
            files.append(Path(_convert(entry, context)))
    return files


def applied(files: list[Path]) -> dict:
    """The values the node ends up with: each file's wildcard section over the declared defaults, in order."""
    values = {p.name: p.default for p in PARAMETERS}
    for path in files:
        values.update(yaml.safe_load(path.read_text())["/**"]["ros__parameters"])
    return values


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return dict(tuple(s.strip() for s in e.value.split("=")) for e in v.elts)
    raise AssertionError("setup.py declares no console_scripts")


@pytest.fixture
def no_profile_env(monkeypatch):
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)


def test_launch_file_declares_the_arguments_and_starts_the_installed_node(monkeypatch, tmp_path, no_profile_env):
    ast.parse(LAUNCH.read_text())
    declared, node, context = launch(monkeypatch, tmp_path)
    assert set(declared) >= {
        "model",
        "tasks",
        "device",
        "image",
        "use_depth",
        "params_file",
        "image_qos",
        "compressed",
        "camera",
        "depth",
        "camera_info",
        "namespace",
    }
    assert all(kw.get("description") for kw in declared.values())
    assert declared["params_file"]["default_value"] == str(tmp_path / "config" / "keypoints.yaml")
    assert node.kwargs["package"] == "funk_perception"
    scripts = _console_scripts()
    assert scripts[node.kwargs["executable"]] == "funk_perception.ros.keypoint_node:main"
    # nothing given on the command line: the params file alone
    (params_file,) = node.kwargs["parameters"]
    assert params_file.args == ("params_file",)
    assert node.kwargs["namespace"] == ""
    assert node.kwargs["additional_env"] == {PROFILE_VARIABLE: str(tmp_path / "config" / "fastdds.xml")}


def test_each_override_is_the_launch_argument_of_the_same_name(monkeypatch, tmp_path, no_profile_env):
    given = {
        "model": "/m.pt",
        "tasks": "[pour, scoop]",
        "device": "cpu",
        "use_depth": "true",
        "image_qos": "reliable",
        "compressed": "false",
    }
    declared, node, context = launch(monkeypatch, ROOT, **given)  # ROOT: the checkout stands for the share directory
    params_file, overrides = node.kwargs["parameters"]
    assert set(overrides) == set(given) and set(overrides) <= set(PARAMETER_NAMES)
    for name, value in overrides.items():
        config = value.args[0] if type(value).__name__ == "ParameterValue" else value
        assert config.args == (name,) and name in declared
    values = applied(parameter_files(node, context, tmp_path))
    assert values["tasks"] == ["pour", "scoop"] and values["use_depth"] is True and values["compressed"] is False
    assert values["model"] == "/m.pt" and values["image_qos"] == "reliable"


def test_params_file_wins_over_arguments_not_given(monkeypatch, tmp_path, no_profile_env):
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "/**": {
                    "ros__parameters": {
                        "model": "/my/model.pt",
                        "tasks": ["poke"],
                        "device": "cpu",
                        "use_depth": True,
                        "image_qos": "reliable",
                        "compressed": True,
                    }
                }
            }
        )
    )
    _, node, context = launch(monkeypatch, tmp_path, params_file=str(mine))
    values = applied(parameter_files(node, context, tmp_path))
    assert (
        values["model"],
        values["tasks"],
        values["device"],
        values["use_depth"],
        values["image_qos"],
        values["compressed"],
    ) == ("/my/model.pt", ["poke"], "cpu", True, "reliable", True)
    # one argument given: that one wins, the file keeps the rest
    _, node, context = launch(monkeypatch, tmp_path, params_file=str(mine), tasks="[scoop]")
    values = applied(parameter_files(node, context, tmp_path))
    assert values["tasks"] == ["scoop"] and values["model"] == "/my/model.pt" and values["use_depth"] is True


def test_params_file_precedence_on_real_rclpy(monkeypatch, tmp_path, no_profile_env):
    """The files the launch file makes, in its order, given to a real rclpy node as launch_ros gives them
    (--params-file each): rcl applies them as :func:`applied` assumes."""
    rclpy = pytest.importorskip("rclpy")
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump({"/**": {"ros__parameters": {"tasks": ["poke"], "device": "cpu", "use_depth": True}}})
    )
    _, node_action, context = launch(monkeypatch, tmp_path, params_file=str(mine), device="auto")
    files = parameter_files(node_action, context, tmp_path)
    args = ["keypoint_node", "--ros-args"] + [a for f in files for a in ("--params-file", str(f))]
    ctx = rclpy.Context()
    rclpy.init(args=args, context=ctx)
    try:
        node = rclpy.create_node("keypoint_node", context=ctx)
        for param in PARAMETERS:
            node.declare_parameter(param.name, param.default)
        got = {name: node.get_parameter(name).value for name in ("tasks", "device", "use_depth", "model")}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    assert got == {"tasks": ["poke"], "device": "auto", "use_depth": True, "model": ""}
    assert applied(files)["device"] == "auto" and applied(files)["tasks"] == ["poke"]


def test_camera_namespace_wires_the_driver_layout_and_each_topic_stays_remappable(
    monkeypatch, tmp_path, no_profile_env
):
    _, node, _ = launch(monkeypatch, tmp_path)
    remaps = dict(node.kwargs["remappings"])
    assert remaps == {
        "image": "/camera/color/image_raw",
        "depth": "/camera/aligned_depth_to_color/image_raw",
        "roi": "roi",
    }  # camera_info and image/compressed: the node derives them from the image
    _, node, _ = launch(monkeypatch, tmp_path, camera="/robot/head_camera/", namespace="/perception")
    remaps = dict(node.kwargs["remappings"])
    assert remaps["image"] == "/robot/head_camera/color/image_raw"
    assert remaps["depth"] == "/robot/head_camera/aligned_depth_to_color/image_raw"
    assert node.kwargs["namespace"] == "/perception"
    _, node, _ = launch(monkeypatch, tmp_path, image="/image_raw", camera_info="/info", depth="/d", roi="/box")
    assert dict(node.kwargs["remappings"]) == {
        "image": "/image_raw",
        "depth": "/d",
        "roi": "/box",
        "camera_info": "/info",
    }


def test_the_node_gets_the_shipped_profile_unless_the_shell_has_one(monkeypatch, tmp_path):
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    _, node, _ = launch(monkeypatch, tmp_path, fastdds_profile="/p.xml")
    assert node.kwargs["additional_env"] == {PROFILE_VARIABLE: "/p.xml"}
    for users in ("/home/me/dds.xml", ""):  # set empty: Fast DDS's defaults on purpose
        monkeypatch.setenv(PROFILE_VARIABLE, users)
        _, node, _ = launch(monkeypatch, tmp_path)
        assert node.kwargs["additional_env"] == {}  # the node inherits the shell's environment


def test_config_yaml_sets_every_declared_parameter_to_its_default():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert list(params) == list(PARAMETER_NAMES)
    for param in PARAMETERS:
        assert params[param.name] == param.default and type(params[param.name]) is type(param.default), param.name


def test_setup_installs_launch_and_config_into_the_share_directory():
    tree = ast.parse((ROOT / "setup.py").read_text())
    folders = {
        elt.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Tuple)
        for elt in node.elts
        if isinstance(elt, ast.Constant)
    }
    assert {"launch", "config"} <= folders
    assert (ROOT / "config" / "fastdds.xml").is_file()  # installed with config/, found by shipped_file
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/funk_perception" in cfg and "install_scripts=$base/lib/funk_perception" in cfg
