"""Synthetic dataset generator throughput: images/s at 224 x 224 with 1 and 2 worker processes.

    PYTHONPATH=. python benchmarks/bench_synth.py [--instances-per-category 2] [--views 6] [--workers 1 2]

Writes benchmarks/results/synth.json and benchmarks/results/synth.md: images/s
per worker count (end to end, process start-up included, and the generation
loop alone), plus a per-stage profile (ms per image) from the single-worker
run that shows what limits the rate.
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from common import renderer_machine, report_header, stage_table, timed_generations, write_report

from funk_perception.data.synth import SynthConfig, generate_dataset
from funk_perception.tasks import CATEGORIES

RESULTS = Path(__file__).resolve().parent / "results"

STAGE_NOTES = {
    "build_object": "procedural object (numpy meshes)",
    "compile": "MjSpec -> MjModel (materials, textures, lights)",
    "gl_context": "MjrContext per scene (uploads meshes/textures)",
    "render_rgb": "RGB render + read-back (includes llvmpipe shader JIT the first time a light setup is seen)",
    "render_segmentation": "segmentation render + depth read-back",
    "decode_buffers": "segment ids -> mask, depth un-projection, flips",
    "background": "2D background, compositing, blur and noise",
    "keypoints": "projection + depth-buffer visibility",
    "encode": "JPEG q95 + 2 PNGs (cv2)",
    "write": "atomic file writes",
}


def run(instances: int, views: int, size: int, workers: list[int], seed: int) -> dict:
    results = []
    load = [round(x, 2) for x in os.getloadavg()]
    config = SynthConfig(
        instances_per_category=instances,
        views_per_instance=views,
        size=size,
        seed=seed,
        heldout_instances_per_category=0,
    )

    for w, run_info, wall in timed_generations(generate_dataset, config, workers, "bench_synth_"):
        images = run_info["images_generated"]
        results.append(
            {
                "workers": w,
                "images": images,
                "wall_seconds": round(wall, 2),
                "images_per_second_end_to_end": round(images / wall, 2),
                "images_per_second_generation": run_info["images_per_second"],
                "stage_ms_per_image": {k: round(1000 * v / images, 2) for k, v in run_info["stage_seconds"].items()},
            }
        )
        print(f"workers={w}: {images} images in {wall:.1f} s -> {images / wall:.1f} images/s", flush=True)
    return {
        "benchmark": "synthetic dataset generation throughput",
        **report_header(),
        "machine": renderer_machine(load, numpy=np.__version__, opencv=cv2.__version__),
        "settings": {
            "categories": len(CATEGORIES),
            "instances_per_category": instances,
            "views_per_instance": views,
            "size": size,
            "seed": seed,
        },
        "results": results,
    }


def to_markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# Synthetic dataset generation throughput",
        "",
        f"Date {report['date']}; `{report['command']}`.",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores (load average before the run {m['load_average_before']}, "
        f"cores shared with other jobs), Python {m['python']}, MuJoCo {m['mujoco']} ({m['gl']}, Mesa llvmpipe), OpenCV {m['opencv']}.",
        f"Workload: {s['categories']} categories x {s['instances_per_category']} instances x {s['views_per_instance']} views "
        f"at {s['size']} x {s['size']} (RGB JPEG + depth PNG + mask PNG + records + CSV).",
        "",
        "| workers | images | wall s | images/s end to end | images/s generation loop |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['workers']} | {r['images']} | {r['wall_seconds']} | {r['images_per_second_end_to_end']} | "
            f"{r['images_per_second_generation']} |"
        )
    first = report["results"][0]
    lines += [
        "",
        f"Per-stage cost, {first['workers']} worker (ms per image, summed over the worker's stages):",
        "",
        *stage_table(first["stage_ms_per_image"], STAGE_NOTES, "image"),
        f"| total | {sum(first['stage_ms_per_image'].values()):.1f} | | |",
    ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances-per-category", type=int, default=2)
    p.add_argument("--views", type=int, default=6)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    report = run(args.instances_per_category, args.views, args.size, args.workers, args.seed)
    return write_report(RESULTS, "synth", report, to_markdown, indent=1)


if __name__ == "__main__":
    sys.exit(main())
