"""Rebuild a shipped checkpoint from its recipe: ``python scripts/build_model.py recipes/funk-lite0-synth.toml``.

The recipe file names every choice (generator version and placement of the data, encoder config, seeds, steps,
the join's trunk weight, heatmap head, bank, export precision and detect method). This runner renders the data,
trains one encoder per seed, joins them, fits the heatmap head and the reference bank and exports, each step as
its own process (memory is returned between steps) and each skipped when its output already exists, so a killed
build resumes where it stopped, across sessions. The exported file records the recipe, the command, the data's
fingerprint and the code commit in ``extra["recipe"]`` (tests/test_shipped_recipe.py compares the shipped file's
record with the recipe in the repository).

Wall time of the default on this 2-core VM: models/README.md. A GPU is used when present.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("build_model")


def load_recipe(path: Path) -> dict:
    """The recipe as a dict; a clear error naming the file when it is not TOML or lacks a section."""
    try:
        recipe = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SystemExit(f"build_model: error: {path}: {error}") from None
    missing = [s for s in ("name", "data", "train", "join", "heatmap", "bank", "export") if s not in recipe]
    if missing:
        raise SystemExit(f"build_model: error: {path}: expected sections {missing}, found {sorted(recipe)}")
    return recipe


def data_fingerprint(data: Path) -> dict:
    """What identifies the rendered data: the generator's settings and version from its manifest and the
    SHA-256 of the annotations CSV (its rows name every image and keypoint)."""
    manifest = json.loads((data / "manifest.json").read_text())
    digest = hashlib.sha256((data / "annotations.csv").read_bytes()).hexdigest()
    return {"version": manifest["version"], "settings": manifest["settings"], "annotations_sha256": digest}


def code_commit() -> str:
    """HEAD of the checkout, with ``-dirty`` when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_step(name: str, argv: list[str], done: Path, log_dir: Path) -> None:
    """Run one step unless ``done`` exists; its output goes to ``log_dir/name.log``."""
    if done.exists():
        LOG.info("%s: done before (%s)", name, done)
        return
    start = time.perf_counter()
    LOG.info("%s: %s", name, shlex.join(argv))
    with open(log_dir / f"{name}.log", "a") as log:
        code = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0 or not done.exists():
        raise SystemExit(f"build_model: error: step {name} failed (exit {code}); see {log_dir / (name + '.log')}")
    LOG.info("%s: %.0f s", name, time.perf_counter() - start)


def build(recipe_path: Path, models: Path, runs: Path, datasets: Path) -> Path:
    """Every step of the recipe; returns the exported checkpoint."""
    recipe = load_recipe(recipe_path)
    py = sys.executable
    d, t, j, h, b, e = (recipe[k] for k in ("data", "train", "join", "heatmap", "bank", "export"))
    sys.path.insert(0, str(ROOT))
    from funk_perception.data.synth import GENERATOR_VERSION

    if d["generator_version"] != GENERATOR_VERSION:
        raise SystemExit(
            f"build_model: error: {recipe_path}: data.generator_version: expected this code's generator "
            f"{GENERATOR_VERSION!r}, found {d['generator_version']!r} (check out the commit that had it)"
        )
    name = recipe["name"]
    run = runs / name
    run.mkdir(parents=True, exist_ok=True)
    data = datasets / f"synth-{name}"
    csv = data / "annotations.csv"
    run_step(
        "data",
        [
            py,
            "-m",
            "funk_perception.data.synth",
            "--out",
            str(data),
            "--seed",
            str(d["seed"]),
            "--workers",
            str(d["workers"]),
            "--placement",
            d["placement"],
            "--no-progress",
        ],
        data / "manifest.json",
        run,
    )
    members = []
    for seed in t["seeds"]:
        member = run / f"seed{seed}"
        trunk = [] if t["trunk"] == "lite0" else ["--set", f"model.trunk={t['trunk']}"]
        # --resume continues a killed training (and starts one when there is none)
        run_step(
            f"train-seed{seed}",
            [
                py,
                "-m",
                "funk_perception.train",
                "--config",
                t["config"],
                "--data",
                str(csv),
                "--out",
                str(member),
                "--resume",
                "--steps",
                str(t["steps"]),
                "--seed",
                str(seed),
                *trunk,
                "--set",
                f"num_threads={t['threads']}",
                "--set",
                f"prototype_views={t['prototype_views']}",
                "--set",
                "progress=false",
            ],
            member / "checkpoint.pt",
            run,
        )
        members += ["--member", str(member / "checkpoint.pt")]
    joined = run / "joined.pt"
    run_step(
        "join",
        [
            py,
            "-m",
            "funk_perception.train.ensemble",
            *members,
            "--trunk-weight",
            str(j["trunk_weight"]),
            "--prototype-views",
            str(j["prototype_views"]),
            "--data",
            str(csv),
            "--threads",
            str(t["threads"]),
            "--out",
            str(joined),
        ],
        joined,
        run,
    )
    head = run / "with-head.pt"
    run_step(
        "heatmap",
        [
            py,
            "-m",
            "funk_perception.train.heatmap",
            "--model",
            str(joined),
            "--data",
            str(csv),
            "--out",
            str(head),
            "--seed",
            str(h["seed"]),
            "--threads",
            str(t["threads"]),
        ],
        head,
        run,
    )
    bank = run / "with-bank.pt"
    run_step(
        "bank",
        [
            py,
            "-m",
            "funk_perception.train.bank",
            "--model",
            str(head),
            "--data",
            str(csv),
            "--out",
            str(bank),
            "--per-task",
            str(b["per_task"]),
            "--seed",
            str(b["seed"]),
        ],
        bank,
        run,
    )
    from funk_perception.model.export import export_checkpoint

    record = {
        "file": recipe_path.resolve().relative_to(ROOT).as_posix()
        if recipe_path.resolve().is_relative_to(ROOT)
        else str(recipe_path),
        "recipe": recipe,
        "command": shlex.join(["python", "scripts/build_model.py", *sys.argv[1:]]),
        "data": data_fingerprint(data),
        "code_commit": code_commit(),
    }
    out = export_checkpoint(bank, models / f"{name}.pt", e["dtype"], e["detect_method"], recipe=record)
    LOG.info("exported %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path, nargs="?", default=ROOT / "recipes" / "funk-lite0-synth.toml")
    parser.add_argument(
        "--models",
        type=Path,
        default=ROOT / "models",
        help="where the checkpoint is exported (another folder tries a recipe without replacing a shipped file)",
    )
    parser.add_argument(
        "--runs", type=Path, default=ROOT / "runs" / "build", help="where each step's output and log go"
    )
    parser.add_argument("--datasets", type=Path, default=ROOT / "datasets", help="where the data is rendered")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.runs / "build_model.log")],
    )
    build(args.recipe, args.models, args.runs, args.datasets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
