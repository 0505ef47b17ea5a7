"""MixStyle (Zhou et al., ICLR 2021) on cached trunk features: a feature-level appearance augmentation.

Image augmentation happens once, before caching (:mod:`funk_perception.train.augment`);
this one acts per step on the cached maps. Each sample's per-channel mean and standard
deviation over the map are blended with another sample's, so the network sees one
object's layout under another render's feature "style", a cheap stand-in for appearance
the renders lack. Draws come from the caller's generator, so a seeded step is the same
step after a resume.
"""

from __future__ import annotations

import numpy as np
import torch


def mix_style(features: torch.Tensor, rng: np.random.Generator, alpha: float = 0.1) -> torch.Tensor:
    """MixStyle: each sample's per-channel mean and standard deviation over the map blended with another
    sample's, weight ~ Beta(alpha, alpha); (B, C, h, w) in and out."""
    b = features.shape[0]
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = (features.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt()
    weight = torch.from_numpy(rng.beta(alpha, alpha, size=(b, 1, 1, 1))).to(features)
    other = torch.from_numpy(rng.permutation(b)).to(features.device)
    mixed_mean = weight * mean + (1 - weight) * mean[other]
    mixed_std = weight * std + (1 - weight) * std[other]
    return (features - mean) / std * mixed_std + mixed_mean
