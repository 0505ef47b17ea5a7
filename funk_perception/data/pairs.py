"""Pairs of (image, task) annotations that share a task: training pairs and evaluation triplets.

Training (docs/DESIGN.md, "Training loss") contrasts the keypoints of two images labelled for
the same task; functional correspondence is most interesting across
categories, so :class:`PairSampler` controls the share of cross-category
pairs. Evaluation (docs/DESIGN.md, "Evaluation") uses fixed (reference, target, task)
triplets built by :func:`evaluation_pairs`. Two rows of the same object
instance (e.g. two rendered views) are never paired: that would reward
viewpoint matching rather than functional correspondence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from funk_perception.data.annotations import Annotation
from funk_perception.tasks import TASKS, normalize_category, normalize_task


@dataclass(frozen=True)
class Pair:
    """Two annotation indices sharing ``task``: keypoints of ``source`` are matched in ``target``."""

    source: int
    target: int
    task: str


@dataclass
class _TaskPool:
    """Rows of one task grouped by category, with integer instance codes for fast exclusion."""

    categories: list[str]
    rows: list[np.ndarray]  # per category: annotation indices
    instances: list[np.ndarray]  # per category: instance code of each row
    weights: np.ndarray  # per category, normalised to sum 1 (zero-weight categories dropped)
    same_ok: np.ndarray  # per category: holds at least two distinct instances


class PairSampler:
    """Seeded sampler of training pairs (same task, different instance).

    Each draw picks a task uniformly (among ``tasks`` when given), then with
    probability ``cross_category_fraction`` two different categories of that
    task, else one category with at least two instances; when the drawn kind
    is impossible for the task it falls back to the other kind. Categories are
    drawn in proportion to ``category_weights`` (missing categories weigh 1,
    weight 0 excludes a category), rows uniformly within a category.

    :meth:`sample` continues one seeded stream (successive calls give new
    pairs); each :meth:`__iter__` restarts the stream from the seed, so
    ``sample(n)`` on a fresh sampler equals the first n pairs of ``iter``.
    """

    def __init__(
        self,
        annotations: Sequence[Annotation],
        seed: int = 0,
        cross_category_fraction: float = 0.5,
        tasks: Sequence[str] | None = None,
        category_weights: Mapping[str, float] | None = None,
    ) -> None:
        if not 0.0 <= cross_category_fraction <= 1.0:
            raise ValueError(
                f"PairSampler: expected cross_category_fraction in [0, 1], found {cross_category_fraction}"
            )
        weights = {normalize_category(k): float(v) for k, v in (category_weights or {}).items()}
        negative = {k: v for k, v in weights.items() if not v >= 0.0}
        if negative:
            raise ValueError(f"PairSampler: expected category_weights >= 0, found {negative}")
        wanted = None if tasks is None else {normalize_task(t) for t in tasks}
        self.annotations = list(annotations)
        self.seed = seed
        self.cross_category_fraction = float(cross_category_fraction)

        instance_codes: dict[str, int] = {}
        grouped: dict[str, dict[str, list[int]]] = {}
        for index, annotation in enumerate(self.annotations):
            if wanted is not None and annotation.task not in wanted:
                continue
            if weights.get(annotation.category, 1.0) == 0.0:
                continue
            instance_codes.setdefault(annotation.instance_id, len(instance_codes))
            grouped.setdefault(annotation.task, {}).setdefault(annotation.category, []).append(index)

        self._pools: dict[str, _TaskPool] = {}
        for task in TASKS:
            if task not in grouped:
                continue
            categories = sorted(grouped[task])
            rows = [np.array(grouped[task][c], dtype=np.int64) for c in categories]
            instances = [
                np.array([instance_codes[self.annotations[i].instance_id] for i in r], dtype=np.int64) for r in rows
            ]
            same_ok = np.array([len(np.unique(codes)) >= 2 for codes in instances])
            # A pair needs two distinct instances somewhere in the task.
            if len(np.unique(np.concatenate(instances))) < 2:
                continue
            raw = np.array([weights.get(c, 1.0) for c in categories], dtype=np.float64)
            self._pools[task] = _TaskPool(categories, rows, instances, raw / raw.sum(), same_ok)
        self.tasks: list[str] = list(self._pools)
        if not self.tasks:
            raise ValueError(
                "PairSampler: no task has two distinct object instances to pair "
                f"({len(self.annotations)} annotations, tasks={sorted(wanted) if wanted else 'all'})"
            )
        self._rng = np.random.default_rng(seed)

    def _draw(self, rng: np.random.Generator) -> Pair:
        task = self.tasks[int(rng.integers(len(self.tasks)))]
        pool = self._pools[task]
        n_categories = len(pool.categories)
        cross = rng.random() < self.cross_category_fraction
        if cross and n_categories < 2:
            cross = False
        if not cross and not pool.same_ok.any():
            cross = True  # every category holds a single instance: only cross pairs exist
        if cross:
            first = int(rng.choice(n_categories, p=pool.weights))
            rest = np.delete(np.arange(n_categories), first)
            rest_weights = pool.weights[rest]  # zero-weight categories were dropped, so this sums > 0
            second = int(rng.choice(rest, p=rest_weights / rest_weights.sum()))
            position = int(rng.integers(len(pool.rows[first])))
            source = pool.rows[first][position]
            source_instance = pool.instances[first][position]
            # Instance ids are unique per category in validated CSVs; the mask still guards
            # annotations built in code that reuse an id across categories.
            candidates = pool.rows[second][pool.instances[second] != source_instance]
            if len(candidates) == 0:
                candidates = pool.rows[first][pool.instances[first] != source_instance]
        else:
            same_weights = np.where(pool.same_ok, pool.weights, 0.0)
            first = int(rng.choice(n_categories, p=same_weights / same_weights.sum()))
            position = int(rng.integers(len(pool.rows[first])))
            source = pool.rows[first][position]
            source_instance = pool.instances[first][position]
            candidates = pool.rows[first][pool.instances[first] != source_instance]
        if len(candidates) == 0:
            # Only reachable for odd hand-built data (a lone instance shared by two categories):
            # pair with any other instance of the task.
            all_rows = np.concatenate(pool.rows)
            all_instances = np.concatenate(pool.instances)
            candidates = all_rows[all_instances != source_instance]
        target = candidates[int(rng.integers(len(candidates)))]
        return Pair(source=int(source), target=int(target), task=task)

    def sample(self, n: int) -> list[Pair]:
        """The next ``n`` pairs of this sampler's seeded stream."""
        if n < 0:
            raise ValueError(f"PairSampler.sample: expected n >= 0, found {n}")
        return [self._draw(self._rng) for _ in range(n)]

    def __iter__(self) -> Iterator[Pair]:
        """An endless stream of pairs, the same for every iterator of a given seed."""
        rng = np.random.default_rng(self.seed)
        while True:
            yield self._draw(rng)


