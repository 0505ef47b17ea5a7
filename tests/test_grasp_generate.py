"""The simulated grasp dataset: deterministic for a seed, resumes after a kill, Pinto-Gupta layout on disk."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funk_grasp.data import read_split
from funk_grasp.generate import GenerateConfig, generate_dataset, plan_jobs, record_path

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--categories",
    "hammer",
    "cup",
    "--heldout-categories",
    "wok",
    "--instances-per-category",
    "3",
    "--heldout-instances-per-category",
    "1",
    "--placements",
    "1",
    "--attempts-per-placement",
    "4",
    "--seed",
    "7",
]


def _config(out: Path) -> GenerateConfig:
    return GenerateConfig(
        out=out,
        categories=("hammer", "cup"),
        heldout_categories=("wok",),
        instances_per_category=3,
        heldout_instances_per_category=1,
        placements=1,
        attempts_per_placement=4,
        seed=7,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grasp_ref")
    generate_dataset(_config(out), progress=False)
    return out


def test_layout_splits_by_instance_and_labels_from_physics(reference):
    rows = (reference / "attempts.csv").read_text().splitlines()
    assert len(rows) == 1 + 7 * 4  # 2 categories x 3 instances + 1 held-out instance, 4 attempts each
    header = rows[0].split(",")
    split_col, instance_col = header.index("split"), header.index("instance")
    splits_of = {}
    for line in rows[1:]:
        fields = line.split(",")
        splits_of.setdefault(fields[instance_col], set()).add(fields[split_col])
    assert all(len(s) == 1 for s in splits_of.values())  # an instance lies in one split only
    assert {s for v in splits_of.values() for s in v} == {"Train", "Validation", "Test", "TestHeldout"}
    for split in ("Train", "Validation", "Test", "TestHeldout"):
        if (reference / split).is_dir():
            patches = read_split(reference / split)
            assert sum(p.success for p in patches) * 2 == len(patches)  # balanced folders


def test_same_seed_same_bytes_and_resume_after_kill(reference, tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "funk_grasp.generate", "--out", str(out), "--no-progress", *ARGS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = plan_jobs(_config(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(record_path(out, j).is_file() for j in jobs):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sum(record_path(out, j).is_file() for j in jobs)
    assert 1 <= done < len(jobs), "the kill should land after the first placement and before the last"
    manifest = generate_dataset(_config(out), progress=False)
    assert manifest["run"]["placements_resumed"] == done
    assert (out / "attempts.csv").read_bytes() == (reference / "attempts.csv").read_bytes()
    for job in jobs:
        assert record_path(out, job).read_bytes() != b""
        ref = (reference / "scenes" / job.category / f"{job.name}.png").read_bytes()
        assert (out / "scenes" / job.category / f"{job.name}.png").read_bytes() == ref


def test_other_settings_in_the_same_folder_are_refused(reference):
    config = _config(reference)
    changed = GenerateConfig(**{**config.__dict__, "attempts_per_placement": 5})
    with pytest.raises(ValueError, match="made with other settings"):
        generate_dataset(changed, progress=False)
