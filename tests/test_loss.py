"""The correspondence loss (docs/DESIGN.md, "Training loss") against hand-computed values."""

import numpy as np
import pytest
import torch

from funk_perception.train.loss import PCK_ALPHA, correspondence_loss, sample_at_keypoints


def _logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def test_loss_equals_hand_computed_value_on_2x2_maps():
    # D = 2, 2 x 2 maps. Source keypoint 0 at the centre of cell (row 0, col 1); keypoint 1
    # halfway between cells (row 1, col 0) and (row 1, col 1). Target keypoint 0 at a cell
    # centre, keypoint 1 a quarter of the way between the two top cells.
    # (D, h, w): cells (0,0)=(1,0) (0,1)=(0,1) (1,0)=(0.6,0.8) (1,1)=(0,1)
    src = np.stack([np.array([[1.0, 0.0], [0.6, 0.0]]), np.array([[0.0, 1.0], [0.8, 1.0]])])
    tgt = np.stack([np.array([[0.8, 0.0], [-1.0, 0.6]]), np.array([[0.6, 1.0], [0.0, 0.8]])])
    scale = 5.0
    src_kp = np.array([[0.75, 0.25], [0.5, 0.75]])  # (x, y) normalised
    tgt_kp = np.array([[0.25, 0.75], [0.375, 0.25]])

    # By hand: source queries.
    q0 = src[:, 0, 1]
    q1 = 0.5 * src[:, 1, 0] + 0.5 * src[:, 1, 1]
    q1 = q1 / np.linalg.norm(q1)
    flat_t = tgt.reshape(2, 4)  # cells in row-major order
    expected = []
    for q, (kx, ky) in zip((q0, q1), tgt_kp):
        logits = scale * q @ flat_t  # (4,)
        # bilinear interpolation of the logit map at the target keypoint (cell centres at (i+0.5)/2)
        u, v = kx * 2 - 0.5, ky * 2 - 0.5
        u0, v0 = int(np.floor(u)), int(np.floor(v))
        du, dv = u - u0, v - v0
        grid = logits.reshape(2, 2)
        positive = 0.0
        for r, c, w in (
            (v0, u0, (1 - du) * (1 - dv)),
            (v0, u0 + 1, du * (1 - dv)),
            (v0 + 1, u0, (1 - du) * dv),
            (v0 + 1, u0 + 1, du * dv),
        ):
            if w > 0:
                positive += w * grid[r, c]
        expected.append(_logsumexp(logits) - positive)
    expected_mean = float(np.mean(expected))

    out = correspondence_loss(
        torch.tensor(src, dtype=torch.float64)[None],
        torch.tensor(tgt, dtype=torch.float64)[None],
        torch.tensor(src_kp)[None],
        torch.tensor(tgt_kp)[None],
        torch.tensor([[True, True]]),
        scale,
    )
    assert out.num_valid == 2
    assert out.loss.item() == pytest.approx(expected_mean, rel=1e-10)
    np.testing.assert_allclose(out.per_keypoint.numpy()[0], expected, rtol=1e-10)


def test_invisible_keypoints_are_excluded():
    torch.manual_seed(0)
    src = torch.nn.functional.normalize(torch.randn(2, 8, 4, 4), dim=1)
    tgt = torch.nn.functional.normalize(torch.randn(2, 8, 4, 4), dim=1)
    skp, tkp = torch.rand(2, 5, 2), torch.rand(2, 5, 2)
    valid = torch.tensor([[True, False, True, True, False], [False, True, True, False, True]])
    full = correspondence_loss(src, tgt, skp, tkp, torch.ones(2, 5, dtype=torch.bool), 10.0)
    masked = correspondence_loss(src, tgt, skp, tkp, valid, 10.0)
    assert masked.num_valid == 6
    assert masked.loss.item() == pytest.approx(full.per_keypoint[valid].mean().item(), rel=1e-6)
    # Garbage (NaN) coordinates of excluded keypoints change nothing.
    skp2, tkp2 = skp.clone(), tkp.clone()
    skp2[~valid] = float("nan")
    tkp2[~valid] = float("nan")
    again = correspondence_loss(src, tgt, skp2, tkp2, valid, 10.0)
    assert torch.isfinite(again.loss)
    assert again.loss.item() == pytest.approx(masked.loss.item(), rel=1e-6)


def test_pck_counts_argmax_cells_and_identical_maps_match_perfectly():
    torch.manual_seed(1)
    f = torch.nn.functional.normalize(torch.randn(1, 16, 4, 4), dim=1)
    centres = torch.tensor([[[(c + 0.5) / 4, (r + 0.5) / 4] for r, c in ((0, 0), (1, 2), (3, 3), (2, 1), (0, 3))]])
    out = correspondence_loss(f, f, centres, centres, torch.ones(1, 5, dtype=torch.bool), 50.0)
    assert out.pck == 1.0
    # Shift the targets by more than PCK_ALPHA: no hits.
    shifted = (centres + torch.tensor([0.0, 0.5])) % 1.0
    off = correspondence_loss(f, f, centres, shifted, torch.ones(1, 5, dtype=torch.bool), 50.0)
    assert 2 * PCK_ALPHA < 0.5 and off.pck == 0.0
    assert off.loss.item() > out.loss.item()


def test_bilinear_sampling_uses_cell_centres():
    f = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    kp = torch.tensor([[[0.125, 1 / 6], [0.25, 0.5], [0.0, 0.0]]])  # centre (0,0); between (1,0),(1,1); corner
    got = sample_at_keypoints(f, kp)[0, :, 0]
    assert got.tolist() == pytest.approx([0.0, 4.5, 0.0], abs=1e-5)


def test_bad_shapes_raise_clear_errors():
    f = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ValueError, match="keypoints must be"):
        correspondence_loss(f, f, torch.zeros(1, 5, 2), torch.zeros(1, 4, 2), torch.ones(1, 5, dtype=torch.bool), 1.0)
