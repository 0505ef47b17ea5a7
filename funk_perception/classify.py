"""Moved: ``python scripts/classify.py`` (:mod:`funk_perception.moved`)."""

from funk_perception.moved import classify as main

if __name__ == "__main__":
    raise SystemExit(main())
