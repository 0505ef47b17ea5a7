"""The synthetic FunKPoint-style dataset generator (``python -m funk_perception.data.synth``).

For every category it builds ``instances_per_category`` procedural object
instances, renders ``views_per_instance`` random views of each (RGB, depth,
object mask) and writes one CSV row per (image, task) with the task's five
keypoints and their visibility. Training categories go to
``annotations.csv`` (role = the instance's split, train or test, by instance);
the five held-out categories (docs/DESIGN.md, "Few-shot classification") go to ``heldout.csv`` (role
test). ``manifest.json`` records the generator version, seed, settings, counts
and timing. ``--scene FIELD=VALUE`` (repeatable) changes one
:class:`~funk_perception.data.scene.SceneConfig` field from the version's
defaults, for experiments on the renders' look; the change is part of the
settings fingerprint, so such a dataset never mixes with a default one.

Layout under ``--out``::

    images/<category>/<instance>_v<k>.jpg    RGB (JPEG q95, or PNG with --image-format png)
    depth/<category>/<instance>_v<k>.png     uint16 millimetres along the optical axis, 0 = no surface
    masks/<category>/<instance>_v<k>.png     uint8 255 = object
    records/<category>/<instance>.json       everything known about the instance (camera, pose, keypoints)
    annotations.csv, heldout.csv, manifest.json, synth.log

Determinism and resuming: every instance draws from its own seed
``(seed, crc32(category), index)``, so its bytes do not depend on which other
instances exist, on the worker count or on the order they run. Every file is
written to a temp file then ``os.replace``d, and an instance's record is
written last; a rerun skips instances whose record and files exist and
rebuilds the CSVs, so a killed run resumes where it stopped.

The module imports :mod:`funk_perception.offscreen_gl` first (MuJoCo over EGL,
no torch in the workers); workers run through :func:`funk_perception.jobs.run_jobs`.
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import argparse
import dataclasses
import json
import logging
import os
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

from funk_perception.atomic import write_bytes_atomic
from funk_perception.cli import command
from funk_perception.data.annotations import Annotation, write_annotations
from funk_perception.data.objects import CATEGORY_BUILDERS, PLACEMENTS, build_object
from funk_perception.data.scene import SceneConfig, render_instance
from funk_perception.jobs import log_to_file, read_record, run_jobs, settings_fingerprint
from funk_perception.tasks import CATEGORIES, HELDOUT_CATEGORIES, normalize_category, tasks_for_category

GENERATOR_VERSION = "1.3.0"  # 1.3.0: FunKPoint numbering of p2/p3 on 5 tasks (objects.FUNKPOINT_ORDER); 1.2.0: object-box framing, side views, plain backdrops, shinier materials (1.1.0: CC0 photos only)
LOG = logging.getLogger("funk_perception.data.synth")
EXTRA_COLUMNS: tuple[str, ...] = ("split", "view_id", "image_width", "image_height", "depth_path", "mask_path")
TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings. Defaults: 20 x 24 instances x 6 views = 2,880 images, ~7,000 (image, task) rows."""

    out: Path = Path("datasets/synth")
    instances_per_category: int = 24
    views_per_instance: int = 6
    size: int = 224
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    heldout_instances_per_category: int = (
        4  # x views = images per held-out class (the paper's few-shot protocol uses 20)
    )
    test_fraction: float = 0.2
    table: bool = True  # False: never a table, the object floats over a 2D background
    image_format: str = "jpg"  # "jpg" (quality 95) or "png"
    workers: int = 1
    #: SceneConfig fields to change from the version's defaults, as (name, value) pairs: for experiments on
    #: the renders' look without a new generator version (they are part of the fingerprint and the manifest)
    scene: tuple[tuple[str, object], ...] = ()
    #: where the middle points of a chain go (objects.base.PLACEMENTS); the images do not depend on it
    placement: str = "builder"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        scene = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in dict(self.scene).items())
        object.__setattr__(self, "scene", scene)
        allowed = sorted(f.name for f in dataclasses.fields(SceneConfig) if f.name not in ("width", "height"))
        unknown = [k for k, _ in scene if k not in allowed]
        if unknown:
            raise ValueError(f"SynthConfig.scene: unknown SceneConfig fields {unknown}; expected some of {allowed}")
        if any(k == "table_probability" for k, _ in scene) and not self.table:
            raise ValueError("SynthConfig.scene: table_probability conflicts with table=False (--no-table)")
        self.scene_config()  # SceneConfig checks the values
        object.__setattr__(self, "categories", tuple(normalize_category(c) for c in self.categories))
        for name in ("instances_per_category", "views_per_instance"):
            if getattr(self, name) < 1:
                raise ValueError(f"SynthConfig.{name}: expected >= 1, found {getattr(self, name)}")
        if self.heldout_instances_per_category < 0:
            raise ValueError(
                f"SynthConfig.heldout_instances_per_category: expected >= 0, found {self.heldout_instances_per_category}"
            )
        if not 16 <= self.size <= 4096:
            raise ValueError(f"SynthConfig.size: expected 16..4096 px, found {self.size}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"SynthConfig.test_fraction: expected 0 <= f < 1, found {self.test_fraction}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"SynthConfig.image_format: expected 'jpg' or 'png', found {self.image_format!r}")
        if self.workers < 1:
            raise ValueError(f"SynthConfig.workers: expected >= 1, found {self.workers}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"SynthConfig.placement: expected one of {PLACEMENTS}, found {self.placement!r}")
        heldout = [c for c in self.categories if c in HELDOUT_CATEGORIES]
        if heldout:
            raise ValueError(
                f"SynthConfig.categories: {heldout} are held-out categories; they are generated by "
                "heldout_instances_per_category into heldout.csv"
            )
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"SynthConfig.categories: expected each category once, found {list(self.categories)}")

    def fingerprint(self) -> dict:
        """The settings that decide the output bytes (not where it goes or how many workers)."""
        d = settings_fingerprint(self, GENERATOR_VERSION)
        d.pop("scene")
        if self.scene:  # absent when empty, so datasets made before the option keep their fingerprint
            d["scene"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.scene}
        if d["placement"] == PLACEMENTS[0]:  # likewise
            d.pop("placement")
        return d

    def scene_config(self) -> SceneConfig:
        """The scene randomisation of every view: the version's defaults, ``table`` and ``scene`` applied."""
        base = SceneConfig(width=self.size, height=self.size, table_probability=0.65 if self.table else 0.0)
        try:
            return dataclasses.replace(base, **dict(self.scene))
        except (TypeError, ValueError) as error:
            raise ValueError(f"SynthConfig.scene: {error}") from None