def evaluation_pairs(
    annotations: Sequence[Annotation],
    seed: int = 0,
    references_per_task: int = 20,
    max_targets_per_task: int | None = None,
) -> list[Pair]:
    """Fixed evaluation triplets (reference, target, task), sorted by (task order, source, target).

    Per task, every ``reference``-role row is paired with every ``test``-role
    row; a task with no reference-role rows uses a seeded sample of
    ``references_per_task`` ``train``-role rows instead (as in the paper).
    ``max_targets_per_task`` keeps a seeded subsample of each task's test
    rows. Rows of the same instance are never paired. Each task's random
    draws depend only on (seed, task), so adding a task leaves the others'
    pairs unchanged.
    """
    if references_per_task < 1:
        raise ValueError(f"evaluation_pairs: expected references_per_task >= 1, found {references_per_task}")
    if max_targets_per_task is not None and max_targets_per_task < 1:
        raise ValueError(f"evaluation_pairs: expected max_targets_per_task >= 1 or None, found {max_targets_per_task}")
    by_task_role: dict[tuple[str, str], list[int]] = {}
    for index, annotation in enumerate(annotations):
        by_task_role.setdefault((annotation.task, annotation.role), []).append(index)

    pairs: list[Pair] = []
    for task_number, task in enumerate(TASKS):
        targets = np.array(by_task_role.get((task, "test"), []), dtype=np.int64)
        if len(targets) == 0:
            continue
        rng = np.random.default_rng([seed, task_number])
        references = np.array(by_task_role.get((task, "reference"), []), dtype=np.int64)
        if len(references) == 0:
            train = np.array(by_task_role.get((task, "train"), []), dtype=np.int64)
            count = min(references_per_task, len(train))
            references = np.sort(rng.choice(train, size=count, replace=False)) if count else train
        if max_targets_per_task is not None and len(targets) > max_targets_per_task:
            targets = np.sort(rng.choice(targets, size=max_targets_per_task, replace=False))
        for source in references:
            source_instance = annotations[int(source)].instance_id
            for target in targets:
                if annotations[int(target)].instance_id != source_instance:
                    pairs.append(Pair(source=int(source), target=int(target), task=task))
    if not pairs:
        raise ValueError(
            "evaluation_pairs: no (reference, test) pairs: expected test-role rows and reference- or "
            f"train-role rows of other instances for some task, found roles "
            f"{sorted({role for _, role in by_task_role})} over {len(annotations)} annotations"
        )
    return pairs


def pair_kind(annotations: Sequence[Annotation], pair: Pair) -> str:
    """``"same_category"`` or ``"cross_category"`` for a pair of annotation indices."""
    same = annotations[pair.source].category == annotations[pair.target].category
    return "same_category" if same else "cross_category"
