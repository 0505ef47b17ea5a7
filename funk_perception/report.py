"""Moved: ``python scripts/report.py`` (:mod:`funk_perception.moved`)."""

from funk_perception.moved import report as main

if __name__ == "__main__":
    raise SystemExit(main())
