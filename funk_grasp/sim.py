"""A physics-simulated parallel-jaw grasp: table, one object, a two-finger gripper, a top-down camera.

:class:`GraspScene` compiles one MuJoCo model per object placement, drops the
object onto the table and lets it settle, renders the top-down image, then
runs any number of grasp attempts from that settled state. Each attempt is
approach, descend, close, lift, shake and hold; the label comes from the
physics (is the object clear of the table and still held at the end), never
from a geometric rule.

Conventions:

- The camera is orthographic and looks straight down, so a pixel maps to one
  table position at any height: image right is world +x, image up is world
  +y, ``(0, 0)`` the top-left corner of the top-left pixel.
- A grasp angle is the direction of the closing axis (the line between the
  fingers) in the image, counter-clockwise from image right as a person sees
  the picture, in radians; ``angle`` and ``angle + pi`` are the same grasp.
- The gripper is a free body welded to a mocap target (so contacts push back
  on it instead of teleporting through the object), gravity-compensated, with
  two fingers on slide joints under force-limited position actuators. It
  stops descending when its fingers meet something, as a robot with a
  force-torque sensor would.

The gripper's geoms are in geom group 3, which the camera does not draw: the
image shows the scene before the grasp, as in Pinto and Gupta's data.

Contacts use MuJoCo's convex hulls of the procedural meshes: a cup collides
as a solid, a curved handle as its hull. See docs/GRASP.md for how that and
the rest differ from a real robot.
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from funk_perception.data.objects import ObjectModel

GRIPPER_GROUP = 3
OBJECT_BODY = "object"
HAND_BODY = "hand"
CAMERA = "top"


@dataclass(frozen=True)
class GraspSimConfig:
    """Scene, gripper and attempt settings; the defaults are the dataset's."""

    image_size: int = 448  # top-down image side, pixels
    workspace: float = 0.7  # metres of table across the image
    timestep: float = 0.002
    control_steps: int = 5  # physics steps per control update (10 ms)
    max_opening: float = 0.11  # distance between the finger pads when open, metres
    finger_force: float = 20.0  # newtons each finger squeezes with at most
    finger_friction: float = 1.0
    object_friction: float = 0.8
    mass_range: tuple[float, float] = (0.05, 0.5)  # kg, sampled per placement
    drop_height: float = 0.01  # metres above the resting height the object is released from
    settle_time: float = 1.2  # seconds the object settles before the image is taken
    grasp_depth: float = 0.03  # how far below the local top surface the finger tips aim
    min_tip_height: float = 0.004  # the finger tips never aim lower than this above the table
    approach_clearance: float = 0.06  # start this far above the highest surface under the gripper
    descend_speed: float = 0.3  # m/s
    close_time: float = 0.5
    lift_height: float = 0.15
    lift_speed: float = 0.25
    shake_time: float = 0.6
    shake_amplitude: float = 0.02  # metres, sideways
    shake_angle: float = 20.0  # degrees of wrist turn
    hold_time: float = 0.3
    contact_stop_force: float = 2.0  # newtons on the fingers or palm that stop the descent
    clear_height: float = 0.01  # success: the object's lowest point ends this far above the table, held by both fingers
    min_inertia_radius: float = 0.01  # metres; thin shells get at least mass * r^2 of inertia (stable simulation)

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise ValueError(f"GraspSimConfig.image_size: expected >= 32 px, found {self.image_size}")
        if not 0.0 < self.clear_height < self.lift_height:
            raise ValueError(
                f"GraspSimConfig.clear_height: expected 0 < clear_height < lift_height ({self.lift_height}), "
                f"found {self.clear_height}"
            )
        lo, hi = self.mass_range
        if not 0.0 < lo <= hi:
            raise ValueError(f"GraspSimConfig.mass_range: expected 0 < lo <= hi, found {self.mass_range}")

    @property
    def metres_per_pixel(self) -> float:
        return self.workspace / self.image_size


@dataclass(frozen=True)
class GraspOutcome:
    """What happened in one attempt."""

    success: bool
    rise: float  # metres the object's centre of mass rose, at the end
    clearance: float  # metres between the object's lowest point and the table, at the end
    touched: bool  # the fingers met something during the descent (and stopped there)
    tip_height: float  # metres above the table the finger tips reached
    opening: float  # finger pad gap at the end, metres (0 = closed on nothing)
    diverged: bool = False  # MuJoCo found the simulation unstable (counted as a failure)


