"""The hammer policy: a stable-baselines3 Gaussian MLP whose input layer standardises the observation and
expands the episode's phase into a time code, with its statistics saved inside the policy.

Why: features, joint angles and positions differ in scale by orders of magnitude, and the time code lets
the policy tell apart moments of the motion where the observation looks alike. On the state with 25
demonstrations neither is what makes behaviour cloning work (the MSE fit is; docs/RL.md, "Ablations"), so
they are defaults that cost nothing rather than measured necessities. The observation the vectorised
environment gives (:func:`funk_rl.vec_env.make_vec_env` with ``time_feature=True``) is
``[features or state, phase]``; :class:`ObservationCode` turns it into
``[(x - mean) / std, one-hot of the 10-step bin, sin and cos of 2 pi step / P for P in PERIODS]``. The mean
and standard deviation are fitted on the demonstrations (:func:`fit_statistics`) and live in the policy's
state dict as buffers, so ``PPO.load`` restores them and nothing else has to travel with a run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv

from funk_rl.envs import EPISODE_STEPS

#: Width of the one-hot time bins, in steps.
BIN_STEPS = 10
#: Periods (steps) of the sine/cosine pairs of the time code.
PERIODS = (10, 20, 50, 100, 200)
#: Floor of a standardised feature's standard deviation: constant features stay near 0 instead of blowing up.
MIN_STD = 1e-3


def time_code_dim(episode_steps: int = EPISODE_STEPS) -> int:
    return -(-episode_steps // BIN_STEPS) + 2 * len(PERIODS)


class ObservationCode(BaseFeaturesExtractor):
    """``[x, phase]`` -> ``[(x - mean) / std, time code(phase * episode_steps)]`` (no trainable parameters).

    ``standardise=False`` keeps ``x`` raw (:meth:`fit` then changes nothing); ``time_code=False`` passes the
    phase on as one scalar: the two ablations docs/RL.md measures.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        episode_steps: int = EPISODE_STEPS,
        standardise: bool = True,
        time_code: bool = True,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"ObservationCode: expected a vector observation with the phase last, found {observation_space}"
            )
        dim = int(observation_space.shape[0]) - 1
        super().__init__(observation_space, dim + (time_code_dim(episode_steps) if time_code else 1))
        self.episode_steps = int(episode_steps)
        self.standardise = bool(standardise)
        self.use_time_code = bool(time_code)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("periods", torch.tensor(PERIODS, dtype=torch.float32))

    def fit(self, observations: np.ndarray) -> None:
        """Standardisation statistics from ``observations`` ``(N, dim + 1)`` (the phase column is ignored)."""
        x = torch.as_tensor(np.asarray(observations)[:, :-1], dtype=torch.float32)
        if x.shape[1] != self.mean.shape[0] or len(x) < 2:
            raise ValueError(
                f"ObservationCode.fit: expected (N >= 2, {self.mean.shape[0] + 1}) observations, "
                f"found {tuple(np.shape(observations))}"
            )
        if not self.standardise:
            return
        self.mean.copy_(x.mean(0).to(self.mean.device))
        self.std.copy_(x.std(0).clamp_min(MIN_STD).to(self.std.device))

    def time_code(self, phase: torch.Tensor) -> torch.Tensor:
        step = torch.round(phase * self.episode_steps)
        bins = -(-self.episode_steps // BIN_STEPS)
        index = (step // BIN_STEPS).clamp(0, bins - 1).long()
        one_hot = torch.nn.functional.one_hot(index, bins).to(phase.dtype)
        angle = 2 * torch.pi * step[:, None] / self.periods
        return torch.cat([one_hot, torch.sin(angle), torch.cos(angle)], dim=1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x, phase = observations[:, :-1], observations[:, -1]
        time = self.time_code(phase) if self.use_time_code else phase[:, None]
        return torch.cat([(x - self.mean) / self.std, time], dim=1)


def make_policy(
    venv: VecEnv,
    net: tuple[int, ...],
    log_std_init: float,
    seed: int,
    device: torch.device | str,
    standardise: bool = True,
    time_code: bool = True,
    **ppo: Any,
) -> PPO:
    """A fresh PPO model with the hammer policy on ``venv`` (its observation must end with the phase)."""
    return PPO(
        "MlpPolicy",
        venv,
        seed=seed,
        device=device,
        verbose=0,
        policy_kwargs={
            "net_arch": list(net),
            "log_std_init": log_std_init,
            "features_extractor_class": ObservationCode,
            "features_extractor_kwargs": {"standardise": standardise, "time_code": time_code},
        },
        **ppo,
    )


def observation_code(model: PPO) -> ObservationCode:
    """The policy's input layer (its statistics), with a clear error for a policy without one."""
    extractor = model.policy.features_extractor
    if not isinstance(extractor, ObservationCode):
        raise ValueError(
            f"expected a funk_rl hammer policy (ObservationCode input layer), found {type(extractor).__name__}"
        )
    return extractor
