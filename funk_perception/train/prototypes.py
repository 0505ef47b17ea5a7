"""Per-task keypoint prototypes: the mean embedding of each functional keypoint over the training set.

The detector uses them to find a task's five keypoints in an image without a
reference image: the location whose embedding best matches prototype ``k``.
Each sampled embedding is L2-normalised before averaging (as the loss's queries
are), and the mean is L2-normalised again so prototypes compare by cosine like
any descriptor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.tasks import NUM_KEYPOINTS, TASKS
from funk_perception.train.cache import FeatureCache
from funk_perception.train.loss import sample_at_keypoints


def compute_prototypes(
    encoder: FunctionalEncoder,
    cache: FeatureCache,
    views: Sequence[int] | None = None,
    batch_size: int = 64,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``({task: (5, D) unit prototypes}, {task: (5,) sample counts})`` over the cached training views.

    ``views``: which cached views of each image to use (``None``: all of them;
    augmented views add the appearance variety photographs will bring). A
    keypoint never visible for a task gets a zero prototype and count 0.
    """
    chosen = list(range(cache.views_per_image)) if views is None else [int(v) for v in views]
    bad = [v for v in chosen if not 0 <= v < cache.views_per_image]
    if bad:
        raise ValueError(f"compute_prototypes: views {bad} not in the cache's 0..{cache.views_per_image - 1}")
    view_ids = cache.view_id(np.arange(cache.num_images)[:, None], np.asarray(chosen)[None, :]).reshape(-1)
    device = encoder.log_logit_scale.device
    dim = encoder.embedding_dim
    sums = torch.zeros(len(TASKS), NUM_KEYPOINTS, dim, dtype=torch.float64)
    counts = torch.zeros(len(TASKS), NUM_KEYPOINTS, dtype=torch.long)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            for t, _task in enumerate(TASKS):
                labelled = view_ids[cache.visible[view_ids, t].any(axis=1)]
                for start in range(0, len(labelled), batch_size):
                    batch = labelled[start : start + batch_size]
                    features = cache.load_features(batch).to(device)
                    ids = torch.full((len(batch),), t, dtype=torch.long, device=device)
                    embedding = encoder.embed_per_sample(features, ids)
                    keypoints = torch.from_numpy(cache.keypoints[batch, t]).to(device)
                    samples = F.normalize(sample_at_keypoints(embedding, keypoints), dim=-1)  # (B, 5, D)
                    visible = torch.from_numpy(cache.visible[batch, t]).to(device)
                    sums[t] += (samples * visible.unsqueeze(-1)).sum(0).double().cpu()
                    counts[t] += visible.sum(0).cpu()
    finally:
        encoder.train(was_training)
    prototypes = F.normalize(sums, dim=-1).float()  # zero rows stay zero
    present = [t for t in range(len(TASKS)) if counts[t].sum() > 0]
    return (
        {TASKS[t]: prototypes[t].clone() for t in present},
        {TASKS[t]: counts[t].clone() for t in present},
    )
