"""What the benchmarks share: the header of a report (command, date, machine), and writing its JSON and markdown.

Imported as ``from common import ...``: a benchmark runs as ``python benchmarks/<name>.py``, so this folder is
first on ``sys.path``. Nothing here imports torch, nor MuJoCo at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from funk_perception.atomic import write_text_atomic


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line(argv: Sequence[str] | None = None) -> str:
    """How the report was made: ``python`` and ``argv`` (default ``sys.argv``), each shell-quoted."""
    return "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else argv))


def report_header(argv: Sequence[str] | None = None) -> dict[str, str]:
    """A report's first two fields: ``command`` (:func:`command_line`) and ``date`` (UTC, to the second)."""
    return {"command": command_line(argv), "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


def machine(**extra: Any) -> dict[str, Any]:
    """The machine a benchmark ran on: platform, processor and CPU count, ``extra``, then the load average now."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **extra,
        "load_average": list(os.getloadavg()),
    }


def renderer_machine(load_before: list[float], **versions: str) -> dict[str, Any]:
    """The machine of a MuJoCo data generator's benchmark: CPU, cores, the load average before the run, Python,
    MuJoCo, ``versions`` and the GL backend (the caller has imported :mod:`funk_perception.offscreen_gl`)."""
    import mujoco

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "python": platform.python_version(),
        "mujoco": mujoco.__version__,
        **versions,
        "gl": os.environ.get("MUJOCO_GL"),
    }


def timed_generations(
    generate: Callable[..., dict], config: Any, workers: Sequence[int], prefix: str
) -> Iterator[tuple[int, dict, float]]:
    """A data generator's runs, one per worker count, each into a new temporary folder: yields (workers, the
    manifest's ``run`` record, wall seconds of ``generate(config with that out and workers, progress=False)``)."""
    for w in workers:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            start = time.perf_counter()
            manifest = generate(dataclasses.replace(config, out=Path(tmp), workers=w), progress=False)
            wall = time.perf_counter() - start
        yield w, manifest["run"], wall


def stage_table(stage_ms: dict[str, float], notes: dict[str, str], per: str) -> list[str]:
    """Markdown rows of where a run's time goes, most first: stage, ms per ``per``, share of the total, what."""
    total = sum(stage_ms.values())
    lines = [f"| stage | ms / {per} | share | what |", "| --- | --- | --- | --- |"]
    for stage, ms in sorted(stage_ms.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {stage} | {ms} | {100 * ms / total:.0f} % | {notes.get(stage, '')} |")
    return lines


def write_report(out: Path, stem: str, results: dict, markdown: Callable[[dict], str], *, indent: int = 2) -> int:
    """``out/<stem>.json`` and ``out/<stem>.md`` (atomically), the table printed; returns 0, the CLI's exit code."""
    write_text_atomic(out / f"{stem}.json", json.dumps(results, indent=indent) + "\n")
    text = markdown(results)
    write_text_atomic(out / f"{stem}.md", text)
    print(text)
    return 0


def model_record(path: str | Path) -> dict[str, str]:
    """What a report says of the checkpoint it measured: its path and its sha256 (to match figures to files)."""
    return {"model": str(path), "model_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def report_main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    run: Callable[[argparse.Namespace], dict],
    markdown: Callable[[dict], str],
) -> int:
    """A report benchmark's ``main``: parse ``argv`` (default ``sys.argv[1:]``; kept as ``args.argv`` for the
    header's command), run, and write ``args.out`` (a path without suffix) as JSON and markdown."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    results = run(args)
    return write_report(args.out.parent, args.out.name, results, markdown)