@dataclass(frozen=True)
class TopDownView:
    """The image the grasp is planned on."""

    rgb: np.ndarray  # (H, W, 3) uint8
    height: np.ndarray  # (H, W) float32 metres above the table of the top surface
    mask: np.ndarray  # (H, W) bool, the object


def _quat_z(angle: float) -> np.ndarray:
    return np.array([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])


def _gripper_xml(config: GraspSimConfig) -> str:
    half_open = config.max_opening / 2
    pad = 0.008  # finger half thickness along the closing axis
    finger = (
        f'type="box" size="0.012 {pad} 0.025" pos="0 0 0.025" group="{GRIPPER_GROUP}" mass="0.05" '
        f'friction="{config.finger_friction} 0.02 0.0002" condim="4" solref="0.004 1"'
    )
    force = config.finger_force
    return f"""
    <body name="hand_target" mocap="true" pos="0 0 0.5"/>
    <body name="{HAND_BODY}" pos="0 0 0.5" gravcomp="1">
      <freejoint name="hand"/>
      <geom name="palm" type="box" size="0.015 {half_open + 2 * pad + 0.01} 0.01" pos="0 0 0.06"
            group="{GRIPPER_GROUP}" mass="0.4"/>
      <body name="finger_left" pos="0 {half_open + pad} 0" gravcomp="1">
        <joint name="finger_left" type="slide" axis="0 -1 0" range="0 {half_open}" damping="5" armature="0.01"/>
        <geom name="finger_left" {finger}/>
      </body>
      <body name="finger_right" pos="0 {-half_open - pad} 0" gravcomp="1">
        <joint name="finger_right" type="slide" axis="0 1 0" range="0 {half_open}" damping="5" armature="0.01"/>
        <geom name="finger_right" {finger}/>
      </body>
    </body>
  </worldbody>
  <equality>
    <weld body1="{HAND_BODY}" body2="hand_target" solref="0.01 1"/>
  </equality>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="400" ctrlrange="0 {half_open + 0.01}"
              forcelimited="true" forcerange="{-force} {force}"/>
    <position name="finger_right" joint="finger_right" kp="400" ctrlrange="0 {half_open + 0.01}"
              forcelimited="true" forcerange="{-force} {force}"/>
  </actuator>"""


def _scene_xml(config: GraspSimConfig, rng: np.random.Generator) -> str:
    c1, c2 = rng.uniform(0.25, 0.85, 3), rng.uniform(0.25, 0.85, 3)
    light = rng.uniform(-0.5, 0.5, 2)
    return f"""<mujoco model="funk_grasp">
  <option timestep="{config.timestep}" cone="elliptic" impratio="10" integrator="implicitfast"/>
  <visual>
    <global offwidth="{config.image_size}" offheight="{config.image_size}"/>
    <quality shadowsize="64" offsamples="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4" specular="0.1 0.1 0.1"/>
  </visual>
  <asset>
    <texture name="table" type="2d" builtin="checker" width="64" height="64"
             rgb1="{c1[0]:.3f} {c1[1]:.3f} {c1[2]:.3f}" rgb2="{c2[0]:.3f} {c2[1]:.3f} {c2[2]:.3f}"/>
    <material name="table" texture="table" texrepeat="{rng.uniform(4, 16):.2f} {rng.uniform(4, 16):.2f}"/>
  </asset>
  <worldbody>
    <light pos="{light[0]:.3f} {light[1]:.3f} 2" dir="{-light[0]:.3f} {-light[1]:.3f} -2" directional="true"
           castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="table" type="plane" size="1 1 0.05" material="table" condim="6"
          friction="{config.object_friction} 0.01 0.002"/>
    <camera name="{CAMERA}" pos="0 0 1.2" projection="orthographic" fovy="{config.workspace}"/>
    {_gripper_xml(config)}
</mujoco>"""


