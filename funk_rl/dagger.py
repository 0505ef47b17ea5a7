"""DAgger (Ross, Gordon and Bagnell 2011) for ADROIT hammering with the DAPG expert as the queried expert.

Iteration 0 is behaviour cloning on the expert's demonstrations. Each later iteration ``i`` rolls out the
current policy (deterministic; with probability ``beta * beta_decay ** (i - 1)`` per step the expert's
action is executed instead), labels every visited state with the expert's action in that state
(:class:`funk_rl.envs.ExpertLabels`, computed in the worker that holds the simulator), adds the pairs to
the aggregate and refits the policy on all of it from the same initialisation (:func:`fit_policy`). The
aggregate holds encoder features, not frames, so memory grows by ``26 + dim`` floats per visited step.

``python -m funk_rl.train_hammer`` runs it (``--dagger-iterations``); this module holds the algorithm.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from funk_rl.bc import behaviour_clone
from funk_rl.policy import make_policy, observation_code


@dataclass(frozen=True)
class FitConfig:
    """Behaviour cloning of a fresh policy: network, epochs, batch and step size (MSE on the mean)."""

    net: tuple[int, ...] = (256, 256)
    log_std_init: float = -2.0
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    standardise: bool = True
    time_code: bool = True


def beta_at(beta: float, beta_decay: float, iteration: int) -> float:
    """The expert's share of the executed actions in DAgger iteration ``iteration`` (>= 1)."""
    return float(beta) * float(beta_decay) ** (iteration - 1)


def aggregate(data: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All (observation, expert label) pairs of the demonstrations and DAgger iterations so far."""
    return np.concatenate([d["obs"] for d in data]), np.concatenate([d["labels"] for d in data])


def fit_policy(
    venv: VecEnv,
    observations: np.ndarray,
    labels: np.ndarray,
    config: FitConfig,
    seed: int,
    device: torch.device | str,
) -> tuple[PPO, list[float]]:
    """A fresh policy (the same initialisation for a given ``seed``), its input statistics fitted on
    ``observations``, behaviour-cloned on the pairs; returns it and the loss of each epoch."""
    set_random_seed(seed)
    model = make_policy(
        venv,
        config.net,
        config.log_std_init,
        seed,
        device,
        config.standardise,
        config.time_code,
        n_steps=64,
        batch_size=64,
    )
    observation_code(model).fit(observations)
    losses = behaviour_clone(
        model,
        observations,
        labels,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.learning_rate,
        seed=seed,
        loss="mse",
    )
    return model, losses


def main(argv: Sequence[str] | None = None) -> int:
    """The former ``python -m funk_rl.dagger`` command: its work is train_hammer's default recipe now."""
    print(
        "error: python -m funk_rl.dagger is replaced by python -m funk_rl.train_hammer, whose default recipe is "
        "behaviour cloning then DAgger with the DAPG expert (--dagger-iterations, --dagger-episodes)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
