"""Behaviour cloning of a stable-baselines3 policy on (observation, expert action) pairs, as DAPG and RRL
start from demonstrations and as every DAgger iteration refits its policy.

The default loss is the mean's squared error (``mse``): it weights every action dimension the same. The
Gaussian's likelihood (``nll``) also fits the log-std, which suits a policy that PPO then explores with,
but weights each dimension by the inverse of one state-independent variance.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO

BC_LOSSES = ("nll", "mse")


def behaviour_clone(
    model: PPO,
    observations: np.ndarray,
    actions: np.ndarray,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    loss: str = "mse",
) -> list[float]:
    """Fit ``model.policy`` to (obs, action) pairs; returns the mean loss of each epoch.

    ``loss="nll"``: the Gaussian's negative log-likelihood (mean network and log-std). ``"mse"``: the mean's
    squared error against the actions, every action dimension weighted the same (the NLL weights each by the
    inverse of its learned variance, state-independent, so dimensions whose actions vary much over an
    episode count little everywhere); the log-std keeps its value.
    """
    if loss not in BC_LOSSES:
        raise ValueError(f"behaviour_clone: loss expected one of {', '.join(BC_LOSSES)}, found {loss!r}")
    if len(observations) != len(actions) or len(observations) == 0:
        raise ValueError(
            f"behaviour_clone: expected as many observations as actions (>= 1), found "
            f"{len(observations)} and {len(actions)}"
        )
    expected = model.observation_space.shape
    if observations.shape[1:] != expected:
        raise ValueError(
            f"behaviour_clone: demonstration observations of shape {observations.shape[1:]}, "
            f"the policy expects {expected} (were they made for another --encoder?)"
        )
    policy = model.policy
    device = policy.device
    obs = torch.as_tensor(observations, dtype=torch.float32, device=device)
    act = torch.as_tensor(actions, dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=lr)
    policy.set_training_mode(True)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(obs), batch_size):
            index = order[start : start + batch_size]
            value = bc_loss(model, obs[index], act[index], loss)
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(index)
        history.append(total / len(obs))
    policy.set_training_mode(False)
    return history


def bc_loss(model: PPO, observations: torch.Tensor, actions: torch.Tensor, loss: str = "mse") -> torch.Tensor:
    """The behaviour-cloning loss of ``model.policy`` on one batch (``mse`` or ``nll``, see :func:`behaviour_clone`)."""
    if loss == "mse":
        mean = model.policy.get_distribution(observations).distribution.mean
        return ((mean - actions) ** 2).mean()
    _, log_prob, _ = model.policy.evaluate_actions(observations, actions)
    return -log_prob.mean()