@dataclass(frozen=True)
class Job:
    """One object instance to generate."""

    category: str
    index: int
    split: str  # train | test | heldout

    @property
    def instance_id(self) -> str:
        return f"{self.category}_{self.index:04d}"

    @property
    def role(self) -> str:
        return "test" if self.split == "heldout" else self.split


def instance_seed(seed: int, category: str, index: int) -> np.random.SeedSequence:
    """The seed of one instance; crc32 of the name keeps it independent of category order."""
    return np.random.SeedSequence([int(seed), zlib.crc32(category.encode()), int(index)])


def split_instances(seed: int, category: str, count: int, test_fraction: float) -> list[str]:
    """Per instance index, "train" or "test": a seeded shuffle, round(test_fraction * count) test (>= 1 if count >= 2)."""
    n_test = int(round(test_fraction * count))
    if test_fraction > 0 and count >= 2:
        n_test = min(max(n_test, 1), count - 1)
    order = np.random.default_rng(
        np.random.SeedSequence([int(seed), zlib.crc32(category.encode()), 0x5B1]).generate_state(2)
    ).permutation(count)
    splits = ["train"] * count
    for i in order[:n_test]:
        splits[int(i)] = "test"
    return splits


def plan_jobs(config: SynthConfig) -> list[Job]:
    jobs: list[Job] = []
    for category in config.categories:
        splits = split_instances(config.seed, category, config.instances_per_category, config.test_fraction)
        jobs += [Job(category, i, s) for i, s in enumerate(splits)]
    if config.heldout_instances_per_category:
        for category in HELDOUT_CATEGORIES:
            jobs += [Job(category, i, "heldout") for i in range(config.heldout_instances_per_category)]
    return jobs


# ----------------------------------------------------------------------------- files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Atomic write whose temp file ``<name>.tmp-<random>`` matches ``_remove_stale_temps`` (no fsync: a
    killed process loses nothing that reached the page cache, and thousands of fsyncs slow the generator)."""
    write_bytes_atomic(path, data, fsync=False, temp_prefix=f"{path.name}{TEMP_MARK}", temp_suffix="")


def _encode(ext: str, image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres (0 = no surface; clipped at 65.535 m)."""
    return np.clip(np.round(np.asarray(depth, dtype=np.float64) * 1000.0), 0, 65535).astype(np.uint16)


