import pytest

from funk_perception import tasks


def test_paper_table_has_ten_tasks_of_five_categories():
    assert len(tasks.TASKS) == 10
    assert set(tasks.TASK_CATEGORIES) == set(tasks.TASKS)
    for task, cats in tasks.TASK_CATEGORIES.items():
        assert len(cats) == 5, task
        assert set(cats) <= set(tasks.CATEGORIES)


def test_twenty_categories_all_used_and_heldout_disjoint():
    used = {c for cats in tasks.TASK_CATEGORIES.values() for c in cats}
    assert used == set(tasks.CATEGORIES)
    assert len(tasks.CATEGORIES) == 20
    assert not set(tasks.HELDOUT_CATEGORIES) & set(tasks.CATEGORIES)
    assert set(tasks.HELDOUT_TASKS) == set(tasks.HELDOUT_CATEGORIES)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Mash/Pound", "mash_pound"),
        ("Lift Something", "lift_something"),
        ("Pull out a nail", "pull_out_nail"),
        ("Brush/Dust", "brush_dust"),
        ("pour", "pour"),
    ],
)
def test_real_annotation_task_names_normalise(raw, expected):
    assert tasks.normalize_task(raw) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("frying_pan", "frying_pan"),
        ("scrub brush", "scrub_brush"),
        ("Watering Can", "watering_can"),
        ("fork", "tablefork"),
    ],
)
def test_real_annotation_category_names_normalise(raw, expected):
    assert tasks.normalize_category(raw) == expected


def test_unknown_names_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown task 'juggle'.*pour"):
        tasks.normalize_task("juggle")
    with pytest.raises(ValueError, match="unknown object category 'banana'"):
        tasks.normalize_category("banana")


def test_display_names_round_trip():
    for t in tasks.TASKS:
        assert tasks.normalize_task(tasks.TASK_DISPLAY_NAMES[t]) == t


def test_tasks_for_category_matches_table():
    assert tasks.tasks_for_category("bottle") == ("pour", "mash_pound")
    assert len(tasks.tasks_for_category("spoon")) == 5
    assert tasks.tasks_for_category("wok") == tasks.HELDOUT_TASKS["wok"]
