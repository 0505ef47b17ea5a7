"""The shipped default is what its recipe in the repository builds: the file records the recipe it was built
from (scripts/build_model.py writes ``extra["recipe"]``), and that record must be the recipe file as it is now."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from funk_perception.detector_config import DetectorConfig
from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.shipped import default_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "funk-lite0-synth.toml"


def test_shipped_default_records_the_recipe_in_the_repository() -> None:
    record = FunctionalEncoder.read_checkpoint(default_checkpoint())["extra"].get("recipe")
    assert record is not None, "models/funk-lite0-synth.pt was not built by python scripts/build_model.py"
    recipe = tomllib.loads(RECIPE.read_text())
    assert record["file"] == "recipes/funk-lite0-synth.toml"
    assert record["recipe"] == recipe, "the recipe changed since the shipped file was built: rebuild it"
    # the data it was built on is the data the recipe names
    assert record["data"]["version"] == recipe["data"]["generator_version"]
    assert record["data"]["settings"]["placement"] == recipe["data"]["placement"]
    assert record["data"]["settings"]["seed"] == recipe["data"]["seed"]
    assert re.fullmatch(r"[0-9a-f]{64}", record["data"]["annotations_sha256"])
    # built from committed code, which anyone can check out
    assert re.fullmatch(r"[0-9a-f]{40}", record["code_commit"]), record["code_commit"]
    assert record["command"].startswith("python scripts/build_model.py")
    extra = FunctionalEncoder.read_checkpoint(default_checkpoint())["extra"]
    assert DetectorConfig.from_extra(extra).method == recipe["export"]["detect_method"]