class GraspScene:
    """One object placed on the table: a settled state, its top-down view, and grasp attempts from it."""

    def __init__(
        self,
        obj: ObjectModel,
        rng: np.random.Generator,
        config: GraspSimConfig | None = None,
        position: tuple[float, float] | None = None,
        yaw: float | None = None,
    ) -> None:
        self.config = config = config or GraspSimConfig()
        self.category = obj.category
        spec = mujoco.MjSpec.from_string(_scene_xml(config, rng))
        materials = {}
        for i, part in enumerate(obj.parts):
            mat = spec.add_material()
            mat.name = f"part_{i}"
            mat.rgba = [*rng.uniform(0.05, 0.95, 3), 1.0]
            mat.specular = float(rng.uniform(0.0, 0.5))
            materials[part] = mat.name
        body = spec.worldbody.add_body()
        body.name = OBJECT_BODY
        body.add_freejoint()
        obj.add_to_spec(spec, body, materials, prefix="obj")
        for geom in body.geoms:  # the object library builds visual-only geoms; here they collide
            geom.contype = geom.conaffinity = 1
            geom.friction = [config.object_friction, 0.01, 0.0002]
        model = spec.compile()
        self.model = model
        self.data = mujoco.MjData(model)
        self._object = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, OBJECT_BODY)
        self._hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, HAND_BODY)
        self._hand_qpos = model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "hand")]
        self._object_qpos = model.jnt_qposadr[model.body_jntadr[self._object]]
        self._fingers = [
            model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)]
            for n in ("finger_left", "finger_right")
        ]
        self._gripper_geoms = set(np.flatnonzero(model.geom_group == GRIPPER_GROUP).tolist())
        self._finger_geoms = {
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("finger_left", "finger_right")
        }
        self._object_geoms = set(np.flatnonzero(model.geom_bodyid == self._object).tolist())
        self._table = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "table")
        model.light_castshadow[:] = 0
        # The object library's mesh inertia is a shell of unit density; give the object a plausible mass.
        mass = float(rng.uniform(*config.mass_range))
        scale = mass / float(model.body_mass[self._object])
        model.body_mass[self._object] *= scale
        model.body_inertia[self._object] = np.maximum(
            model.body_inertia[self._object] * scale, mass * config.min_inertia_radius**2
        )
        self.mass = mass
        if position is None:
            position = tuple(rng.uniform(-0.06, 0.06, 2))
        self.yaw = float(rng.uniform(0, 2 * math.pi) if yaw is None else yaw)
        self._settle(np.asarray(position, dtype=np.float64))

    # ------------------------------------------------------------------ placement

    def _park_hand(self, position: np.ndarray, yaw: float) -> None:
        d = self.data
        quat = _quat_z(yaw)
        d.mocap_pos[0], d.mocap_quat[0] = position, quat
        d.qpos[self._hand_qpos : self._hand_qpos + 3] = position
        d.qpos[self._hand_qpos + 3 : self._hand_qpos + 7] = quat

    def _settle(self, position: np.ndarray) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._park_hand(np.array([0.0, 0.0, 1.0]), 0.0)
        q = self._object_qpos
        d.qpos[q + 3 : q + 7] = _quat_z(self.yaw)
        d.qpos[q : q + 2] = position
        d.qpos[q + 2] = 0.0
        mujoco.mj_forward(m, d)
        # lift the object until its lowest geom point clears the table by drop_height
        lowest = min(self._geom_bottom(g) for g in self._object_geoms)
        d.qpos[q + 2] = self.config.drop_height - lowest
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, int(round(self.config.settle_time / m.opt.timestep)))
        self.settled_qpos = d.qpos.copy()
        self.rest_height = float(d.xipos[self._object][2])
        self.settled_speed = float(np.linalg.norm(d.qvel[m.body_dofadr[self._object] :][:6]))

    def _geom_bottom(self, geom: int) -> float:
        """World z of the lowest point of a geom (mesh vertices exactly, primitives by their bounding box)."""
        m, d = self.model, self.data
        if m.geom_type[geom] == mujoco.mjtGeom.mjGEOM_MESH:
            mesh = m.geom_dataid[geom]
            start, count = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
            verts = m.mesh_vert[start : start + count].astype(np.float64)
            world = verts @ d.geom_xmat[geom].reshape(3, 3).T + d.geom_xpos[geom]
            return float(world[:, 2].min())
        half = m.geom_aabb[geom][3:]
        corners = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * 2 - 1
        local = corners * half + m.geom_aabb[geom][:3]
        world = local @ d.geom_xmat[geom].reshape(3, 3).T + d.geom_xpos[geom]
        return float(world[:, 2].min())

    @property
    def object_position(self) -> np.ndarray:
        """Settled object position (body origin), world metres."""
        q = self._object_qpos
        return self.settled_qpos[q : q + 3].copy()

    # ------------------------------------------------------------------ camera

    def pixel_to_world(self, x: float, y: float) -> np.ndarray:
        """Image pixel (x right, y down) -> table position (x, y) in metres."""
        s, half = self.config.metres_per_pixel, self.config.image_size / 2
        return np.array([(x - half) * s, (half - y) * s])

    def world_to_pixel(self, point: np.ndarray) -> np.ndarray:
        s, half = self.config.metres_per_pixel, self.config.image_size / 2
        return np.array([point[0] / s + half, half - point[1] / s])

    def render(self) -> TopDownView:
        """The top-down RGB, per-pixel surface height above the table, and the object mask, of the settled scene."""
        m, d = self.model, self.data
        d.qpos[:] = self.settled_qpos
        d.qvel[:] = 0
        mujoco.mj_forward(m, d)
        size = self.config.image_size
        option = mujoco.MjvOption()
        option.geomgroup[GRIPPER_GROUP] = 0
        with mujoco.Renderer(m, size, size) as renderer:
            renderer.update_scene(d, camera=CAMERA, scene_option=option)
            rgb = renderer.render().copy()
            renderer.enable_depth_rendering()
            renderer.update_scene(d, camera=CAMERA, scene_option=option)
            depth = renderer.render().copy()
            renderer.disable_depth_rendering()
            renderer.enable_segmentation_rendering()
            renderer.update_scene(d, camera=CAMERA, scene_option=option)
            seg = renderer.render().copy()
        cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        height = (m.cam_pos[cam][2] - depth).astype(np.float32)
        height = np.clip(height, 0.0, None)
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        mask = is_geom & np.isin(seg[..., 0], list(self._object_geoms))
        return TopDownView(rgb, height, mask)

    # ------------------------------------------------------------------ attempts

    def grasp_heights(self, height: np.ndarray, x: float, y: float, angle: float) -> tuple[float, float]:
        """(surface, clearance) heights for a grasp read off a height map, as :meth:`attempt` takes them.

        ``surface``: the highest point within a finger's half width of the grasp
        point; ``clearance``: the highest point under the open gripper's footprint
        (the segment between and including the fingers).
        """
        cfg = self.config
        per_px = 1.0 / cfg.metres_per_pixel
        h, w = height.shape
        reach = (cfg.max_opening / 2 + 0.016) * per_px
        across = 0.012 * per_px
        along = np.linspace(-reach, reach, max(3, int(2 * reach)))
        side = np.linspace(-across, across, max(3, int(2 * across)))
        a, s = np.meshgrid(along, side)
        # image y points down: a counter-clockwise image angle moves up, that is towards smaller y
        px = np.clip(np.round(x + a * math.cos(angle) - s * math.sin(angle)).astype(int), 0, w - 1)
        py = np.clip(np.round(y - a * math.sin(angle) - s * math.cos(angle)).astype(int), 0, h - 1)
        clearance = float(height[py, px].max())
        near = np.abs(a) <= across
        surface = float(height[py[near], px[near]].max())
        return surface, clearance

    def _gripper_contact_force(self) -> float:
        """Largest normal force between a gripper geom and anything else."""
        m, d = self.model, self.data
        force = np.zeros(6)
        best = 0.0
        for i in range(d.ncon):
            c = d.contact[i]
            a, b = int(c.geom1), int(c.geom2)
            if (a in self._gripper_geoms) == (b in self._gripper_geoms):
                continue
            mujoco.mj_contactForce(m, d, i, force)
            best = max(best, float(force[0]))
        return best

    def _fingers_holding(self) -> bool:
        """Both finger pads touch the object."""
        d = self.data
        touching = set()
        for i in range(d.ncon):
            a, b = int(d.contact[i].geom1), int(d.contact[i].geom2)
            for finger, other in ((a, b), (b, a)):
                if finger in self._finger_geoms and other in self._object_geoms:
                    touching.add(finger)
        return len(touching) == 2

    def _run(self, seconds: float, target: callable, grip: float) -> None:
        m, d = self.model, self.data
        steps = max(1, int(round(seconds / (m.opt.timestep * self.config.control_steps))))
        d.ctrl[:] = grip
        for k in range(steps):
            pos, yaw = target((k + 1) / steps)
            d.mocap_pos[0] = pos
            d.mocap_quat[0] = _quat_z(yaw)
            mujoco.mj_step(m, d, self.config.control_steps)

    def attempt(self, x: float, y: float, angle: float, surface_height: float, clearance_height: float) -> GraspOutcome:
        """Grasp at image pixel (x, y) with the closing axis at ``angle`` (radians, image convention).

        ``surface_height``: top of the surface at the grasp point (the finger
        tips aim ``grasp_depth`` below it); ``clearance_height``: the highest
        surface under the open gripper (the approach starts above it). Both are
        read off the top-down height map by the caller, as a robot would read
        them off its depth camera.
        """
        cfg, m, d = self.config, self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[:] = self.settled_qpos
        xy = self.pixel_to_world(x, y)
        # image up is world +y, so an image angle is the same angle in the world; the fingers close along hand y
        yaw = float(angle) - math.pi / 2
        start_z = clearance_height + cfg.approach_clearance
        self._park_hand(np.array([xy[0], xy[1], start_z]), yaw)
        d.qpos[self._fingers] = 0.0
        mujoco.mj_forward(m, d)
        tip_z = max(surface_height - cfg.grasp_depth, cfg.min_tip_height)

        # descend until the tips reach tip_z or the fingers meet something
        touched = False
        hand = np.array([xy[0], xy[1], start_z])
        speed = cfg.descend_speed * m.opt.timestep * cfg.control_steps
        d.ctrl[:] = 0.0
        while hand[2] > tip_z:
            hand[2] = max(hand[2] - speed, tip_z)
            d.mocap_pos[0] = hand
            mujoco.mj_step(m, d, cfg.control_steps)
            if self._gripper_contact_force() > cfg.contact_stop_force:
                touched = True
                hand = d.xpos[self._hand].copy()
                d.mocap_pos[0] = hand
                break
        reached = float(d.xpos[self._hand][2])

        closed = cfg.max_opening / 2 + 0.01
        self._run(cfg.close_time, lambda t: (hand, yaw), closed)
        lift = cfg.lift_height
        self._run(lift / cfg.lift_speed, lambda t: (hand + [0, 0, lift * t], yaw), closed)
        top = hand + [0, 0, lift]
        amp, turn = cfg.shake_amplitude, math.radians(cfg.shake_angle)
        direction = np.array([math.cos(yaw), math.sin(yaw), 0.0])

        def shake(t: float) -> tuple[np.ndarray, float]:
            wave = math.sin(2 * math.pi * 2 * t)  # two full cycles
            return top + amp * wave * direction, yaw + turn * wave

        self._run(cfg.shake_time, shake, closed)
        self._run(cfg.hold_time, lambda t: (top, yaw), closed)
        rise = float(d.xipos[self._object][2]) - self.rest_height
        clearance = min(self._geom_bottom(g) for g in self._object_geoms)
        gap = cfg.max_opening - float(d.qpos[self._fingers].sum())
        # MuJoCo resets a diverged simulation and carries on; never call that a success
        diverged = any(
            d.warning[w].number
            for w in (
                mujoco.mjtWarning.mjWARN_BADQACC,
                mujoco.mjtWarning.mjWARN_BADQVEL,
                mujoco.mjtWarning.mjWARN_BADQPOS,
            )
        )
        success = not diverged and clearance > cfg.clear_height and self._fingers_holding()
        return GraspOutcome(bool(success), rise, clearance, touched, reached, max(gap, 0.0), bool(diverged))


__all__ = ["GraspOutcome", "GraspScene", "GraspSimConfig", "TopDownView"]
