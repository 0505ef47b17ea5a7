"""Commands that left the installed package: research runners now live in the repository's ``scripts/``
(docs/DESIGN.md, "One product path"). Their old names print where they went and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: old module -> the command that replaces it (run from a checkout of the repository)
MOVED = {
    "report": "python scripts/report.py",
    "ablation": "python scripts/ablation.py",
    "fewshot": "python scripts/fewshot.py",
    "classify": "python scripts/classify.py",
}


def moved(name: str, argv: Sequence[str] | None = None) -> int:
    """Say where ``python -m funk_perception.<name>`` went; exit code 2."""
    args = " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"error: python -m funk_perception.{name} moved out of the installed package (research code): run "
        f"{MOVED[name]} {args}".rstrip()
        + " from a checkout of the repository",
        file=sys.stderr,
    )
    return 2


def report(argv: Sequence[str] | None = None) -> int:
    return moved("report", argv)


def ablation(argv: Sequence[str] | None = None) -> int:
    return moved("ablation", argv)


def fewshot(argv: Sequence[str] | None = None) -> int:
    return moved("fewshot", argv)


def classify(argv: Sequence[str] | None = None) -> int:
    return moved("classify", argv)
