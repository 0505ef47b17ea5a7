"""The contrastive correspondence loss of the paper's Eq. 1 (docs/DESIGN.md, "Training loss"), at sub-cell precision.

For a pair (I, I', t) and each keypoint k::

    L_k = -log( exp(s * q_k . f'[p'_k]) / sum_{p'} exp(s * q_k . f'[p']) )

where ``q_k`` is the source embedding sampled bilinearly at ``p_k`` and the
denominator runs over every cell of the target map (keypoints and background).

Coordinates: keypoints are normalised (x, y) in [0, 1] of the image. A stride-16
trunk puts cell ``i``'s centre at pixel ``(i + 0.5) * 16``, i.e. at normalised
``(i + 0.5) / w``: exactly ``grid_sample``'s ``align_corners=False`` convention,
so a normalised keypoint ``k`` maps to the grid coordinate ``2 k - 1`` with no
image size involved. ``padding_mode="border"`` clamps points in the outer half
cell to the edge cells instead of fading them towards zero.

Target side: the positive logit is the bilinearly interpolated logit map at
``p'_k``, i.e. ``sum_j w_j * logit_j`` over the 4 neighbouring cells with the
bilinear weights ``w_j`` (summing to 1). Because ``logsumexp`` does not depend on
the target, this is exactly a cross-entropy against the soft target ``w`` over
those 4 cells, so the two readings of a sub-cell target (interpolated logit, soft
cross-entropy) coincide.

Source side: the bilinear mix of unit vectors is shorter than 1; it is
re-normalised so the logit scale means the same for a keypoint between cells as
for one at a cell centre (and as at evaluation time, where descriptors are unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: PCK threshold in normalised image units (23 px at 224 x 224; docs/DESIGN.md, "Evaluation").
PCK_ALPHA = 0.1


@dataclass
class LossOutput:
    """The loss and what training reports about it."""

    loss: torch.Tensor  # scalar, mean over valid keypoints (differentiable)
    pck: float  # fraction of valid keypoints whose argmax cell centre is within PCK_ALPHA
    num_valid: int  # keypoints that entered the mean
    per_keypoint: torch.Tensor  # (P, K) loss per keypoint, 0 where invalid (detached)


def keypoints_to_grid(keypoints: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) in [0, 1] -> ``grid_sample`` coordinates (align_corners=False)."""
    return keypoints * 2.0 - 1.0


def sample_at_keypoints(features: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``features`` (B, C, h, w) at ``keypoints`` (B, K, 2) -> (B, K, C)."""
    if features.dim() != 4 or keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError(
            f"sample_at_keypoints: expected features (B,C,h,w) and keypoints (B,K,2), "
            f"found {tuple(features.shape)} and {tuple(keypoints.shape)}"
        )
    grid = keypoints_to_grid(keypoints.to(features.dtype)).unsqueeze(2)  # (B, K, 1, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.squeeze(-1).transpose(1, 2)  # (B, K, C)


def cell_centres(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """Normalised (x, y) of every cell centre of an (h, w) grid, row-major -> (h*w, 2)."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def correspondence_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    source_keypoints: torch.Tensor,
    target_keypoints: torch.Tensor,
    valid: torch.Tensor,
    scale: float | torch.Tensor,
) -> LossOutput:
    """Paper Eq. 1 over a batch of P pairs.

    Args:
        source, target: (P, D, h, w) embeddings of the source and target images for the pair's task.
        source_keypoints, target_keypoints: (P, K, 2) normalised (x, y).
        valid: (P, K) bool, True where the keypoint is visible in BOTH images.
        scale: logit scale (inverse temperature) multiplying the dot products.
    """
    if source.dim() != 4 or target.dim() != 4 or source.shape[:2] != target.shape[:2]:
        raise ValueError(
            f"correspondence_loss: expected source/target (P,D,h,w) with equal P and D, "
            f"found {tuple(source.shape)} and {tuple(target.shape)}"
        )
    p, _, h, w = target.shape
    k = source_keypoints.shape[1]
    expected = (p, k, 2)
    if tuple(source_keypoints.shape) != expected or tuple(target_keypoints.shape) != expected:
        raise ValueError(
            f"correspondence_loss: keypoints must be {expected}, found "
            f"{tuple(source_keypoints.shape)} and {tuple(target_keypoints.shape)}"
        )
    if tuple(valid.shape) != (p, k):
        raise ValueError(f"correspondence_loss: valid must be {(p, k)}, found {tuple(valid.shape)}")

    # Invisible keypoints may carry NaN or off-image coordinates; park them at the
    # centre so they cannot poison the masked sum (NaN * 0 is NaN).
    mask = valid.unsqueeze(-1)
    source_keypoints = torch.where(mask, source_keypoints, torch.full_like(source_keypoints, 0.5))
    target_keypoints = torch.where(mask, target_keypoints, torch.full_like(target_keypoints, 0.5))

    queries = F.normalize(sample_at_keypoints(source, source_keypoints), dim=-1)  # (P, K, D)
    logits = scale * torch.einsum("pkd,pdhw->pkhw", queries, target)  # (P, K, h, w)
    flat = logits.reshape(p, k, h * w)
    log_normaliser = torch.logsumexp(flat, dim=-1)  # (P, K)

    # Positive logit: the logit map interpolated at the target keypoint. One
    # grid_sample call with K channels, each read at its own point, needs the
    # keypoints folded into the batch.
    grid = keypoints_to_grid(target_keypoints.to(logits.dtype)).reshape(p * k, 1, 1, 2)
    positive = F.grid_sample(
        logits.reshape(p * k, 1, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
    ).reshape(p, k)

    per_keypoint = (log_normaliser - positive) * valid.to(logits.dtype)
    num_valid = int(valid.sum().item())
    loss = per_keypoint.sum() / max(num_valid, 1)

    with torch.no_grad():
        centres = cell_centres(h, w, device=logits.device)
        predicted = centres[flat.argmax(dim=-1)]  # (P, K, 2)
        distance = torch.linalg.vector_norm(predicted - target_keypoints.to(predicted.dtype), dim=-1)
        hits = ((distance <= PCK_ALPHA) & valid).sum().item()
        pck = float(hits) / num_valid if num_valid else float("nan")

    return LossOutput(loss=loss, pck=pck, num_valid=num_valid, per_keypoint=per_keypoint.detach())
