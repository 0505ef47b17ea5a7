"""launch/keypoints.launch.py and config/keypoints.yaml, checked without launch/launch_ros (not installable
here): the file parses and, run against recording stand-ins for the launch API, declares the documented
arguments, starts the executable setup.py installs, with parameters the node declares, from the YAML."""

import ast
import importlib.util
import sys
import types
from pathlib import Path

import yaml

from funk_perception.ros.params import PARAMETER_NAMES, PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "keypoints.launch.py"
CONFIG = ROOT / "config" / "keypoints.yaml"


class Recorded:
    """Stands in for a launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def describe(monkeypatch, share: Path) -> Recorded:
    kinds = {name: type(name, (Recorded,), {}) for name in
             ("LaunchDescription", "DeclareLaunchArgument", "LaunchConfiguration", "Node", "ParameterValue")}
    fakes = {
        "ament_index_python": _module("ament_index_python"),
        "ament_index_python.packages": _module("ament_index_python.packages",
                                               get_package_share_directory=lambda pkg: str(share)),
        "launch": _module("launch", LaunchDescription=kinds["LaunchDescription"]),
        "launch.actions": _module("launch.actions", DeclareLaunchArgument=kinds["DeclareLaunchArgument"]),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=kinds["LaunchConfiguration"]),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=kinds["Node"]),
        "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions",
                                                     ParameterValue=kinds["ParameterValue"]),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("keypoints_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return dict(tuple(s.strip() for s in e.value.split("=")) for e in v.elts)
    raise AssertionError("setup.py declares no console_scripts")


def test_launch_file_declares_the_arguments_and_starts_the_installed_node(monkeypatch, tmp_path):
    ast.parse(LAUNCH.read_text())
    description = describe(monkeypatch, tmp_path)
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs for a in actions if type(a).__name__ == "DeclareLaunchArgument"}
    assert set(declared) >= {"model", "tasks", "device", "image", "use_depth", "params_file"}
    assert all(kw.get("description") for kw in declared.values())
    assert declared["params_file"]["default_value"] == str(tmp_path / "config" / "keypoints.yaml")
    (node,) = [a for a in actions if type(a).__name__ == "Node"]
    assert node.kwargs["package"] == "funk_perception"
    scripts = _console_scripts()
    assert scripts[node.kwargs["executable"]] == "funk_perception.ros.keypoint_node:main"
    params_file, overrides = node.kwargs["parameters"]
    assert params_file.args == ("params_file",)
    assert set(overrides) <= set(PARAMETER_NAMES)
    for name, value in overrides.items():  # each override is the launch argument of the same name
        config = value.args[0] if type(value).__name__ == "ParameterValue" else value
        assert config.args == (name,) and name in declared
    remapped = {src for src, _ in node.kwargs["remappings"]}
    assert remapped == {"image", "image/compressed", "depth", "camera_info", "roi"}
    assert yaml.safe_load(declared["tasks"]["default_value"]) == list(
        yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]["tasks"])


def test_config_yaml_sets_every_declared_parameter_to_its_default():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert list(params) == list(PARAMETER_NAMES)
    for param in PARAMETERS:
        assert params[param.name] == param.default and type(params[param.name]) is type(param.default), param.name


def test_setup_installs_launch_and_config_into_the_share_directory():
    tree = ast.parse((ROOT / "setup.py").read_text())
    folders = {elt.value for node in ast.walk(tree) if isinstance(node, ast.Tuple)
               for elt in node.elts if isinstance(elt, ast.Constant)}
    assert {"launch", "config"} <= folders
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/funk_perception" in cfg and "install_scripts=$base/lib/funk_perception" in cfg
