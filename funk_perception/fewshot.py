"""Moved: ``python scripts/fewshot.py`` (:mod:`funk_perception.moved`)."""

from funk_perception.moved import fewshot as main

if __name__ == "__main__":
    raise SystemExit(main())