def _rounded(a: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def generate_instance(job: Job, config: SynthConfig) -> tuple[dict, dict[str, float]]:
    """Render and write one instance's files and record; returns (record, stage seconds)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    object_seed, scene_seed = instance_seed(config.seed, job.category, job.index).spawn(2)
    obj = build_object(job.category, np.random.default_rng(object_seed), config.placement)
    wanted = tasks_for_category(job.category)
    missing = [t for t in wanted if t not in obj.keypoints]
    if missing:
        raise ValueError(
            f"{job.category}: the object builder gives no keypoints for tasks {missing} (expected {list(wanted)})"
        )
    timings["build_object"] = time.perf_counter() - t0
    views = render_instance(
        obj, config.views_per_instance, np.random.default_rng(scene_seed), config.scene_config(), timings=timings
    )

    out = config.out
    ext = ".jpg" if config.image_format == "jpg" else ".png"
    image_params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    record_views = []
    for k, view in enumerate(views):
        stem = f"{job.instance_id}_v{k}"
        rel = {
            "image": f"images/{job.category}/{stem}{ext}",
            "depth": f"depth/{job.category}/{stem}.png",
            "mask": f"masks/{job.category}/{stem}.png",
        }
        t1 = time.perf_counter()
        blobs = {
            "image": _encode(ext, cv2.cvtColor(view.rgb, cv2.COLOR_RGB2BGR), image_params),
            "depth": _encode(".png", depth_to_png16(view.depth), [cv2.IMWRITE_PNG_COMPRESSION, 1]),
            "mask": _encode(".png", view.mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1]),
        }
        t2 = time.perf_counter()
        for key, blob in blobs.items():
            atomic_write_bytes(out / rel[key], blob)
        timings["encode"] = timings.get("encode", 0.0) + (t2 - t1)
        timings["write"] = timings.get("write", 0.0) + (time.perf_counter() - t2)
        record_views.append(
            {
                "view_id": k,
                **rel,
                "width": config.size,
                "height": config.size,
                "camera": view.camera.to_dict(),
                "background": view.background,
                "has_table": view.has_table,
                "keypoints": {t: _rounded(view.keypoints[t]) for t in wanted},
                "visible": {t: [bool(v) for v in view.visible[t]] for t in wanted},
                "keypoint_depth": {t: _rounded(view.keypoint_depth[t], 5) for t in wanted},
                "object_pixels": int(view.mask.sum()),
            }
        )
    record = {
        "fingerprint": config.fingerprint(),
        "instance_id": job.instance_id,
        "category": job.category,
        "index": job.index,
        "split": job.split,
        "role": job.role,
        "tasks": list(wanted),
        "object_params": {k: round(float(v), 6) for k, v in sorted(obj.params.items())},
        "views": record_views,
    }
    atomic_write_bytes(record_path(out, job), json.dumps(record, indent=1, sort_keys=True).encode())
    return record, timings


def record_path(out: Path, job: Job) -> Path:
    return out / "records" / job.category / f"{job.instance_id}.json"


def load_record(out: Path, job: Job, config: SynthConfig) -> dict | None:
    """The finished record of ``job``, or None if it must be (re)generated.

    Raises ValueError if the record was made with other settings: mixing two
    datasets in one folder would silently break determinism.
    """
    path = record_path(out, job)
    record = read_record(path)
    if record is None:
        return None
    if record.get("fingerprint") != config.fingerprint():
        theirs, ours = record.get("fingerprint", {}), config.fingerprint()
        diff = {k: (theirs.get(k), ours.get(k)) for k in ours if theirs.get(k) != ours.get(k)}
        raise ValueError(
            f"{path}: this folder holds a dataset generated with other settings "
            f"(field: (found, requested) = {diff}); use a new --out or the same settings"
        )
    for view in record.get("views", []):
        if not all((out / view[key]).is_file() for key in ("image", "depth", "mask")):
            return None
    if len(record.get("views", [])) != config.views_per_instance:
        return None
    return record


def _worker(job: Job, config: SynthConfig) -> tuple[str, dict[str, float], int]:
    _, timings = generate_instance(job, config)
    return job.instance_id, timings, config.views_per_instance


def _remove_stale_temps(out: Path) -> int:
    removed = 0
    for sub in ("images", "depth", "masks", "records"):
        root = out / sub
        if root.is_dir():
            for path in root.rglob(f"*{TEMP_MARK}*"):
                path.unlink()
                removed += 1
    return removed


# ----------------------------------------------------------------------------- CSV + manifest


def annotations_from_record(out: Path, record: dict) -> list[Annotation]:
    rows: list[Annotation] = []
    root = out.resolve()
    for view in record["views"]:
        size = np.array([view["width"], view["height"]], dtype=np.float64)
        for task in record["tasks"]:
            keypoints = np.clip(np.asarray(view["keypoints"][task], dtype=np.float64) / size, 0.0, 1.0)
            rows.append(
                Annotation(
                    image_path=root / view["image"],
                    relative_path=view["image"],
                    task=task,
                    category=record["category"],
                    role=record["role"],
                    keypoints=keypoints,
                    visible=np.asarray(view["visible"][task], dtype=bool),
                    instance_id=record["instance_id"],
                    extras={
                        "split": record["split"],
                        "view_id": str(view["view_id"]),
                        "image_width": str(view["width"]),
                        "image_height": str(view["height"]),
                        "depth_path": view["depth"],
                        "mask_path": view["mask"],
                    },
                )
            )
    return rows


def _counts(records: list[dict]) -> dict:
    images_by_category: Counter = Counter()
    rows_by_task: Counter = Counter()
    rows_by_pair: Counter = Counter()
    images_by_split: Counter = Counter()
    rows_by_split: Counter = Counter()
    instances_by_split: Counter = Counter()
    visible = total = 0
    for r in records:
        n = len(r["views"])
        images_by_category[r["category"]] += n
        images_by_split[r["split"]] += n
        instances_by_split[r["split"]] += 1
        for t in r["tasks"]:
            rows_by_task[t] += n
            rows_by_pair[f"{r['category']}/{t}"] += n
            rows_by_split[r["split"]] += n
            for v in r["views"]:
                visible += sum(v["visible"][t])
                total += len(v["visible"][t])
    return {
        "images": sum(images_by_category.values()),
        "rows": sum(rows_by_task.values()),
        "instances": len(records),
        "images_by_category": dict(sorted(images_by_category.items())),
        "rows_by_task": dict(sorted(rows_by_task.items())),
        "rows_by_category_task": dict(sorted(rows_by_pair.items())),
        "images_by_split": dict(sorted(images_by_split.items())),
        "rows_by_split": dict(sorted(rows_by_split.items())),
        "instances_by_split": dict(sorted(instances_by_split.items())),
        "visible_keypoint_fraction": round(visible / total, 4) if total else 0.0,
    }


# ----------------------------------------------------------------------------- driver


def _check_builders(config: SynthConfig) -> None:
    wanted = list(config.categories) + (list(HELDOUT_CATEGORIES) if config.heldout_instances_per_category else [])
    missing = [c for c in wanted if c not in CATEGORY_BUILDERS]
    if missing:
        raise ValueError(
            f"no procedural object builder for categories {missing} "
            f"(funk_perception.data.objects.CATEGORY_BUILDERS has {sorted(CATEGORY_BUILDERS)}); "
            "refusing to skip them: pass --categories to generate a subset"
        )


def generate_dataset(config: SynthConfig, progress: bool = True) -> dict:
    """Generate (or finish) the dataset described by ``config``; returns the manifest."""
    _check_builders(config)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    with log_to_file(LOG, out / "synth.log"):
        start = time.perf_counter()
        LOG.info("synth %s: %s", GENERATOR_VERSION, json.dumps(config.fingerprint(), sort_keys=True))
        stale = _remove_stale_temps(out)
        if stale:
            LOG.info("removed %d temp files left by an interrupted run", stale)
        jobs = plan_jobs(config)
        pending = [j for j in jobs if load_record(out, j, config) is None]
        LOG.info(
            "%d instances planned, %d already done, %d to generate", len(jobs), len(jobs) - len(pending), len(pending)
        )
        stage: Counter = Counter()
        images_done = 0
        bar = tqdm(total=len(pending) * config.views_per_instance, unit="img", desc="synth", disable=not progress)
        for instance_id, timings, n in run_jobs(_worker, pending, config, workers=config.workers):
            stage.update(timings)
            images_done += n
            bar.update(n)
            LOG.info("wrote %s", instance_id)
        bar.close()
        generated_s = time.perf_counter() - start

        records = [load_record(out, j, config) for j in jobs]
        if any(r is None for r in records):
            lost = [j.instance_id for j, r in zip(jobs, records) if r is None]
            raise RuntimeError(f"{out}: instances {lost[:5]} have no complete record after generation")
        train_rows = [a for r in records if r["split"] != "heldout" for a in annotations_from_record(out, r)]
        heldout_rows = [a for r in records if r["split"] == "heldout" for a in annotations_from_record(out, r)]
        write_annotations(out / "annotations.csv", train_rows, EXTRA_COLUMNS)
        if heldout_rows:
            write_annotations(out / "heldout.csv", heldout_rows, EXTRA_COLUMNS)
        elapsed = time.perf_counter() - start
        manifest = {
            "generator": "funk_perception.data.synth",
            "version": GENERATOR_VERSION,
            "seed": config.seed,
            "settings": config.fingerprint(),
            "files": {"annotations": "annotations.csv", "heldout": "heldout.csv" if heldout_rows else None},
            "counts": {
                "train_categories": _counts([r for r in records if r["split"] != "heldout"]),
                "heldout_categories": _counts([r for r in records if r["split"] == "heldout"]),
            },
            # the only part that differs between two runs with the same settings
            "run": {
                "workers": config.workers,
                "instances_generated": len(pending),
                "instances_resumed": len(jobs) - len(pending),
                "images_generated": images_done,
                "generation_seconds": round(generated_s, 3),
                "total_seconds": round(elapsed, 3),
                "images_per_second": round(images_done / generated_s, 2) if images_done else None,
                "stage_seconds": {k: round(v, 3) for k, v in sorted(stage.items())},
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": platform.node(),
                "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("synth.py") else None,
            },
        }
        atomic_write_bytes(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
        LOG.info(
            "done: %d images (%d new) in %.1f s",
            manifest["counts"]["train_categories"]["images"] + manifest["counts"]["heldout_categories"]["images"],
            images_done,
            elapsed,
        )
        return manifest


def build_parser() -> argparse.ArgumentParser:
    d = SynthConfig()
    p = argparse.ArgumentParser(
        prog="python -m funk_perception.data.synth",
        description="Render a synthetic FunKPoint-style dataset (images, depth, masks, CSV, manifest).",
        epilog="Paper-sized: --instances-per-category 100 --views-per-instance 1 (or more views for more images).",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created; a rerun resumes)")
    p.add_argument("--instances-per-category", type=int, default=d.instances_per_category)
    p.add_argument("--views-per-instance", type=int, default=d.views_per_instance)
    p.add_argument("--size", type=int, default=d.size, help="square image size in pixels")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--categories", nargs="+", default=list(d.categories), help="training categories (default: all 20)")
    p.add_argument(
        "--heldout-instances-per-category",
        type=int,
        default=d.heldout_instances_per_category,
        help="instances of each held-out category (0: none)",
    )
    p.add_argument(
        "--test-fraction", type=float, default=d.test_fraction, help="fraction of instances in the test split"
    )
    p.add_argument("--no-table", action="store_true", help="never render a table plane")
    p.add_argument("--image-format", choices=("jpg", "png"), default=d.image_format)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--scene",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one SceneConfig field, VALUE in JSON (e.g. plain_material_probability=0.6, "
        "fill_range=[0.65,0.98]); repeatable, recorded in the manifest",
    )
    p.add_argument(
        "--placement",
        choices=PLACEMENTS,
        default=d.placement,
        help="where p2-p4 go on mix, poke and pull_out_nail: each builder's own reading of the keypoint meanings "
        "(builder) or where the real FunKPoint labels put them (funkpoint); the images are the same",
    )
    return p


def parse_scene(items: Sequence[str]) -> tuple[tuple[str, object], ...]:
    """``FIELD=VALUE`` strings (VALUE in JSON) -> SynthConfig.scene pairs."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--scene {item!r}: expected FIELD=VALUE")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--scene {item!r}: expected a JSON value after '=', found {value!r}") from None
        pairs.append((name.strip(), parsed))
    return tuple(pairs)


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SynthConfig(
            out=args.out,
            instances_per_category=args.instances_per_category,
            views_per_instance=args.views_per_instance,
            size=args.size,
            seed=args.seed,
            categories=tuple(args.categories),
            heldout_instances_per_category=args.heldout_instances_per_category,
            test_fraction=args.test_fraction,
            table=not args.no_table,
            image_format=args.image_format,
            workers=args.workers,
            scene=parse_scene(args.scene),
            placement=args.placement,
        )
        manifest = generate_dataset(config, progress=not args.no_progress)
    except ValueError as error:
        print(f"synth: error: {error}", file=sys.stderr)
        return 2
    c = manifest["counts"]
    rate = manifest["run"]["images_per_second"]
    print(
        f"{config.out}: {c['train_categories']['images']} images / {c['train_categories']['rows']} rows "
        f"(annotations.csv), {c['heldout_categories']['images']} held-out images (heldout.csv); "
        + (f"{rate} images/s" if rate is not None else "all already rendered (nothing new)")
    )
    return 0


if __name__ == "__main__":
    # Run the importable module's main so spawned workers unpickle funk_perception.data.synth.Job, not __main__.Job.
    from funk_perception.data import synth as _synth

    sys.exit(_synth.main())
