"""A scripted state-based expert for ``AdroitHandHammer-v1``: successful demonstrations without downloads.

Why it exists: the hand_dapg human demonstrations cannot be downloaded here, and
PPO on the 46-d state learned nothing in 100k steps (0 % success), so the
expert -> demonstrations -> behaviour-cloning path had no successful episode to
learn from. This controller reads the simulator (the unwrapped environment's
MuJoCo model and data) and writes the environment's normalised 26-d action,
deterministically; it succeeds by funk_rl's DAPG rule (``HammerTask``) on every
seeded episode measured (docs/RL.md).

The phases, by step of the episode (the hammer always starts at the same place;
only the board's height is random):

1. **reach** (steps 0-14): arm pitched fully down, wrist straight, hand open,
   so the palm comes down over the handle.
2. **grasp** (15-34): the four fingers flex round the handle's far side and the
   thumb presses its near side (the handle lies on the table, so the fingers
   cannot wrap under it: this is a pinch that the lift turns into a grip).
3. **lift** (35-49): the arm pitches up with the hand closed.
4. **aim and strike** (50-199): differential inverse kinematics on the two arm
   and two wrist joints moves the hammer head's centre, treated as a point
   fixed to the palm (``mj_jac`` on the palm body), to a point
   ``back`` metres out along the nail's axis (aim), and from step 80 on
   alternates every ``period // 2`` steps between one ``depth``
   metres behind the nail's goal, inside the board (so that each swing drives
   the nail instead of stopping at it: a point 1 cm past the nail's head drove
   it 4.2-5.5 cm of the 8.1 needed), and the aiming point. Once the nail is in
   (within its goal) the head stays at the aiming point. The nail stops at
   8.2 cm, where its joint limit's 1 cm margin starts, just past the 8.1 cm
   the goal needs.

Joint targets become actions through the actuators' affine law
(``force = gain * ctrl - kp * q``, so ``ctrl = (kp * q_target + gravity) / gain``,
the gravity and Coriolis term being MuJoCo's ``qfrc_bias``) and the
environment's ``ctrl = act_mean + action * act_rng``. A ctrl is not a joint
position for the arm: at rest its joints sit at ``gain / kp = 2.5`` times the
ctrl (less gravity's share), so ``ctrl = q_target`` would send it 2.5x as far.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from funk_rl.envs import ACTION_DIM

# Indices in qpos / actuators (the first 26 coincide): arm pitch and yaw, wrist deviation and flexion,
# the flexion joints (J2, J1, J0) of the four fingers, the thumb's five joints.
_ARM_WRIST = slice(0, 4)
_FINGER_FLEXION = (5, 9, 13, 18)
_THUMB = slice(21, 26)


@dataclass(frozen=True)
class ScriptedConfig:
    """The controller's constants; the defaults are the ones measured in docs/RL.md."""

    reach_steps: int = 15
    grasp_steps: int = 20
    lift_steps: int = 15
    first_strike: int = 80
    period: int = 20
    #: Arm pitch, arm yaw, wrist deviation, wrist flexion while reaching (pitch at the limit that lowers the arm).
    reach_pose: tuple[float, float, float, float] = (0.25, 0.0, 0.0, 0.0)
    lift_pitch: float = 0.0
    #: MCP, PIP, DIP flexion of each finger, and the thumb's five joints (THJ4..THJ0) in the grasp.
    finger_flexion: tuple[float, float, float] = (1.3, 1.0, 0.6)
    thumb: tuple[float, float, float, float, float] = (0.6, 1.309, 0.262, 0.524, -0.5)
    #: Aiming point: the head's centre this far out along the nail's axis from the nail's head.
    back: float = 0.12
    #: Striking point: this far behind the nail's goal (into the board) along its axis.
    depth: float = 0.04
    damping: float = 1e-3


