"""The reference-free detect methods of :class:`funk_perception.detector.FunctionalKeypointDetector`, one object each.

Every method turns unit embeddings ``(T, D, h, w)`` of T tasks into keypoints the same two ways:

    method = build_method("bank_heatmap", parts)
    prob = method.probability_maps(features, ["pour"])          # (T, 5, h, w), each map sums to 1 (or 0)
    points, confidence = method.locate(features, ["pour"])      # (T, 5, 2) normalised x, y; (T, 5)

The detector picks its object once (:func:`build_method`, when it is built or its references change) and
every ``detect`` runs that object's :meth:`DetectMethod.locate`; no call branches on the method's name.

- ``heatmap`` (:class:`HeatmapMethod`): the peak of a small head trained to map embeddings to keypoint
  heatmaps (funk_perception/model/heatmap.py).
- ``bank`` (:class:`BankMethod`): where a bank of labelled references, each casting a soft vote, agrees
  most (:class:`BankVotes`, :func:`funk_perception.matching.vote_maps`); the user's own references
  (funk_perception/reference_bank.py) vote beside or instead of the shipped ones.
- ``bank_heatmap`` (:class:`BankHeatmapMethod`): the bank's points with, as confidence, how surely the bank
  and the head both put their weight there (:func:`funk_perception.matching.agreement_confidence`).
- ``prototypes`` (:class:`PrototypesMethod`): the cell whose embedding best matches the keypoint's mean
  training embedding; confidence from ``softmax(logit_scale * cosine)``.

With ``mirrored`` (the embeddings of the horizontally flipped input) every method averages its probability
maps with the mirrored ones flipped back and takes the peak of the average: labels are semantic, so this
makes detection exactly mirror-equivariant (``mirror_maps`` in funk_perception/detector.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from funk_perception.matching import (
    agreement_confidence,
    best_views,
    map_confidence,
    peak_confidence,
    refine_points,
    similarity_maps,
    vote_maps,
)
from funk_perception.model.heatmap import KeypointHeatmapHead
from funk_perception.tasks import TASKS, normalize_task

#: Reference-free keypoint methods of :meth:`funk_perception.detector.FunctionalKeypointDetector.detect`.
DETECT_METHODS: tuple[str, ...] = ("heatmap", "bank", "prototypes", "bank_heatmap")
#: The methods the user's references (funk_perception/reference_bank.py) can vote in.
BANK_METHODS: tuple[str, ...] = ("bank", "bank_heatmap")
#: The checkpoint parts (``extra`` keys) each detect method needs.
DETECT_NEEDS: Mapping[str, tuple[str, ...]] = {
    "heatmap": ("heatmap_head",),
    "bank": ("bank",),
    "prototypes": ("prototypes",),
    "bank_heatmap": ("bank", "heatmap_head"),
}
#: How a missing part is named in an error, with the command that adds it.
PART_NAMES: Mapping[str, str] = {
    "bank": "a reference bank (extra['bank']; python -m funk_perception.train.bank adds one)",
    "heatmap_head": "a keypoint heatmap head (extra['heatmap_head']; python -m funk_perception.train.heatmap trains one)",
}

#: A bank per task: embeddings (M, 5, D) (the user's references: (M, views, 5, D)) and visible (M, 5).
Bank = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def available_methods(extra: Mapping[str, object]) -> tuple[str, ...]:
    """The detect methods a checkpoint's ``extra`` holds every part for, in :data:`DETECT_METHODS` order."""
    return tuple(m for m in DETECT_METHODS if all(extra.get(part) for part in DETECT_NEEDS[m]))


@dataclass(frozen=True)
class BankVotes:
    """Soft votes of the shipped bank and the user's references, combined by ``mode``.

    ``add``: per keypoint the user's references' averaged votes weigh ``share`` and the shipped bank's the
    rest (``share=None``: every reference one vote, pooled with the shipped ones); ``replace``: the user's
    votes alone. A keypoint no user reference of the task labels keeps the shipped bank's votes.
    """

    bank: Bank
    logit_scale: float
    references: Bank
    mode: str
    share: float | None

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks with a shipped bank or user references, in TASKS order."""
        return tuple(t for t in TASKS if t in self.bank or t in self.references)

    def __call__(self, task: str, features: torch.Tensor) -> torch.Tensor:
        """(5, h, w) vote maps for ``task`` on one feature map (D, h, w)."""
        shipped, own = self.bank.get(task), self.references.get(task)
        if own is None:
            return vote_maps(*shipped, features, self.logit_scale)
        own = (best_views(own[0], own[1], features), own[1])  # each photo the way round the image shows it
        if shipped is None:
            return vote_maps(*own, features, self.logit_scale)
        if self.mode == "add" and self.share is None:
            pooled = (torch.cat([shipped[0].to(own[0].dtype), own[0]]), torch.cat([shipped[1], own[1]]))
            return vote_maps(*pooled, features, self.logit_scale)
        share = 1.0 if self.mode == "replace" else self.share
        theirs = vote_maps(*shipped, features, self.logit_scale)
        mine = vote_maps(*own, features, self.logit_scale)
        labelled = own[1].any(0).view(-1, 1, 1)  # a keypoint none of the user's references labels: no vote of theirs
        return torch.where(labelled, share * mine + (1.0 - share) * theirs, theirs)


@dataclass(frozen=True)
class MethodParts:
    """What the detect methods are built from: a detector's checkpoint parts and options, on its ``device``."""

    device: torch.device
    refine: str
    logit_scale: float
    prototypes: Mapping[str, torch.Tensor]
    votes: BankVotes
    heatmap_head: KeypointHeatmapHead | None


