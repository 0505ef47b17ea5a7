"""The shared vocabulary of funk: tasks, object categories and keypoint names.

Every other module takes its names from here, so a task is spelled ``pour`` and
a category ``frying_pan`` everywhere (files, CLIs, checkpoints, docs). Names as
they appear in public FunKPoint annotations (``Mash/Pound``, ``Lift Something``,
``scrub brush``) are mapped onto these by :func:`normalize_task` and
:func:`normalize_category`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

#: The 10 tasks of FunKPoint, in a fixed order (the index is the task id).
TASKS: tuple[str, ...] = (
    "pour",
    "scoop",
    "mix",
    "mash_pound",
    "lift_something",
    "scrape",
    "poke",
    "brush_dust",
    "pull_out_nail",
    "flip",
)

#: How each task is written in FunKPoint-style CSVs (``action`` column).
TASK_DISPLAY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "pour": "Pour",
        "scoop": "Scoop",
        "mix": "Mix",
        "mash_pound": "Mash/Pound",
        "lift_something": "Lift Something",
        "scrape": "Scrape",
        "poke": "Poke",
        "brush_dust": "Brush/Dust",
        "pull_out_nail": "Pull out a nail",
        "flip": "Flip",
    }
)

#: Paper Table 1: the object categories labelled for each task.
TASK_CATEGORIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "pour": ("bottle", "frying_pan", "watering_can", "cup", "dustpan"),
        "scoop": ("spoon", "basket", "cup", "frying_pan", "shoe"),
        "mix": ("spoon", "tablefork", "spatula", "tongs", "whisk"),
        "mash_pound": ("bottle", "frying_pan", "hammer", "ladle", "shoe"),
        "lift_something": ("ladle", "tablefork", "basket", "tongs", "dustpan"),
        "scrape": ("scraper", "tablefork", "spatula", "trowel", "spoon"),
        "poke": ("scraper", "watering_can", "screwdriver", "trowel", "scissors"),
        "brush_dust": ("whisk", "scrub_brush", "toothbrush", "scraper", "spoon"),
        "pull_out_nail": ("hammer", "ladle", "scissors", "frying_pan", "tablefork"),
        "flip": ("spoon", "tablefork", "spatula", "ladle", "tongs"),
    }
)

#: The 20 training categories, in a fixed order (the index is the category id).
CATEGORIES: tuple[str, ...] = (
    "bottle",
    "frying_pan",
    "watering_can",
    "cup",
    "dustpan",
    "spoon",
    "basket",
    "shoe",
    "tablefork",
    "spatula",
    "tongs",
    "whisk",
    "hammer",
    "ladle",
    "scraper",
    "trowel",
    "screwdriver",
    "scissors",
    "scrub_brush",
    "toothbrush",
)

#: Five manipulable categories never used in training (the few-shot benchmark,
#: docs/DESIGN.md, "Few-shot classification"). They are labelled for the tasks
#: they can plausibly perform so the same generator and loader serve them, and so
#: transfer to unseen categories can be measured.
HELDOUT_CATEGORIES: tuple[str, ...] = ("shovel", "water_jug", "coffee_mug", "wok", "letter_opener")

HELDOUT_TASKS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "shovel": ("scoop", "lift_something", "scrape"),
        "water_jug": ("pour",),
        "coffee_mug": ("pour", "scoop"),
        "wok": ("pour", "scoop", "mash_pound"),
        "letter_opener": ("poke", "scrape"),
    }
)

ALL_CATEGORIES: tuple[str, ...] = CATEGORIES + HELDOUT_CATEGORIES

#: Keypoint names; p1 is the working tip, p5 the far end of the grip (docs/DESIGN.md, "Keypoint meanings").
KEYPOINTS: tuple[str, ...] = ("p1", "p2", "p3", "p4", "p5")
NUM_KEYPOINTS = len(KEYPOINTS)

KEYPOINT_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "p1": "extreme working point (spout lip, tine tips, blade corner, hammer face, tip)",
        "p2": "on the working part",
        "p3": "on the working part, nearest to where it meets the grip",
        "p4": "the grip near the working part",
        "p5": "the far end of the grip",
    }
)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


_TASK_ALIASES: dict[str, str] = {_slug(t): t for t in TASKS}
_TASK_ALIASES.update({_slug(d): t for t, d in TASK_DISPLAY_NAMES.items()})
_TASK_ALIASES.update(
    {
        "mash": "mash_pound",
        "pound": "mash_pound",
        "lift": "lift_something",
        "brush": "brush_dust",
        "dust": "brush_dust",
        "pull_out_a_nail": "pull_out_nail",
        "pull_nail": "pull_out_nail",
    }
)

_CATEGORY_ALIASES: dict[str, str] = {_slug(c): c for c in ALL_CATEGORIES}
_CATEGORY_ALIASES.update(
    {
        "fork": "tablefork",
        "table_fork": "tablefork",
        "pan": "frying_pan",
        "fryingpan": "frying_pan",
        "wateringcan": "watering_can",
        "scrubbrush": "scrub_brush",
        "brush": "scrub_brush",
        "mug": "coffee_mug",
        "jug": "water_jug",
        "letteropener": "letter_opener",
    }
)


def normalize_task(name: str) -> str:
    """Map any accepted spelling of a task (``"Mash/Pound"``, ``"pour"``) to its canonical name.

    Raises ``ValueError`` naming the unknown value and the accepted names.
    """
    key = _slug(str(name))
    if key not in _TASK_ALIASES:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return _TASK_ALIASES[key]


def normalize_category(name: str) -> str:
    """Map any accepted spelling of a category (``"scrub brush"``, ``"frying_pan"``) to its canonical name."""
    key = _slug(str(name))
    if key not in _CATEGORY_ALIASES:
        raise ValueError(f"unknown object category {name!r}; expected one of {', '.join(ALL_CATEGORIES)}")
    return _CATEGORY_ALIASES[key]


def task_id(name: str) -> int:
    return TASKS.index(normalize_task(name))


def tasks_for_category(category: str) -> tuple[str, ...]:
    """The tasks an object category is labelled for (paper Table 1, or HELDOUT_TASKS)."""
    category = normalize_category(category)
    if category in HELDOUT_TASKS:
        return HELDOUT_TASKS[category]
    return tuple(t for t in TASKS if category in TASK_CATEGORIES[t])
