"""The simulated grasp dataset generator (``python -m funk_grasp.generate``).

For every category it builds ``instances_per_category`` procedural objects
(:mod:`funk_perception.data.objects`), places each one ``placements`` times
on the table (random position and turn, dropped and settled by the physics),
renders the top-down image and runs ``attempts_per_placement`` grasps from the
settled state: points sampled on the object mask (``on_object_fraction``) and
around it, angles uniform over 180 degrees. Labels are the simulator's.

Splits are by object instance: per training category one instance goes to
``Test``, one to ``Validation``, the rest to ``Train``; the five held-out
categories go to ``TestHeldout``. Every split folder is class-balanced (the larger class is
subsampled, seeded), so accuracy is read against 50 %; ``attempts.csv``
keeps every attempt and its natural success rate.

Layout under ``--out`` (each split in the Pinto-Gupta patch layout, read by
:mod:`funk_grasp.data`)::

    scenes/<category>/<instance>_p<k>.png       the top-down RGB image
    scenes/<category>/<instance>_p<k>_mask.png  the object mask (255 = object)
    scenes/<category>/<instance>_p<k>.json      settled pose and every attempt (written last)
    Train/ Validation/ Test/ TestHeldout/
        positive/Images/*.png, positive/dataInfo.txt   (header, then patchname,angle)
        negative/Images/*.png, negative/dataInfo.txt
    attempts.csv      every attempt: split, category, instance, pixel, angle, outcome, patch path
    manifest.json     settings, counts, positive rates, attempts/s
    generate.log

Determinism and resuming: each placement draws from its own seed
``(seed, crc32(category), instance, placement)``, independent of workers and
order. A placement's record is written (atomically) after its images; a rerun
skips placements with a record made by the same settings and rebuilds the
split folders, so a killed run resumes where it stopped (the same job runner as
:mod:`funk_perception.data.synth`: :func:`funk_perception.jobs.run_jobs`).
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import argparse
import csv
import io
import json
import logging
import math
import platform
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from funk_grasp.data import ANGLE_BINS, SPLITS, angle_to_bin, crop_patch, write_split
from funk_grasp.sim import GraspScene, GraspSimConfig
from funk_perception.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.data.objects import build_object
from funk_perception.jobs import log_to_file, read_record, run_jobs, settings_fingerprint
from funk_perception.tasks import CATEGORIES, HELDOUT_CATEGORIES, normalize_category

GENERATOR_VERSION = "1.0.0"
LOG = logging.getLogger("funk_grasp.generate")
ATTEMPT_COLUMNS: tuple[str, ...] = (
    "patch",
    "split",
    "category",
    "instance",
    "placement",
    "attempt",
    "x",
    "y",
    "angle",
    "angle_bin",
    "success",
    "rise",
    "object_clearance",
    "touched",
    "diverged",
    "tip_height",
    "opening",
    "on_object",
    "in_split_folder",
)


@dataclass(frozen=True)
class GenerateConfig:
    """Generator settings. Defaults: 20 x 6 instances x 2 placements x 20 attempts = 4,800 attempts (+ 400 held out)."""

    out: Path = Path("datasets/grasp")
    instances_per_category: int = 6
    heldout_instances_per_category: int = 2
    placements: int = 2
    attempts_per_placement: int = 20
    on_object_fraction: float = 0.75
    aligned_fraction: float = 0.5  # of the on-object grasps: closing axis across the mask's local long axis (+ noise)
    aligned_noise: float = 20.0  # degrees, standard deviation
    patch_size: int = 128  # pixels of the square crop centred on the grasp point (0.2 m at the default scale)
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    heldout_categories: tuple[str, ...] = HELDOUT_CATEGORIES
    sim: GraspSimConfig = GraspSimConfig()
    workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "categories", tuple(normalize_category(c) for c in self.categories))
        object.__setattr__(self, "heldout_categories", tuple(normalize_category(c) for c in self.heldout_categories))
        for name in ("placements", "attempts_per_placement", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"GenerateConfig.{name}: expected >= 1, found {getattr(self, name)}")
        if self.categories and self.instances_per_category < 3:
            raise ValueError(
                "GenerateConfig.instances_per_category: expected >= 3 (one test, one validation, at least one train "
                f"instance per category), found {self.instances_per_category}"
            )
        if self.heldout_instances_per_category < 0:
            raise ValueError(
                f"GenerateConfig.heldout_instances_per_category: expected >= 0, found {self.heldout_instances_per_category}"
            )
        for name in ("on_object_fraction", "aligned_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GenerateConfig.{name}: expected 0..1, found {getattr(self, name)}")
        if not 16 <= self.patch_size <= self.sim.image_size:
            raise ValueError(
                f"GenerateConfig.patch_size: expected 16..{self.sim.image_size} px (the image size), found {self.patch_size}"
            )
        overlap = set(self.categories) & set(self.heldout_categories)
        if overlap:
            raise ValueError(f"GenerateConfig: categories {sorted(overlap)} are both training and held-out categories")

    def fingerprint(self) -> dict:
        """The settings that decide the output bytes (not where it goes or how many workers)."""
        return settings_fingerprint(self, GENERATOR_VERSION)


@dataclass(frozen=True)
class Job:
    category: str
    index: int
    placement: int
    split: str

    @property
    def instance(self) -> str:
        return f"{self.category}_{self.index:04d}"

    @property
    def name(self) -> str:
        return f"{self.instance}_p{self.placement}"


def _seed(seed: int, category: str, *numbers: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(category.encode()), *numbers])


def instance_splits(seed: int, category: str, count: int) -> list[str]:
    """Split of each instance of a training category: one Test, one Validation, the rest Train (seeded)."""
    order = np.random.default_rng(_seed(seed, category, 999_999)).permutation(count)
    splits = ["Train"] * count
    splits[int(order[0])] = "Test"
    splits[int(order[1])] = "Validation"
    return splits


def plan_jobs(config: GenerateConfig) -> list[Job]:
    jobs = []
    for category in config.categories:
        for i, split in enumerate(instance_splits(config.seed, category, config.instances_per_category)):
            jobs += [Job(category, i, p, split) for p in range(config.placements)]
    for category in config.heldout_categories:
        for i in range(config.heldout_instances_per_category):
            jobs += [Job(category, i, p, "TestHeldout") for p in range(config.placements)]
    return jobs


def across_angle(mask: np.ndarray, x: float, y: float, radius: int) -> float:
    """Image angle (radians) across the mask's long axis within ``radius`` pixels of (x, y): a handle's narrow way."""
    h, w = mask.shape
    x0, x1 = max(int(x) - radius, 0), min(int(x) + radius + 1, w)
    y0, y1 = max(int(y) - radius, 0), min(int(y) + radius + 1, h)
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    if len(xs) < 3:
        return 0.0
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    _, vectors = np.linalg.eigh(cov)
    dx, dy = vectors[:, 0]  # the minor axis, in pixels (y down)
    return float(math.atan2(-dy, dx) % math.pi)


def sample_candidates(
    mask: np.ndarray,
    rng: np.random.Generator,
    count: int,
    on_object_fraction: float,
    margin: int,
    spread: int,
    aligned_fraction: float = 0.0,
    aligned_noise: float = 20.0,
) -> list[tuple[float, float, float, bool]]:
    """``count`` grasps (x, y, angle, on_object): pixels on the mask, and around it within ``spread`` pixels.

    Random angles over 180 degrees succeed rarely on long thin tools, so a
    share ``aligned_fraction`` of the on-object grasps close across the mask's
    local long axis (plus Gaussian noise of ``aligned_noise`` degrees): a
    sampler's bias only, the label still comes from the physics. Positions stay
    ``margin`` pixels inside the image so the patch never leaves it.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("sample_candidates: the object mask is empty (the object left the camera's view)")
    lo_x, hi_x = max(margin, xs.min() - spread), min(w - 1 - margin, xs.max() + spread)
    lo_y, hi_y = max(margin, ys.min() - spread), min(h - 1 - margin, ys.max() + spread)
    out = []
    for _ in range(count):
        if rng.random() < on_object_fraction:
            k = int(rng.integers(len(xs)))
            x = float(np.clip(xs[k] + rng.random(), margin, w - 1 - margin))
            y = float(np.clip(ys[k] + rng.random(), margin, h - 1 - margin))
            if rng.random() < aligned_fraction:
                angle = across_angle(mask, x, y, spread // 3) + math.radians(rng.normal(0.0, aligned_noise))
                out.append((x, y, float(angle % math.pi), bool(mask[min(int(y), h - 1), min(int(x), w - 1)])))
                continue
        else:
            x, y = float(rng.uniform(lo_x, hi_x + 1)), float(rng.uniform(lo_y, hi_y + 1))
        angle = float(rng.uniform(0.0, math.pi))
        on = bool(mask[min(int(y), h - 1), min(int(x), w - 1)])
        out.append((x, y, angle, on))
    return out


def _png(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode a {image.shape} image as PNG")
    return buf.tobytes()


def record_path(out: Path, job: Job) -> Path:
    return out / "scenes" / job.category / f"{job.name}.json"


def run_job(job: Job, config: GenerateConfig) -> dict:
    """Build, settle, render and grasp one placement; write its images and record; return the record."""
    start, cpu = time.perf_counter(), time.process_time()
    obj = build_object(job.category, np.random.default_rng(_seed(config.seed, job.category, job.index)))
    rng = np.random.default_rng(_seed(config.seed, job.category, job.index, job.placement + 1))
    scene = GraspScene(obj, rng, config.sim)
    built = time.perf_counter()
    view = scene.render()
    rendered = time.perf_counter()
    sim = config.sim
    spread = int(round(sim.max_opening / sim.metres_per_pixel))
    candidates = sample_candidates(
        view.mask,
        rng,
        config.attempts_per_placement,
        config.on_object_fraction,
        margin=config.patch_size // 2,
        spread=spread,
        aligned_fraction=config.aligned_fraction,
        aligned_noise=config.aligned_noise,
    )
    attempts = []
    for k, (x, y, angle, on) in enumerate(candidates):
        surface, clearance = scene.grasp_heights(view.height, x, y, angle)
        outcome = scene.attempt(x, y, angle, surface, clearance)
        attempts.append(
            {
                "attempt": k,
                "x": round(x, 3),
                "y": round(y, 3),
                "angle": round(angle, 6),
                "angle_bin": angle_to_bin(angle),
                "on_object": on,
                "surface": round(surface, 5),
                "clearance": round(clearance, 5),
                "success": outcome.success,
                "rise": round(outcome.rise, 5),
                "object_clearance": round(outcome.clearance, 5),
                "touched": outcome.touched,
                "diverged": outcome.diverged,
                "tip_height": round(outcome.tip_height, 5),
                "opening": round(outcome.opening, 5),
            }
        )
    simulated = time.perf_counter()
    folder = config.out / "scenes" / job.category
    write_bytes_atomic(folder / f"{job.name}.png", _png(view.rgb))
    write_bytes_atomic(folder / f"{job.name}_mask.png", _png(view.mask.astype(np.uint8) * 255))
    record = {
        "settings": config.fingerprint(),
        "name": job.name,
        "category": job.category,
        "instance": job.instance,
        "index": job.index,
        "placement": job.placement,
        "split": job.split,
        "mass": round(scene.mass, 5),
        "object_position": [round(float(v), 5) for v in scene.object_position],
        "yaw": round(scene.yaw, 6),
        "settled_speed": scene.settled_speed,
        "image": f"scenes/{job.category}/{job.name}.png",
        "mask": f"scenes/{job.category}/{job.name}_mask.png",
        "attempts": attempts,
        "seconds": round(time.perf_counter() - start, 4),
        "cpu_seconds": round(
            time.process_time() - cpu, 4
        ),  # this process's CPU time: what a loaded machine does not inflate
        # wall seconds per stage (differ between runs; everything else in the record does not)
        "stage_seconds": {
            "build_and_settle": round(built - start, 4),
            "render": round(rendered - built, 4),
            "attempts": round(simulated - rendered, 4),
            "write": round(time.perf_counter() - simulated, 4),
        },
    }
    write_json_atomic(record_path(config.out, job), record, indent=1)
    return record


def load_record(out: Path, job: Job, config: GenerateConfig) -> dict | None:
    """The placement's record if it is complete and was made with these settings, else None."""
    path = record_path(out, job)
    record = read_record(path)
    if record is None:
        return None
    if record.get("settings") != json.loads(json.dumps(config.fingerprint())):
        raise ValueError(
            f"{path}: made with other settings than this run's (seed, counts, simulator); "
            f"use another --out or delete {out / 'scenes'}"
        )
    if not all((out / record[k]).is_file() for k in ("image", "mask")):
        return None
    return record


def _worker(job: Job, config: GenerateConfig) -> tuple[str, int, dict[str, float], float]:
    import mujoco

    # MuJoCo's default handler appends to MUJOCO_LOG.TXT in the working directory; each attempt records "diverged"
    mujoco.set_mju_user_warning(lambda message: LOG.debug("mujoco: %s", message))
    record = run_job(job, config)
    return job.name, len(record["attempts"]), record["stage_seconds"], record["cpu_seconds"]


def _balanced(rows: list[dict], rng: np.random.Generator) -> set[str]:
    """Patch names of a class-balanced subset (all of the smaller class, as many of the larger, seeded)."""
    pos = [r["patch"] for r in rows if r["success"]]
    neg = [r["patch"] for r in rows if not r["success"]]
    n = min(len(pos), len(neg))
    keep = set()
    for group in (pos, neg):
        keep.update(group[i] for i in sorted(rng.choice(len(group), n, replace=False)))
    return keep


def export_splits(config: GenerateConfig, records: list[dict]) -> list[dict]:
    """Write every split folder in the Pinto-Gupta layout and attempts.csv; returns the attempt rows."""
    out = config.out
    rows: list[dict] = []
    images: dict[str, np.ndarray] = {}
    for record in records:
        image = cv2.cvtColor(cv2.imread(str(out / record["image"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        for a in record["attempts"]:
            name = f"{record['name']}_a{a['attempt']:02d}.png"
            images[name] = crop_patch(image, a["x"], a["y"], config.patch_size)
            rows.append(
                {
                    "patch": name,
                    "split": record["split"],
                    "category": record["category"],
                    "instance": record["instance"],
                    "placement": record["placement"],
                    **a,
                }
            )
    for split in SPLITS + ("TestHeldout",):
        chosen = [r for r in rows if r["split"] == split]
        if not chosen:
            continue
        keep = _balanced(chosen, np.random.default_rng(_seed(config.seed, split)))
        for r in chosen:
            r["in_split_folder"] = r["patch"] in keep
        kept = [r for r in chosen if r["patch"] in keep]
        write_split(out / split, [(r["patch"], images[r["patch"]], r["angle"], r["success"]) for r in kept])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ATTEMPT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                **r,
                "patch": f"{r['split']}/{'positive' if r['success'] else 'negative'}/Images/{r['patch']}"
                if r.get("in_split_folder")
                else "",
            }
        )
    write_text_atomic(out / "attempts.csv", buffer.getvalue())
    return rows


def _counts(rows: list[dict]) -> dict:
    counts: dict = {}
    for split in sorted({r["split"] for r in rows}):
        chosen = [r for r in rows if r["split"] == split]
        kept = [r for r in chosen if r.get("in_split_folder")]
        counts[split] = {
            "attempts": len(chosen),
            "positive_rate": round(sum(r["success"] for r in chosen) / len(chosen), 4),
            "positive_rate_on_object": round(
                sum(r["success"] for r in chosen if r["on_object"]) / max(1, sum(r["on_object"] for r in chosen)), 4
            ),
            "in_folder": len(kept),
            "in_folder_positive": sum(r["success"] for r in kept),
            "instances": len({r["instance"] for r in chosen}),
        }
    by_category = {}
    for category in sorted({r["category"] for r in rows}):
        chosen = [r for r in rows if r["category"] == category]
        by_category[category] = round(sum(r["success"] for r in chosen) / len(chosen), 3)
    return {"splits": counts, "positive_rate_by_category": by_category}


def generate_dataset(config: GenerateConfig, progress: bool = True) -> dict:
    """Generate (or finish) the dataset described by ``config``; returns the manifest."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    with log_to_file(LOG, out / "generate.log"):
        start = time.perf_counter()
        LOG.info("funk_grasp.generate %s: %s", GENERATOR_VERSION, json.dumps(config.fingerprint(), sort_keys=True))
        jobs = plan_jobs(config)
        pending = [j for j in jobs if load_record(out, j, config) is None]
        LOG.info("%d placements planned, %d already done, %d to run", len(jobs), len(jobs) - len(pending), len(pending))
        bar = tqdm(
            total=len(pending) * config.attempts_per_placement, unit="grasp", desc="grasps", disable=not progress
        )
        attempts_done = 0
        stages: Counter = Counter()
        cpu_total = 0.0
        for name, n, seconds, cpu in run_jobs(_worker, pending, config, workers=config.workers):
            attempts_done += n
            stages.update(seconds)
            cpu_total += cpu
            bar.update(n)
            LOG.info("wrote %s (%d attempts, %.2f s)", name, n, sum(seconds.values()))
        bar.close()
        generated_s = time.perf_counter() - start
        records = [load_record(out, j, config) for j in jobs]
        missing = [j.name for j, r in zip(jobs, records) if r is None]
        if missing:
            raise RuntimeError(f"{out}: placements {missing[:5]} have no complete record after generation")
        rows = export_splits(config, records)
        manifest = {
            "generator": "funk_grasp.generate",
            "version": GENERATOR_VERSION,
            "seed": config.seed,
            "settings": config.fingerprint(),
            "angle_bins": ANGLE_BINS,
            "counts": _counts(rows),
            "run": {
                "workers": config.workers,
                "placements_run": len(pending),
                "placements_resumed": len(jobs) - len(pending),
                "attempts_run": attempts_done,
                "generation_seconds": round(generated_s, 3),
                "attempts_per_second": round(attempts_done / generated_s, 2) if attempts_done else None,
                "stage_seconds": {k: round(v, 3) for k, v in sorted(stages.items())},
                "cpu_seconds": round(cpu_total, 3),
                "attempts_per_cpu_second": round(attempts_done / cpu_total, 2) if cpu_total else None,
                "total_seconds": round(time.perf_counter() - start, 3),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": platform.node(),
            },
        }
        write_json_atomic(out / "manifest.json", manifest, indent=1, sort_keys=True)
        LOG.info("done: %d attempts (%d new) in %.1f s", len(rows), attempts_done, time.perf_counter() - start)
        return manifest


def build_parser() -> argparse.ArgumentParser:
    d = GenerateConfig()
    p = argparse.ArgumentParser(prog="python -m funk_grasp.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument(
        "--attempts",
        type=int,
        default=None,
        help="total attempts wanted over the training categories; sets --instances-per-category "
        f"(default {d.instances_per_category} x {d.placements} placements x {d.attempts_per_placement})",
    )
    p.add_argument("--instances-per-category", type=int, default=d.instances_per_category)
    p.add_argument("--heldout-instances-per-category", type=int, default=d.heldout_instances_per_category)
    p.add_argument("--placements", type=int, default=d.placements)
    p.add_argument("--attempts-per-placement", type=int, default=d.attempts_per_placement)
    p.add_argument("--on-object-fraction", type=float, default=d.on_object_fraction)
    p.add_argument("--aligned-fraction", type=float, default=d.aligned_fraction)
    p.add_argument("--patch-size", type=int, default=d.patch_size)
    p.add_argument(
        "--categories",
        nargs="*",
        default=list(d.categories),
        help="training categories (none: only the held-out categories, for a larger TestHeldout)",
    )
    p.add_argument("--heldout-categories", nargs="*", default=list(d.heldout_categories))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    instances = args.instances_per_category
    if args.attempts is not None:
        if args.attempts < 1:
            raise ValueError(f"--attempts: expected >= 1, found {args.attempts}")
        per_instance = args.placements * args.attempts_per_placement * max(1, len(args.categories))
        instances = max(3, math.ceil(args.attempts / per_instance))
    return GenerateConfig(
        out=args.out,
        instances_per_category=instances,
        heldout_instances_per_category=args.heldout_instances_per_category,
        placements=args.placements,
        attempts_per_placement=args.attempts_per_placement,
        on_object_fraction=args.on_object_fraction,
        aligned_fraction=args.aligned_fraction,
        patch_size=args.patch_size,
        categories=tuple(args.categories),
        heldout_categories=tuple(args.heldout_categories),
        seed=args.seed,
        workers=args.workers,
    )


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manifest = generate_dataset(config_from_args(args), progress=not args.no_progress)
    splits = manifest["counts"]["splits"]
    for split, c in splits.items():
        print(
            f"{split}: {c['attempts']} attempts, {100 * c['positive_rate']:.1f}% successful, {c['in_folder']} patches in {args.out / split}"
        )
    print(
        f"{manifest['run']['attempts_per_second']} attempts/s with {args.workers} worker(s); manifest: {args.out / 'manifest.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