class ScriptedHammerExpert:
    """Deterministic phased controller for one hammer environment (any wrapper of ``AdroitHandHammer-v1``).

    Call :meth:`reset` after each ``env.reset`` and :meth:`act` before each
    ``env.step``; it reads the simulator's state, not the observation (the
    argument is there so that it has the interface of the recorder's experts).
    """

    def __init__(self, env: gym.Env, config: ScriptedConfig | None = None) -> None:
        self.config = config or ScriptedConfig()
        self.sim = env.unwrapped
        model = self.sim.model
        self.model, self.data = model, self.sim.data
        self._palm = model.body("palm").id
        self._head = model.geom("head").id
        self._nail = model.site("S_target").id
        self._goal = model.site("nail_goal").id
        self._gain = model.actuator_gainprm[:ACTION_DIM, 0].copy()
        self._kp = -model.actuator_biasprm[:ACTION_DIM, 1].copy()
        self._low, self._high = model.jnt_range[_ARM_WRIST, 0].copy(), model.jnt_range[_ARM_WRIST, 1].copy()
        self._step = 0
        self._rest = self.data.qpos[:ACTION_DIM].copy()

    def reset(self) -> None:
        """Start a new episode (the phases are counted from here)."""
        self._step = 0
        self._rest = self.data.qpos[:ACTION_DIM].copy()

    def nail_in(self) -> bool:
        """The package's per-step success test: the nail's head within 1 cm of its goal."""
        data = self.data
        return bool(np.linalg.norm(data.site_xpos[self._nail] - data.site_xpos[self._goal]) < 0.01)

    def _head_target(self, step: int) -> np.ndarray:
        c, data = self.config, self.data
        axis = data.site_xmat[self._nail].reshape(3, 3)[:, 2]  # out of the board, along the nail
        aim = data.site_xpos[self._nail] + axis * c.back
        swinging = step >= c.first_strike and (step - c.first_strike) % c.period < c.period // 2
        if not swinging or self.nail_in():
            return aim
        return data.site_xpos[self._goal] - axis * c.depth

    def _ik_step(self, target: np.ndarray) -> np.ndarray:
        model, data = self.model, self.data
        point = data.geom_xpos[self._head].copy()
        jacp = np.zeros((3, model.nv))
        mujoco.mj_jac(model, data, jacp, None, point, self._palm)
        jac = jacp[:, _ARM_WRIST]
        delta = jac.T @ np.linalg.solve(jac @ jac.T + self.config.damping * np.eye(3), target - point)
        return np.clip(data.qpos[_ARM_WRIST] + delta, self._low, self._high)

    def _joint_targets(self, step: int, rest: np.ndarray) -> np.ndarray:
        # Each phase keeps the targets the earlier ones set, so the targets at ``step`` follow from the
        # step, the joint positions at the episode's start (``rest``: the same every episode) and, from the
        # aim on, the current simulator state; nothing else of the episode's past.
        c, q = self.config, rest.copy()
        grasp_at = c.reach_steps
        lift_at = grasp_at + c.grasp_steps
        aim_at = lift_at + c.lift_steps
        q[_ARM_WRIST] = c.reach_pose
        if step >= grasp_at:
            for first in _FINGER_FLEXION:
                q[first : first + 3] = c.finger_flexion
            q[_THUMB] = c.thumb
        if step >= lift_at:
            q[0] = c.lift_pitch
        if step >= aim_at:
            q[_ARM_WRIST] = self._ik_step(self._head_target(step))
        return q

    def label(self, step: int, rest: np.ndarray | None = None) -> np.ndarray:
        """The expert's action, (26,) float32 in [-1, 1], in the simulator's current state at episode step ``step``.

        A pure function of the simulator state, ``step`` and ``rest`` (the actuated joints' positions at
        the episode's reset, default: the ones :meth:`reset` saw); it changes nothing, so it labels any
        state a learner visits (DAgger, :mod:`funk_rl.dagger`).
        """
        target = self._joint_targets(int(step), self._rest if rest is None else np.asarray(rest, dtype=np.float64))
        ctrl = (self._kp * target + self.data.qfrc_bias[:ACTION_DIM]) / self._gain
        action = (ctrl - self.sim.act_mean) / self.sim.act_rng
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def act(self, observation: np.ndarray | None = None) -> np.ndarray:
        """The next action, (26,) float32 in [-1, 1]: :meth:`label` at this episode's step count, then the count advances."""
        action = self.label(self._step)
        self._step += 1
        return action


#: An action of NaNs asks :class:`ExpertLabels` to execute the expert's own action (DAgger's beta-mixing).
EXPERT_ACTION = float("nan")


class ExpertLabels(gym.Wrapper):
    """Label every state with the scripted expert's action: ``info["expert_action"]`` of a step is the expert's
    action in the state the step started from (the one the policy saw), ``info["episode_step"]`` that state's step.

    The wrapper counts the episode's steps itself (the expert's phases are timed by them). An action that
    is all NaN (:data:`EXPERT_ACTION`) is replaced by the expert's: per-step mixing without a round trip.
    """

    def __init__(self, env: gym.Env, config: ScriptedConfig | None = None) -> None:
        super().__init__(env)
        self.expert = ScriptedHammerExpert(env, config)
        self.episode_step = 0

    def reset(self, **kwargs):  # type: ignore[no-untyped-def]
        out = self.env.reset(**kwargs)
        self.expert.reset()
        self.episode_step = 0
        return out

    def step(self, action: np.ndarray):  # type: ignore[no-untyped-def]
        label = self.expert.label(self.episode_step)
        action = np.asarray(action, dtype=np.float32)
        if np.isnan(action).all():
            action = label
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "expert_action": label, "episode_step": self.episode_step}
        self.episode_step += 1
        return obs, reward, terminated, truncated, info
