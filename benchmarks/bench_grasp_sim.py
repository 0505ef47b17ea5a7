"""Simulated grasp dataset throughput: attempts/s with 1 and 2 worker processes.

    PYTHONPATH=. python benchmarks/bench_grasp_sim.py [--categories hammer cup spoon bottle] [--workers 1 2]

Writes benchmarks/results/grasp_sim.json and grasp_sim.md: attempts/s per
worker count (end to end, process start-up and the patch export included, and
the generation loop alone) and where one worker's time goes (object build +
settling, the three top-down renders, the grasp attempts, file writes).
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import argparse
import os
import sys
from pathlib import Path

from common import renderer_machine, report_header, stage_table, timed_generations, write_report

from funk_grasp.generate import GenerateConfig, generate_dataset

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = {
    "build_and_settle": "procedural object, MjSpec compile, 1.2 s of settling physics",
    "render": "top-down RGB, depth and segmentation renders (GL context per scene)",
    "attempts": "approach, descend, close, lift, shake, hold: ~2.4 s of physics per attempt",
    "write": "scene PNGs and the JSON record (atomic)",
}


def run(categories: list[str], instances: int, attempts: int, workers: list[int], seed: int) -> dict:
    results = []
    load = [round(x, 2) for x in os.getloadavg()]
    config = GenerateConfig(
        categories=tuple(categories),
        heldout_categories=(),
        instances_per_category=instances,
        placements=1,
        attempts_per_placement=attempts,
        heldout_instances_per_category=0,
        seed=seed,
    )

    for w, info, wall in timed_generations(generate_dataset, config, workers, "bench_grasp_"):
        done = info["attempts_run"]
        results.append(
            {
                "workers": w,
                "attempts": done,
                "wall_seconds": round(wall, 2),
                "attempts_per_second_end_to_end": round(done / wall, 2),
                "attempts_per_second_generation": info["attempts_per_second"],
                "attempts_per_cpu_second": info["attempts_per_cpu_second"],
                "stage_ms_per_attempt": {k: round(1000 * v / done, 1) for k, v in info["stage_seconds"].items()},
            }
        )
        print(f"workers={w}: {done} attempts in {wall:.1f} s -> {done / wall:.1f} attempts/s", flush=True)
    return {
        "benchmark": "simulated grasp dataset throughput",
        **report_header(),
        "machine": renderer_machine(load),
        "settings": {
            "categories": categories,
            "instances_per_category": instances,
            "attempts_per_placement": attempts,
            "seed": seed,
        },
        "results": results,
    }


def to_markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# Simulated grasp dataset throughput",
        "",
        f"Date {report['date']}; `{report['command']}`.",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, no GPU (load average before the run {m['load_average_before']}: "
        f"the cores were shared with other jobs), Python {m['python']}, MuJoCo {m['mujoco']} ({m['gl']}).",
        f"Workload: {len(s['categories'])} categories ({', '.join(s['categories'])}) x {s['instances_per_category']} "
        f"instances x 1 placement x {s['attempts_per_placement']} attempts, seed {s['seed']}.",
        "",
        "Wall-clock rates depend on how busy the cores were; attempts per CPU-second (summed over the workers' own "
        "CPU time) do not.",
        "",
        "| workers | attempts | wall s | attempts/s end to end | attempts/s generation loop | attempts per CPU-second |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['workers']} | {r['attempts']} | {r['wall_seconds']} | {r['attempts_per_second_end_to_end']} | "
            f"{r['attempts_per_second_generation']} | {r['attempts_per_cpu_second']} |"
        )
    base = report["results"][0]
    if len(report["results"]) > 1:
        last = report["results"][-1]
        lines += [
            "",
            f"Speed-up {last['workers']} vs {base['workers']} worker(s), generation loop: "
            f"{last['attempts_per_second_generation'] / base['attempts_per_second_generation']:.2f}x.",
        ]
    lines += [
        "",
        f"Where the wall time goes, {base['workers']} worker (ms per attempt):",
        "",
        *stage_table(base["stage_ms_per_attempt"], STAGES, "attempt"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--categories", nargs="+", default=["hammer", "cup", "spoon", "bottle"])
    p.add_argument("--instances-per-category", type=int, default=3)
    p.add_argument("--attempts", type=int, default=12, help="attempts per placement")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    report = run(args.categories, args.instances_per_category, args.attempts, args.workers, args.seed)
    return write_report(args.out, "grasp_sim", report, to_markdown, indent=1)


if __name__ == "__main__":
    sys.exit(main())
