"""PPO fine-tuning that keeps a decaying behaviour-cloning term: DAPG's augmented policy gradient
(Rajeswaran et al. 2018) on stable-baselines3's PPO.

DAPG adds to the policy gradient a behaviour-cloning gradient on the demonstrations, weighted
``lambda0 * lambda1 ** k`` at update ``k``, so that early updates, whose advantages come from an untrained
value function, cannot erase what behaviour cloning learned (without it, the PPO runs in docs/RL.md fell
from the BC policy's success to 0 within the first updates). Here each PPO update is followed by
``bc_batches`` gradient steps on ``bc_weight * bc_decay ** k`` times the behaviour-cloning loss of a batch of
the demonstration (and DAgger) pairs, through PPO's own optimiser: the same two gradients, alternated
rather than summed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO

from funk_rl.bc import bc_loss


class PPOWithDemos(PPO):
    """PPO plus DAPG's decaying behaviour-cloning term; :meth:`set_demonstrations` before ``learn``.

    ``updates`` (saved with the model) counts the updates so far, so a resumed run continues the decay.
    """

    def __init__(
        self, *args: Any, bc_weight: float = 1.0, bc_decay: float = 0.95, bc_batches: int = 4, **kwargs: Any
    ) -> None:
        self.bc_weight = float(bc_weight)
        self.bc_decay = float(bc_decay)
        self.bc_batches = int(bc_batches)
        self.updates = 0
        self._demo_obs: torch.Tensor | None = None
        self._demo_actions: torch.Tensor | None = None
        self._bc_generator = torch.Generator()
        super().__init__(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_demo_obs", "_demo_actions", "_bc_generator"]

    def set_demonstrations(self, observations: np.ndarray, actions: np.ndarray, seed: int = 0) -> None:
        if len(observations) != len(actions) or len(observations) == 0:
            raise ValueError(
                f"set_demonstrations: expected as many observations as actions (>= 1), found "
                f"{len(observations)} and {len(actions)}"
            )
        self._demo_obs = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        self._demo_actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        self._bc_generator = torch.Generator().manual_seed(seed)

    def bc_coefficient(self) -> float:
        """The BC term's weight at the next update (DAPG's lambda0 * lambda1 ** k)."""
        return self.bc_weight * self.bc_decay**self.updates

    def train(self) -> None:
        if self._demo_obs is None or self._demo_actions is None:
            raise RuntimeError("PPOWithDemos: call set_demonstrations before learn")
        super().train()
        weight = self.bc_coefficient()
        losses = []
        self.policy.set_training_mode(True)
        for _ in range(self.bc_batches):
            index = torch.randint(len(self._demo_obs), (self.batch_size,), generator=self._bc_generator)
            index = index.to(self.device)
            loss = bc_loss(self, self._demo_obs[index], self._demo_actions[index])
            self.policy.optimizer.zero_grad()
            (weight * loss).backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(float(loss.detach()))
        self.policy.set_training_mode(False)
        self.updates += 1
        self.logger.record("train/bc_weight", weight)
        self.logger.record("train/bc_mse", float(np.mean(losses)))
