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
environment run, the DAPG expert that labels DAgger's states included (:class:`ExpertLabels`).
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from funk_rl.expert import DapgExpert

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
#: What a worker's observation holds: the frame and proprioception, the 46-d state, or proprioception alone.
OBSERVATIONS = ("pixels", "state", "proprio")
#: An all-NaN action asks :class:`ExpertLabels` to execute the expert's own action (DAgger's beta mixing
#: without a round trip to the main process).
EXPERT_ACTION = np.full(26, np.nan, dtype=np.float32)
# Indices in the 46-d state (gymnasium-robotics' _get_obs): palm site, hammer body position.
_PALM = slice(33, 36)
_HAMMER = slice(36, 39)


@dataclass
class HammerConfig:
    """How the hammer environment is made. ``image_size`` is the side of the square rendered frame; ``render``
    lets an environment without pixel observations render frames too (``env.render()``, for videos)."""

    image_size: int = 84
    camera: str = "fixed"
    reward: str = "dapg"
    max_episode_steps: int = EPISODE_STEPS
    render: bool = False

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
    # Imported here, on the first environment made, and quietly: on import the package prints a notice
    # about the v1 reward change to stderr in every worker process; the module docstring states it once.
    with contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def fast_render(model: Any, width: int, height: int) -> None:
    """Shadows and multisampling off, offscreen buffer at the frame size: ~7x faster CPU rendering
    (docs/DESIGN.md, "CPU rendering speed").

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


class ProprioObservation(gym.ObservationWrapper):
    """The 26 joint positions alone, as float32 (the ``proprio`` encoder: what the image must add to)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation[:PROPRIO_DIM], dtype=np.float32)


class ExpertLabels(gym.Wrapper):
    """Label every state with the expert's action: ``info["expert_action"]`` of a step is the expert's action
    in the state the step started from (the one the policy saw), ``info["episode_step"]`` that state's step.

    It wraps the 46-d state environment, under the observation wrappers, so the expert reads the state in
    the worker that holds the simulator whatever the policy observes. An all-NaN action
    (:data:`EXPERT_ACTION`) is replaced by the expert's.
    """

    def __init__(self, env: gym.Env, expert: DapgExpert) -> None:
        super().__init__(env)
        self.expert = expert
        self.episode_step = 0
        self._state = np.zeros(STATE_DIM)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self.episode_step = 0
        self._state = np.asarray(obs, dtype=np.float64)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        label = self.expert.act(self._state)
        action = np.asarray(action, dtype=np.float32)
        if np.isnan(action).all():
            action = label
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._state = np.asarray(obs, dtype=np.float64)
        info = {**info, "expert_action": label, "episode_step": self.episode_step}
        self.episode_step += 1
        return obs, reward, terminated, truncated, info


class PixelProprioObservation(gym.ObservationWrapper):
    """``{"pixels": (S, S, 3) uint8 frame, "proprio": (26,) joint positions, "state": (46,)}``.

    The space is declared without rendering, so no GL context exists before the
    first reset (a context made before a fork hangs the workers: docs/RL.md, "Rendering"). The
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


def make_hammer_env(
    config: HammerConfig | None = None, observation: str = "pixels", expert: str | Path | None = None
) -> gym.Env:
    """One hammer environment whose observation is ``observation`` (:data:`OBSERVATIONS`).

    ``expert``: a DAPG expert file (:mod:`funk_rl.expert`); each step's ``info["expert_action"]`` is then its
    action in the state the step started from (:class:`ExpertLabels`, for DAgger).
    """
    config = config or HammerConfig()
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation: expected one of {', '.join(OBSERVATIONS)}, found {observation!r}")
    _register()
    size = int(config.image_size)
    kwargs: dict[str, Any] = {"max_episode_steps": int(config.max_episode_steps)}
    renders = observation == "pixels" or config.render
    if renders:
        kwargs.update(render_mode="rgb_array", width=size, height=size, camera_name=config.camera)
    env = gym.make(ENV_ID, **kwargs)
    if renders:
        fast_render(env.unwrapped.model, size, size)
    env = HammerTask(env, config.reward)
    if expert is not None:
        env = ExpertLabels(env, DapgExpert.load(expert))
    if observation == "pixels":
        return PixelProprioObservation(env, size)
    return StateObservation(env) if observation == "state" else ProprioObservation(env)


def env_state(env: gym.Env) -> dict[str, np.ndarray]:
    """The simulator state a demonstration starts from (qpos, qvel, board_pos), as the hand_dapg demos store it."""
    state = env.unwrapped.get_env_state()
    return {key: np.asarray(state[key], dtype=np.float64).copy() for key in ("qpos", "qvel", "board_pos")}
