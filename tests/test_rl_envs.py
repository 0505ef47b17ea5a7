"""The hammer environment: DAPG reward, DAPG success rule, observations, SB3's check_env on the single env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_checker import check_env

from funk_rl.encoders import BF16_TOLERANCE, ObservationEncoderConfig, build_encoder
from funk_rl.envs import EPISODE_STEPS, PROPRIO_DIM, SUCCESS_STEPS, HammerConfig, env_state, make_hammer_env
from funk_rl.vec_env import FeatureObservation

MODEL = Path(__file__).resolve().parents[1] / "models" / "funk-lite0-synth.pt"
NAIL_JOINT = 26  # the nail's slide joint in qpos; 0.088 puts the nail 3 mm from its goal


def _rollout(env, seed: int, steps: int, state: dict | None = None) -> tuple[list[float], list[dict]]:
    env.reset(seed=seed, options={"initial_state_dict": state} if state is not None else None)
    rng = np.random.default_rng(seed)
    rewards, infos = [], []
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 26).astype(np.float32))
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return rewards, infos


def test_dapg_reward_flips_the_sign_of_the_palm_term() -> None:
    dapg = make_hammer_env(HammerConfig(reward="dapg"), observation="state")
    v1 = make_hammer_env(HammerConfig(reward="v1"), observation="state")
    dapg.reset(seed=3)
    v1.reset(seed=3)
    for _ in range(5):
        action = np.full(26, 0.3, np.float32)
        obs, r_dapg, *_ = dapg.step(action)
        _, r_v1, *_ = v1.step(action)
        palm_to_hammer = np.linalg.norm(obs[33:36] - obs[36:39])
        assert r_dapg == pytest.approx(r_v1 - 0.2 * palm_to_hammer, abs=1e-5)
        assert palm_to_hammer > 0.01


def test_success_rule_needs_more_than_25_steps_at_the_goal() -> None:
    env = make_hammer_env(HammerConfig(), observation="state")
    env.reset(seed=0)
    start = env_state(env)
    _, infos = _rollout(env, 0, EPISODE_STEPS, start)
    assert len(infos) == EPISODE_STEPS and infos[-1]["is_success"] is False
    assert "is_success" not in infos[0]
    nailed = {**start, "qpos": start["qpos"].copy()}
    nailed["qpos"][NAIL_JOINT] = 0.088
    env.reset(seed=0, options={"initial_state_dict": nailed})
    counts = []
    for _ in range(EPISODE_STEPS):
        *_, truncated, info = env.step(np.zeros(26, np.float32))
        counts.append(info["success_steps"])
    assert truncated and counts[-1] > SUCCESS_STEPS and info["is_success"] is True
    # the rule counts steps: a short stay at the goal is not a success
    short = make_hammer_env(HammerConfig(max_episode_steps=SUCCESS_STEPS), observation="state")
    short.reset(seed=0, options={"initial_state_dict": nailed})
    for _ in range(SUCCESS_STEPS):
        *_, info = short.step(np.zeros(26, np.float32))
    assert info["success_steps"] == SUCCESS_STEPS and info["is_success"] is False


def test_same_seed_same_episode_other_seed_other_board() -> None:
    env = make_hammer_env(HammerConfig(), observation="state")
    first, _ = _rollout(env, 5, 20)
    again, _ = _rollout(env, 5, 20)
    other, _ = _rollout(env, 6, 20)
    assert first == again and first != other


def test_pixel_env_frames_and_proprioception() -> None:
    env = make_hammer_env(HammerConfig(image_size=64), observation="pixels")
    obs, _ = env.reset(seed=1)
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["pixels"].std() > 10  # a real scene, not a blank buffer
    np.testing.assert_array_equal(obs["proprio"], obs["state"][:PROPRIO_DIM])
    moved, *_, info = env.step(np.ones(26, np.float32))
    assert np.abs(moved["pixels"].astype(int) - obs["pixels"]).max() > 0 and info["render_s"] > 0
    env.close()


@pytest.mark.parametrize("encoder", ["funk", "funk-keypoints", "imagenet"])
def test_single_feature_env_passes_check_env(encoder: str) -> None:
    torch.set_num_threads(1)
    frames = build_encoder(ObservationEncoderConfig(encoder, str(MODEL), device="cpu"), image_size=64)
    env = FeatureObservation(make_hammer_env(HammerConfig(image_size=64), observation="pixels"), frames)
    check_env(env, warn=True, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (frames.dim + PROPRIO_DIM,) and np.isfinite(obs).all()
    env.close()


def test_state_env_passes_check_env() -> None:
    check_env(make_hammer_env(HammerConfig(), observation="state"), warn=True)


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="HammerConfig.camera.*'top'"):
        HammerConfig(camera="top")
    with pytest.raises(ValueError, match="HammerConfig.reward"):
        HammerConfig(reward="sparse")


def test_bf16_is_kept_only_within_tolerance() -> None:
    env = make_hammer_env(HammerConfig(image_size=64), observation="pixels")
    frames = []
    obs, _ = env.reset(seed=2)
    for _ in range(3):
        frames.append(obs["pixels"])
        obs, *_ = env.step(np.full(26, 0.5, np.float32))
    env.close()
    batch = np.stack(frames)
    for name in ("funk", "funk-keypoints"):
        reference = build_encoder(
            ObservationEncoderConfig(name, str(MODEL), precision="fp32", device="cpu"), image_size=64
        )
        wanted = build_encoder(
            ObservationEncoderConfig(name, str(MODEL), precision="bf16", device="cpu"), image_size=64
        )
        fp32, out = reference(batch), wanted(batch)
        bf16 = wanted.encode(batch, torch.bfloat16)
        error = float(((bf16 - fp32).norm(dim=1) / fp32.norm(dim=1).clamp_min(1e-8)).max())
        assert reference.dtype is None
        assert (wanted.dtype is torch.bfloat16) == (error <= BF16_TOLERANCE), (name, error)
        if wanted.dtype is None:
            assert torch.equal(out, fp32)
