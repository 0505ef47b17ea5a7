"""The repository is one ament_python ROS 2 package that also installs with pip."""

import ast
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "funk_perception"
    assert root.find("export").findtext("build_type") == "ament_python"
    assert {e.text for e in root.findall("exec_depend")} >= {"rclpy", "sensor_msgs"}
    assert root.findall("test_depend")


def test_ament_resource_marker_exists():
    assert (ROOT / "resource" / "funk_perception").is_file()


def _console_scripts() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return [elt.value for elt in v.elts]
    raise AssertionError("setup.py declares no console_scripts")


def test_every_console_script_points_at_a_real_function():
    for entry in _console_scripts():
        name, target = (s.strip() for s in entry.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), entry


def test_package_versions_agree():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert f'version="{root.findtext("version")}"' in (ROOT / "setup.py").read_text()


def test_every_entry_point_defaults_to_the_one_shipped_checkpoint():
    from fewshot import FewShotConfig

    from funk_grasp.model import DEFAULT_ENCODER
    from funk_perception.demo import DEFAULT_MODEL as DEMO_MODEL
    from funk_perception.ros.params import PARAMETERS
    from funk_perception.shipped import DEFAULT_CHECKPOINT, default_checkpoint
    from funk_rl.encoders import DEFAULT_MODEL as RL_MODEL

    shipped = default_checkpoint()
    assert shipped.is_file() and shipped.as_posix().endswith(DEFAULT_CHECKPOINT)
    assert DEMO_MODEL == RL_MODEL == shipped
    # grasping and few-shot keep the relative path their result files record
    assert DEFAULT_ENCODER.as_posix() == FewShotConfig().model.as_posix() == DEFAULT_CHECKPOINT
    model = next(p for p in PARAMETERS if p.name == "model")
    assert DEFAULT_CHECKPOINT in model.description
