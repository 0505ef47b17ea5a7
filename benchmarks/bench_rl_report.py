"""What the RL benchmarks share: writing their JSON and markdown table (atomically) and printing the table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from funk_perception.atomic import write_text_atomic


def write_report(out: Path, stem: str, results: dict, markdown: Callable[[dict], str]) -> int:
    """``out/<stem>.json`` and ``out/<stem>.md``; returns 0, the CLI's exit code."""
    write_text_atomic(out / f"{stem}.json", json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    write_text_atomic(out / f"{stem}.md", text)
    print(text)
    return 0
