"""Moved: ``python scripts/ablation.py`` (:mod:`funk_perception.moved`)."""

from funk_perception.moved import ablation as main

if __name__ == "__main__":
    raise SystemExit(main())