def head_maps(head: KeypointHeatmapHead, features: torch.Tensor) -> torch.Tensor:
    """(T, 5, h, w): the heatmap head's softmax over the cells."""
    with torch.inference_mode():
        logits = head(features)
    b, k, h, w = logits.shape
    return torch.softmax(logits.flatten(2), dim=-1).reshape(b, k, h, w)


class DetectMethod(ABC):
    """One detect method: probability maps and keypoints from unit embeddings ``(T, D, h, w)``."""

    #: the method's name in :data:`DETECT_METHODS`
    name: ClassVar[str]
    #: what a task without it lacks, for the error of :meth:`locate`
    lacks: ClassVar[str] = "keypoint model"

    def __init__(self, refine: str, device: torch.device) -> None:
        self.refine = refine
        self.device = device

    @property
    @abstractmethod
    def tasks(self) -> tuple[str, ...]:
        """The tasks this method can locate, in TASKS order."""

    @abstractmethod
    def probability_maps(self, features: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        """(T, 5, h, w) distributions over the cells of ``features`` (T, D, h, w)."""

    @classmethod
    @abstractmethod
    def from_parts(cls, parts: MethodParts) -> DetectMethod:
        """This method built from a detector's parts (:func:`build_method` checks that they are there)."""

    def locate(
        self, features: torch.Tensor, tasks: Sequence[str], mirrored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``(x, y)`` (T, 5, 2) and confidence (T, 5) from unit embeddings ``features``
        (T, D, h, w) of ``tasks``. ``mirrored``: the embeddings of the horizontally flipped input; its
        probability maps are flipped back and averaged with the plain ones before the peak is taken."""
        names = [normalize_task(t) for t in tasks]
        if features.dim() != 4 or features.shape[0] != len(names):
            raise ValueError(f"locate: expected features ({len(names)}, D, h, w), found {tuple(features.shape)}")
        if mirrored is not None and mirrored.shape != features.shape:
            raise ValueError(
                f"locate: expected mirrored of the features' shape {tuple(features.shape)}, "
                f"found {tuple(mirrored.shape)}"
            )
        known = self.tasks
        missing = [t for t in names if t not in known]
        if missing:
            raise ValueError(f"tasks {missing} have no {self.lacks} in this model")
        features = features.to(self.device).float()
        if mirrored is None:
            return self.locate_single(features, names)
        mirrored = mirrored.to(self.device).float()
        prob = 0.5 * (self.probability_maps(features, names) + self.probability_maps(mirrored, names).flip(-1))
        return self.points(prob), self.confidence(prob, names, features, mirrored)

    def locate_single(self, features: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`locate` without a mirrored input, on checked float features of normalised ``names``."""
        prob = self.probability_maps(features, names)
        return self.points(prob), self.confidence(prob, names, features, None)

    def points(self, prob: torch.Tensor) -> torch.Tensor:
        """The refined peaks (T, 5, 2) of probability maps."""
        # the parabola is fitted to log-probabilities, the scale of a softmax of logits or cosines
        return refine_points(torch.log(prob.clamp(min=1e-12)), self.refine)

    def confidence(
        self, prob: torch.Tensor, names: Sequence[str], features: torch.Tensor, mirrored: torch.Tensor | None
    ) -> torch.Tensor:
        """(T, 5) confidence of the peaks of ``prob``: its mass around them."""
        return map_confidence(prob)


class HeatmapMethod(DetectMethod):
    """The peak of the keypoint heatmap head; task-conditioned through the embedding, so any task."""

    name = "heatmap"

    def __init__(self, head: KeypointHeatmapHead, refine: str, device: torch.device) -> None:
        super().__init__(refine, device)
        self.head = head

    @classmethod
    def from_parts(cls, parts: MethodParts) -> HeatmapMethod:
        return cls(parts.heatmap_head, parts.refine, parts.device)

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASKS

    def probability_maps(self, features: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        return head_maps(self.head, features)

    def locate_single(self, features: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # one image: the parabola goes through the logits themselves (a mirrored pair averages probabilities)
        with torch.inference_mode():
            logits = self.head(features)
        b, k, h, w = logits.shape
        prob = torch.softmax(logits.flatten(2), dim=-1).reshape(b, k, h, w)
        return refine_points(logits, self.refine), map_confidence(prob)


class BankMethod(DetectMethod):
    """Where the bank's references, each casting a soft vote, agree most; confidence: the votes' mass there."""

    name = "bank"
    lacks = "reference bank"

    def __init__(self, votes: BankVotes, refine: str, device: torch.device) -> None:
        super().__init__(refine, device)
        self.votes = votes

    @classmethod
    def from_parts(cls, parts: MethodParts) -> BankMethod:
        return cls(parts.votes, parts.refine, parts.device)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.votes.tasks

    def probability_maps(self, features: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.stack([self.votes(t, features[i]) for i, t in enumerate(tasks)])


class BankHeatmapMethod(BankMethod):
    """The bank's points; confidence: how surely the bank and the heatmap head both put their weight there."""

    name = "bank_heatmap"

    def __init__(self, votes: BankVotes, head: KeypointHeatmapHead, refine: str, device: torch.device) -> None:
        super().__init__(votes, refine, device)
        self.head = head

    @classmethod
    def from_parts(cls, parts: MethodParts) -> BankHeatmapMethod:
        return cls(parts.votes, parts.heatmap_head, parts.refine, parts.device)

    def confidence(
        self, prob: torch.Tensor, names: Sequence[str], features: torch.Tensor, mirrored: torch.Tensor | None
    ) -> torch.Tensor:
        head = head_maps(self.head, features)
        if mirrored is not None:
            head = 0.5 * (head + head_maps(self.head, mirrored).flip(-1))
        return agreement_confidence(prob, head)


class PrototypesMethod(DetectMethod):
    """The cell most similar to each keypoint's mean training embedding (its prototype)."""

    name = "prototypes"
    lacks = "keypoint prototype"

    def __init__(
        self, prototypes: Mapping[str, torch.Tensor], logit_scale: float, refine: str, device: torch.device
    ) -> None:
        super().__init__(refine, device)
        self.prototypes = prototypes
        self.logit_scale = logit_scale

    @classmethod
    def from_parts(cls, parts: MethodParts) -> PrototypesMethod:
        return cls(parts.prototypes, parts.logit_scale, parts.refine, parts.device)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in TASKS if t in self.prototypes)

    def probability_maps(self, features: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        """``softmax(logit_scale * cosine)`` to the prototypes, over the cells."""
        with torch.inference_mode():
            sim = similarity_maps(torch.stack([self.prototypes[t] for t in tasks]), features)
            b, k, h, w = sim.shape
            return torch.softmax(sim.flatten(2) * self.logit_scale, dim=-1).reshape(b, k, h, w)

    def locate_single(self, features: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # one image: the parabola goes through the cosines themselves (a mirrored pair averages probabilities)
        sim = similarity_maps(torch.stack([self.prototypes[t] for t in names]), features)  # (T, 5, h, w)
        return refine_points(sim, self.refine), self.seen(peak_confidence(sim, self.logit_scale), names)

    def confidence(
        self, prob: torch.Tensor, names: Sequence[str], features: torch.Tensor, mirrored: torch.Tensor | None
    ) -> torch.Tensor:
        return self.seen(map_confidence(prob), names)

    def seen(self, confidence: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """``confidence`` (T, 5), zero for a keypoint never seen in training: its prototype is zero, no evidence."""
        protos = torch.stack([self.prototypes[t] for t in names])
        return torch.where(protos.norm(dim=-1) > 0, confidence, torch.zeros_like(confidence))


#: Each method's class, by name.
METHODS: Mapping[str, type[DetectMethod]] = {
    cls.name: cls for cls in (HeatmapMethod, BankMethod, PrototypesMethod, BankHeatmapMethod)
}


def build_method(name: str, parts: MethodParts) -> DetectMethod:
    """The object of detect method ``name`` (one of :data:`DETECT_METHODS`) built from ``parts``; raises
    ValueError naming the checkpoint parts the method needs and ``parts`` lacks."""
    if name not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(DETECT_METHODS)}, found {name!r}")
    # prototypes are not required: a detector built for transfer alone has none (its detect finds no task)
    held = {"bank": bool(parts.votes.bank), "heatmap_head": parts.heatmap_head is not None}
    missing = [part for part in DETECT_NEEDS[name] if not held.get(part, True)]
    if missing:
        raise ValueError(
            f"method={name!r} needs {' and '.join(PART_NAMES[p] for p in missing)}, which this checkpoint lacks"
        )
    return METHODS[name].from_parts(parts)
