"""Correspondence math: cell convention, sampling, argmax, sub-cell refinement, confidence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from funk_perception.matching import (
    argmax_points,
    cell_to_normalized,
    match,
    peak_confidence,
    refine_parabolic,
    refine_points,
    refine_softargmax,
    sample_features,
    similarity_maps,
)


def _random_unit_features(seed: int, d: int = 32, h: int = 9, w: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(1, d, h, w, generator=g), dim=1)


def _gaussian_map(x0: float, y0: float, h: int = 10, w: int = 14, sigma: float = 1.2) -> torch.Tensor:
    """A smooth peak centred at cell coordinates (x0, y0) = (column, row), possibly between cells."""
    rows = torch.arange(h, dtype=torch.float32).view(h, 1)
    cols = torch.arange(w, dtype=torch.float32).view(1, w)
    return torch.exp(-((cols - x0) ** 2 + (rows - y0) ** 2) / (2 * sigma**2)).view(1, 1, h, w)


def test_cell_centres_are_at_half_cells() -> None:
    xy = cell_to_normalized(torch.tensor([0, 3]), torch.tensor([0, 9]), height=4, width=10)
    assert torch.allclose(xy, torch.tensor([[0.05, 0.125], [0.95, 0.875]]))


def test_sample_features_at_cell_centre_returns_that_cell_and_interpolates_between() -> None:
    feats = _random_unit_features(0)
    h, w = feats.shape[-2:]
    centre = cell_to_normalized(torch.tensor([4]), torch.tensor([5]), h, w).view(1, 1, 2)
    got = sample_features(feats, centre)[0, 0]
    assert torch.allclose(got, feats[0, :, 4, 5], atol=1e-6)
    # Halfway between columns 5 and 6: the mean of the two cells (before renormalising).
    mid = torch.tensor([[[6.0 / w, 4.5 / h]]])
    raw = sample_features(feats, mid, normalize=False)[0, 0]
    assert torch.allclose(raw, 0.5 * (feats[0, :, 4, 5] + feats[0, :, 4, 6]), atol=1e-6)
    assert torch.isclose(sample_features(feats, mid)[0, 0].norm(), torch.tensor(1.0), atol=1e-5)


def test_argmax_finds_planted_match() -> None:
    feats = _random_unit_features(1)
    h, w = feats.shape[-2:]
    planted = [(2, 7), (6, 1), (8, 11)]
    queries = torch.stack([feats[0, :, r, c] for r, c in planted]).unsqueeze(0)
    result = match(queries, feats)
    expected = cell_to_normalized(torch.tensor([r for r, _ in planted]), torch.tensor([c for _, c in planted]), h, w)
    assert torch.allclose(result.argmax[0], expected)
    assert torch.allclose(result.score[0], torch.ones(3), atol=1e-5)


def test_similarity_maps_is_batched_dot_product() -> None:
    feats = torch.cat([_random_unit_features(2), _random_unit_features(3)])
    queries = torch.randn(2, 4, feats.shape[1], generator=torch.Generator().manual_seed(4))
    sim = similarity_maps(queries, feats)
    assert sim.shape == (2, 4, 9, 12)
    assert torch.isclose(sim[1, 2, 3, 4], queries[1, 2] @ feats[1, :, 3, 4], atol=1e-5)


@pytest.mark.parametrize("method", ["parabolic", "softargmax"])
def test_refinement_recovers_peak_between_cells_better_than_argmax(method: str) -> None:
    h, w = 10, 14
    for x0, y0 in [(5.3, 4.6), (8.45, 2.2), (3.0, 6.0)]:
        sim = _gaussian_map(x0, y0, h, w)
        truth = cell_to_normalized(torch.tensor(y0), torch.tensor(x0), h, w)
        err_argmax = (argmax_points(sim)[0, 0] - truth).norm()
        err_refined = (refine_points(sim, method, temperature=0.2)[0, 0] - truth).norm()
        if x0 == round(x0) and y0 == round(y0):
            assert err_refined < 1e-6  # a peak on a cell centre stays put
        else:
            assert err_refined < 0.5 * err_argmax
            assert err_refined < 0.2 / w  # within a fifth of a cell


def test_parabolic_is_scale_invariant_and_safe_at_borders() -> None:
    sim = _gaussian_map(6.3, 3.7)
    assert torch.allclose(refine_parabolic(sim), refine_parabolic(3.0 * sim - 0.7), atol=1e-6)
    edge = _gaussian_map(0.0, 9.0)  # peak on the corner cell
    out = refine_parabolic(edge)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, argmax_points(edge))
    flat = torch.zeros(1, 1, 5, 5)
    assert torch.isfinite(refine_parabolic(flat)).all()
    assert torch.isfinite(refine_softargmax(flat)).all()


def test_unknown_refinement_is_rejected() -> None:
    with pytest.raises(ValueError, match="parabolic"):
        refine_points(torch.zeros(1, 1, 3, 3), "bilinear")


def test_peak_confidence_separates_sharp_from_ambiguous() -> None:
    sharp = torch.full((1, 1, 8, 8), -1.0)
    sharp[0, 0, 3, 3] = 1.0
    twin = sharp.clone()
    twin[0, 0, 6, 6] = 1.0
    conf = peak_confidence(torch.cat([sharp, twin], dim=1), logit_scale=20.0)
    assert conf.shape == (1, 2)
    assert conf[0, 0] > 0.99
    assert 0.45 < conf[0, 1] < 0.55
    assert ((conf >= 0) & (conf <= 1)).all()
