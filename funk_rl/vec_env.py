"""Vectorised hammer environments whose observation is frozen visual features plus proprioception.

N environments step and render in worker processes (stable-baselines3's
``SubprocVecEnv``, forkserver start); their frames come back to the main process,
where ONE batched forward pass of the frozen encoder per step turns them into
features on the chosen device. Frames go to the device once and features come
back once (stable-baselines3 wants numpy); frames of episodes that just ended
(``terminal_observation``, which PPO bootstraps from at the time limit) ride in
the same batch.

``batched=False`` runs one forward pass per environment instead: the RRL code's
design, kept as the reference the benchmark and the tests compare against.

Rendering of step t+1 cannot overlap inference of step t in a synchronous
VecEnv: the action of step t+1 is computed from the features of step t. Across
environments the workers already render in parallel while the main process waits.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecEnvWrapper, VecMonitor

from funk_rl.encoders import FrameEncoder
from funk_rl.envs import PROPRIO_DIM, HammerConfig, make_hammer_env

# Imported once by the forkserver, so each worker forks with them loaded instead of
# importing torch and MuJoCo itself (seconds per worker); no GL context exists there.
_PRELOAD = ["torch", "stable_baselines3.common.vec_env.subproc_vec_env", "funk_rl.envs"]


def feature_space(encoder: FrameEncoder) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (encoder.dim + PROPRIO_DIM,), np.float32)


class FeatureVecEnv(VecEnvWrapper):
    """Wrap a VecEnv of ``{"pixels", "proprio", ...}`` observations: observation = [features, proprio].

    ``timings`` accumulates seconds spent waiting for the workers (simulation,
    rendering, IPC: ``env``) and in the encoder (``encode``, including the copies;
    ``encode_cpu``: this process's CPU seconds there, which other jobs' load does not inflate).
    """

    def __init__(self, venv: VecEnv, encoder: FrameEncoder, batched: bool = True) -> None:
        pixels = venv.observation_space["pixels"].shape
        if pixels[0] != encoder.image_size or pixels[1] != encoder.image_size:
            raise ValueError(
                f"frames of {pixels[1]}x{pixels[0]} px for an encoder of {encoder.image_size} px input; "
                "render at the encoder's size (HammerConfig.image_size)"
            )
        super().__init__(venv, observation_space=feature_space(encoder))
        self.encoder = encoder
        self.batched = batched
        self.timings: dict[str, float] = defaultdict(float)

    def _features(self, frames: np.ndarray) -> np.ndarray:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            if self.batched:
                feats = self.encoder(frames)
            else:
                feats = torch.cat([self.encoder(frames[i : i + 1]) for i in range(len(frames))])
            host = feats.cpu().numpy()
        self.timings["encode"] += time.perf_counter() - start
        self.timings["encode_cpu"] += time.process_time() - cpu
        return host

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        return np.concatenate([self._features(obs["pixels"]), obs["proprio"]], axis=1).astype(np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        start = time.perf_counter()
        obs, rewards, dones, infos = self.venv.step_wait()
        self.timings["env"] += time.perf_counter() - start
        ended = [i for i, info in enumerate(infos) if info.get("terminal_observation") is not None]
        frames, proprio = obs["pixels"], obs["proprio"]
        if ended:
            last = [infos[i]["terminal_observation"] for i in ended]
            frames = np.concatenate([frames, np.stack([o["pixels"] for o in last])])
            proprio = np.concatenate([proprio, np.stack([o["proprio"] for o in last])])
        out = np.concatenate([self._features(frames), proprio], axis=1).astype(np.float32)
        n = self.num_envs
        for j, i in enumerate(ended):
            infos[i]["terminal_observation"] = out[n + j]
        return out[:n], rewards, dones, infos


class FeatureObservation(gym.ObservationWrapper):
    """One environment, one forward pass per step: the single-env form (for ``check_env`` and the recorder)."""

    def __init__(self, env: gym.Env, encoder: FrameEncoder) -> None:
        super().__init__(env)
        self.encoder = encoder
        self.observation_space = feature_space(encoder)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            feats = self.encoder(observation["pixels"][None]).cpu().numpy()[0]
        return np.concatenate([feats, observation["proprio"]]).astype(np.float32)


def make_worker_vec_env(
    hammer: HammerConfig,
    n_envs: int,
    seed: int,
    observation: str = "pixels",
    start_method: str = "forkserver",
    expert: str | Path | None = None,
) -> VecEnv:
    """``n_envs`` hammer environments in worker processes, seeded ``seed, seed + 1, ...``, with episode stats.

    ``observation``: what each worker returns (:data:`funk_rl.envs.OBSERVATIONS`); ``expert``: a DAPG expert
    file that labels every step in the worker (``info["expert_action"]``, see ``make_hammer_env``).
    """
    if n_envs < 1:
        raise ValueError(f"n_envs: expected >= 1, found {n_envs}")
    if start_method == "forkserver":
        multiprocessing.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    make = partial(make_hammer_env, hammer, observation, None if expert is None else str(expert))
    venv = SubprocVecEnv([make for _ in range(n_envs)], start_method=start_method)
    venv.seed(seed)
    venv.action_space.seed(seed)
    return VecMonitor(venv, info_keywords=("is_success",))


def make_vec_env(
    hammer: HammerConfig,
    encoder: FrameEncoder | None,
    n_envs: int,
    seed: int,
    observation: str = "state",
    batched: bool = True,
    expert: str | Path | None = None,
    time_feature: bool = False,
) -> VecEnv:
    """The training/evaluation environment: features + proprioception for a visual encoder, else the
    ``observation`` (``state`` or ``proprio``) vector.

    ``time_feature``: the episode's phase (step / max steps) appended as the observation's last entry
    (:class:`PhaseVecEnv`); ``expert``: see :func:`make_worker_vec_env`.
    """
    kind = "pixels" if encoder is not None else observation
    venv = make_worker_vec_env(hammer, n_envs, seed, observation=kind, expert=expert)
    try:
        if encoder is not None:
            venv = FeatureVecEnv(venv, encoder, batched=batched)
        return PhaseVecEnv(venv, hammer.max_episode_steps) if time_feature else venv
    except BaseException:
        venv.close()
        raise


class PhaseVecEnv(VecEnvWrapper):
    """Append the episode's phase, ``step / episode_steps`` (0 at the reset, 1 at the time limit), to a vector
    observation: the policy's clock (:class:`funk_rl.policy.ObservationCode` expands it into a time code).

    Each environment's step counter restarts at its (automatic) reset; a ``terminal_observation`` gets the
    phase of the step that ended the episode.
    """

    def __init__(self, venv: VecEnv, episode_steps: int) -> None:
        space = venv.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"PhaseVecEnv: expected a vector observation space, found {space}")
        low, high = np.append(space.low, 0.0), np.append(space.high, 1.0)
        super().__init__(venv, observation_space=spaces.Box(low.astype(np.float32), high.astype(np.float32)))
        self.episode_steps = int(episode_steps)
        self.steps = np.zeros(venv.num_envs, dtype=np.int64)

    def _with_phase(self, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        phase = (steps / self.episode_steps).astype(np.float32).reshape(len(obs), 1)
        return np.concatenate([np.asarray(obs, dtype=np.float32), phase], axis=1)

    def reset(self) -> np.ndarray:
        self.steps[:] = 0
        return self._with_phase(self.venv.reset(), self.steps)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        for i in np.flatnonzero(dones):
            last = infos[i].get("terminal_observation")
            if last is not None:
                infos[i]["terminal_observation"] = self._with_phase(last[None], self.steps[i : i + 1])[0]
        self.steps[dones] = 0
        return self._with_phase(obs, self.steps), rewards, dones, infos


def worker_pids(venv: VecEnv) -> list[int]:
    """Process ids of the workers under any stack of VecEnv wrappers (for tests and diagnostics)."""
    inner = venv
    while isinstance(inner, VecEnvWrapper):
        inner = inner.venv
    return [p.pid for p in getattr(inner, "processes", [])]
