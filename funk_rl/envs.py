"""The ADROIT hammer environment as funk_rl uses it: fast offscreen frames, DAPG's reward, DAPG's success rule.

``AdroitHandHammer-v1`` from gymnasium-robotics 1.4.2 (pinned in setup.py's ``rl``
extra). Its dense reward differs from the DAPG/RRL one in a single term: v1 gives
``+0.1 * |palm - hammer|`` where DAPG has ``-0.1 * |palm - hammer|`` (the package
warns that v1 rewards changed in 1.2.1 without a version bump). ``reward="dapg"``
(the default) restores DAPG's sign, so returns compare with the hand_dapg and RRL
code; ``reward="v1"`` keeps the package's. The per-step ``info["success"]`` (nail
within 1 cm of its goal) is the package's; an episode succeeds under the DAPG/RRL
rule when that held for more than 25 of its 200 steps (``info["is_success"]`` at
the episode's last step, the key stable-baselines3 reads).

This module imports no torch: it is what the worker processes of the vectorised
environment run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "AdroitHandHammer-v1"
EPISODE_STEPS = 200
#: DAPG/RRL: an episode is a success if the nail is at its goal for more than this many steps.
SUCCESS_STEPS = 25
#: Joint positions of the 26 actuated joints (2 arm rotations, 24 hand joints): the proprioception
#: RRL adds to the visual features. They are the first 26 entries of the 46-d state.
PROPRIO_DIM = 26
STATE_DIM = 46
ACTION_DIM = 26
CAMERAS = ("fixed", "vil_camera")
REWARDS = ("dapg", "v1")
# Indices in the 46-d state (gymnasium-robotics' _get_obs): palm site, hammer body position.
_PALM = slice(33, 36)
_HAMMER = slice(36, 39)


@dataclass
class HammerConfig:
    """How the hammer environment is made. ``image_size`` is the side of the square rendered frame."""

    image_size: int = 224
    camera: str = "fixed"
    reward: str = "dapg"
    max_episode_steps: int = EPISODE_STEPS

    def __post_init__(self) -> None:
        if self.camera not in CAMERAS:
            raise ValueError(f"HammerConfig.camera: expected one of {', '.join(CAMERAS)}, found {self.camera!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"HammerConfig.reward: expected one of {', '.join(REWARDS)}, found {self.reward!r}")
        if int(self.image_size) < 16:
            raise ValueError(f"HammerConfig.image_size: expected >= 16, found {self.image_size}")
        if int(self.max_episode_steps) < 1:
            raise ValueError(f"HammerConfig.max_episode_steps: expected >= 1, found {self.max_episode_steps}")


def _register() -> None:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def fast_render(model: Any, width: int, height: int) -> None:
    """Shadows and multisampling off, offscreen buffer at the frame size: ~7x faster CPU rendering (FIELD-NOTES).

    Must run before the first render, which creates the GL context and its buffers.
    """
    model.light_castshadow[:] = 0
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = int(width)
    model.vis.global_.offheight = int(height)


class HammerTask(gym.Wrapper):
    """DAPG's reward sign (optional) and success rule on top of ``AdroitHandHammer-v1``.

    ``info`` gains ``success_steps`` (steps with the nail at its goal so far) and, at
    the episode's last step, ``is_success`` (more than :data:`SUCCESS_STEPS` of them).
    """

    def __init__(self, env: gym.Env, reward: str = "dapg") -> None:
        super().__init__(env)
        self.reward_kind = reward
        self.success_steps = 0

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        self.success_steps = 0
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "success_steps": 0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.reward_kind == "dapg":
            reward = float(reward) - 0.2 * float(np.linalg.norm(obs[_PALM] - obs[_HAMMER]))
        self.success_steps += int(bool(info.get("success", False)))
        info = {**info, "success_steps": self.success_steps}
        if terminated or truncated:
            info["is_success"] = self.success_steps > SUCCESS_STEPS
        return obs, float(reward), terminated, truncated, info


class StateObservation(gym.ObservationWrapper):
    """The 46-d state as float32 (the ``state`` encoder's observation, the upper reference)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)


class PixelProprioObservation(gym.ObservationWrapper):
    """``{"pixels": (S, S, 3) uint8 frame, "proprio": (26,) joint positions, "state": (46,)}``.

    The space is declared without rendering, so no GL context exists before the
    first reset (a context made before a fork hangs the workers, FIELD-NOTES). The
    full state rides along for the demonstration recorder and for diagnostics; the
    feature wrapper hands only features and proprioception to the policy.
    """

    def __init__(self, env: gym.Env, image_size: int) -> None:
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32),
                "state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            }
        )

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        start, cpu = time.perf_counter(), time.process_time()
        observation = self.observation(obs)
        # The worker's own render time (wall, and CPU of all its threads: llvmpipe renders on several),
        # the benchmark's split of where a step's time goes.
        timing = {"render_s": time.perf_counter() - start, "render_cpu_s": time.process_time() - cpu}
        return observation, reward, terminated, truncated, {**info, **timing}

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        frame = self.env.render()
        state = np.asarray(observation, dtype=np.float32)
        return {"pixels": np.ascontiguousarray(frame), "proprio": state[:PROPRIO_DIM].copy(), "state": state}


def make_hammer_env(config: HammerConfig | None = None, pixels: bool = True, expert_labels: bool = False) -> gym.Env:
    """One hammer environment: pixel + proprioception observations (``pixels=True``) or the state vector.

    ``expert_labels``: each step's ``info["expert_action"]`` is the scripted expert's action in the state the
    step started from (:class:`funk_rl.scripted.ExpertLabels`, for DAgger).
    """
    config = config or HammerConfig()
    _register()
    size = int(config.image_size)
    kwargs: dict[str, Any] = {"max_episode_steps": int(config.max_episode_steps)}
    if pixels:
        kwargs.update(render_mode="rgb_array", width=size, height=size, camera_name=config.camera)
    env = gym.make(ENV_ID, **kwargs)
    if pixels:
        fast_render(env.unwrapped.model, size, size)
    env = HammerTask(env, config.reward)
    env = PixelProprioObservation(env, size) if pixels else StateObservation(env)
    if expert_labels:
        from funk_rl.scripted import ExpertLabels  # it imports this module

        env = ExpertLabels(env)
    return env


def env_state(env: gym.Env) -> dict[str, np.ndarray]:
    """The simulator state a demonstration starts from (qpos, qvel, board_pos), as the hand_dapg demos store it."""
    state = env.unwrapped.get_env_state()
    return {key: np.asarray(state[key], dtype=np.float64).copy() for key in ("qpos", "qvel", "board_pos")}
