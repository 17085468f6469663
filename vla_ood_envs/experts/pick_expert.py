"""Scripted expert for VLAPick: a privileged-state policy with the env's own 7-D action.

It plays the demonstrator of the study (docs/study.md section 4) as a careful teleoperator would: a top-down
grasp across the object's narrow side, reach 5 cm above, descend, close, lift 10 cm, carry above the receptacle,
lower until the object is 1.5 cm above it (a round object released higher can roll off), open, retreat. Motion
is smooth: each step's translation is a proportional move capped in speed and in change from the previous step (bounded acceleration), rotations are capped per step, and the gripper toggles
only at grasp and release. A dropped object sends the expert back to re-grasp.

The expert is batched: every quantity is a tensor over the env's sub-scenes, so the same code drives one CPU env
or thousands of GPU envs. It reads the env's privileged state (object/receptacle poses, the controller's target
pose) through the unwrapped task.
"""

from __future__ import annotations

import math

import torch

from mani_skill.utils.geometry.rotation_conversions import quaternion_to_matrix

from .motion import ScriptedExpert, capped_translation, controller_target, gripper_frame, rotation_action

APPROACH, DESCEND, CLOSE, LIFT, CARRY, LOWER, RELEASE, RETREAT = range(8)
PHASE_NAMES = ("approach", "descend", "close", "lift", "carry", "lower", "release", "retreat")

MAX_SPEED = 0.045  # m per control step (0.2 s): 22 cm/s
MAX_ACCEL = 0.015  # change of the per-step translation, m
GAIN = 0.7  # fraction of the remaining distance covered per step before the caps
MAX_ROT = 0.25  # rad per step
PRE_GRASP_HEIGHT = 0.05
LIFT_HEIGHT = 0.10
PLACE_CLEARANCE = 0.015
GRIPPER_WAIT = 2  # steps the gripper gets to close or open
REAPPROACH_DISTANCE = 0.03  # object this far (m, horizontally) from the hand while descending: approach again


def _yaw_of(q: torch.Tensor) -> torch.Tensor:
    return torch.atan2(2 * (q[:, 0] * q[:, 3] + q[:, 1] * q[:, 2]), 1 - 2 * (q[:, 2] ** 2 + q[:, 3] ** 2))


def _wrap_half_pi(a: torch.Tensor) -> torch.Tensor:
    """Wrap an angle to [-pi/2, pi/2): a parallel gripper is symmetric under a half turn."""
    return torch.remainder(a + math.pi / 2, math.pi) - math.pi / 2


def _rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


class PickExpert(ScriptedExpert):
    PHASE_NAMES = PHASE_NAMES

    def __init__(self, max_speed: float = MAX_SPEED, max_accel: float = MAX_ACCEL):
        super().__init__(max_speed, max_accel)

    def _allocate(self, n: int, dev) -> None:
        self.down = torch.zeros((n, 3, 3), device=dev)
        self.grasp_yaw = torch.zeros(n, device=dev)
        self.lift_goal = torch.zeros((n, 3), device=dev)

    def _reset_envs(self, base, env_idx: torch.Tensor) -> None:
        target = self._target_pose(base)
        # Fingers straight down, keeping the start's heading: every goal orientation is a yaw of this. (A perturbed
        # start pose may tilt the hand; the expert levels it first.)
        r = quaternion_to_matrix(target.q)[env_idx]
        down = torch.tensor([0.0, 0.0, -1.0], device=base.device).expand(len(env_idx), 3)
        y = r[:, :, 1].clone()
        y[:, 2] = 0
        y = y / torch.linalg.norm(y, dim=-1, keepdim=True).clamp(min=1e-6)
        self.down[env_idx] = gripper_frame(down, y, base.robot_spec.tcp_approach_axis)

    # ------------------------------------------------------------------ privileged state
    @staticmethod
    def _target_pose(base):
        return controller_target(base)

    @staticmethod
    def _base_offset(base) -> torch.Tensor:
        return base.agent.robot.pose.p

    def _grasp_geometry(self, base):
        obj = base.object_pose()
        assets = base._object_assets
        k = base.target_object
        half = torch.tensor([a.half_extents for a in assets], device=base.device)[k]
        height = base._obj_height[k]
        # Close across the narrow horizontal side of the object's box.
        yaw = _yaw_of(obj.q) + torch.where(half[:, 0] >= half[:, 1], math.pi / 2, 0.0)
        spec = base.robot_spec
        grasp_z = torch.clamp(torch.maximum(height / 2, height - spec.grasp_depth), min=spec.min_grasp_height)
        return obj, yaw, grasp_z, height

    # ------------------------------------------------------------------ policy
    @torch.no_grad()
    def act(self, env) -> torch.Tensor:
        base = env.unwrapped
        dev = base.device
        target = self._target_pose(base)
        tcp_world = base.agent.tcp_pose.p
        offset = self._base_offset(base)
        obj, obj_yaw, grasp_z, obj_h = self._grasp_geometry(base)
        rec = base.receptacle_pose()
        rec_top = rec.p[:, 2] + base._rec_height[base.target_receptacle]
        info = base.evaluate()
        grasped = info["is_grasped"]

        # Opening direction of the start orientation (the tcp's y axis) and the yaw that aligns it to the object.
        y0 = self.down[:, :, 1]
        open0 = torch.atan2(y0[:, 1], y0[:, 0])
        fresh = self.phase <= DESCEND
        self.grasp_yaw = torch.where(fresh, _wrap_half_pi(obj_yaw - open0), self.grasp_yaw)

        p = self.phase
        goal = tcp_world.clone()
        above_obj = torch.stack([obj.p[:, 0], obj.p[:, 1], obj.p[:, 2] + grasp_z + PRE_GRASP_HEIGHT], -1)
        at_obj = torch.stack([obj.p[:, 0], obj.p[:, 1], obj.p[:, 2] + grasp_z], -1)
        carry_z = torch.maximum(rec_top + grasp_z + PLACE_CLEARANCE, torch.full_like(rec_top, LIFT_HEIGHT))
        above_rec = torch.stack([rec.p[:, 0], rec.p[:, 1], carry_z + 0.03], -1)
        place = torch.stack([rec.p[:, 0], rec.p[:, 1], rec_top + grasp_z + PLACE_CLEARANCE], -1)
        # Approaching from below the pre-grasp height (a re-approach after a drop or a moved object): rise first,
        # so the fingers do not sweep into the object.
        obj_off_xy = torch.linalg.norm(obj.p[:, :2] - tcp_world[:, :2], dim=-1)  # hand to object, horizontally
        away = obj_off_xy > 0.02
        rise = torch.stack([tcp_world[:, 0], tcp_world[:, 1], above_obj[:, 2]], -1)
        low = (tcp_world[:, 2] < above_obj[:, 2] - 0.02) & away
        goal = torch.where((p == APPROACH)[:, None], torch.where(low[:, None], rise, above_obj), goal)
        goal = torch.where(((p == DESCEND) | (p == CLOSE))[:, None], at_obj, goal)
        goal = torch.where((p == LIFT)[:, None], self.lift_goal, goal)
        goal = torch.where((p == CARRY)[:, None], above_rec, goal)
        goal = torch.where(((p == LOWER) | (p == RELEASE))[:, None], place, goal)
        retreat = place.clone()
        retreat[:, 2] += 0.08
        goal = torch.where((p == RETREAT)[:, None], retreat, goal)

        # Track the controller's target (what the delta action moves), not the lagging measured pose.
        target_world = target.p + offset
        delta = capped_translation(goal, target_world, self.prev_delta, GAIN, self.max_speed, self.max_accel)
        hold = (p == CLOSE) | (p == RELEASE)
        delta = torch.where(hold[:, None], torch.zeros_like(delta), delta)
        self.prev_delta = delta

        # Orientation: fingers down, yawed to the grasp yaw; after the grasp, keep the orientation.
        r_target = quaternion_to_matrix(target.q)
        r_goal = _rot_z(self.grasp_yaw) @ self.down
        rot, ang = rotation_action(r_goal, r_target, MAX_ROT)

        closed = (p >= CLOSE) & (p <= LOWER)
        gripper = torch.where(closed, -1.0, 1.0).to(dev)
        action = torch.cat([delta, rot, gripper[:, None]], -1)

        # Phase transitions (evaluated on where the target will be after this step).
        dist = torch.linalg.norm(goal - (target_world + delta), dim=-1)
        meas = torch.linalg.norm(goal - tcp_world, dim=-1)
        yaw_ok = ang < 0.05
        nxt = p.clone()
        self.timer = self.timer + 1
        nxt = torch.where((p == APPROACH) & ~low & (dist < 0.008) & yaw_ok & (meas < 0.02), DESCEND, nxt)
        nxt = torch.where((p == DESCEND) & (dist < 0.004) & (meas < 0.012), CLOSE, nxt)
        nxt = torch.where((p == CLOSE) & (self.timer >= GRIPPER_WAIT), LIFT, nxt)
        nxt = torch.where((p == LIFT) & (dist < 0.015), CARRY, nxt)
        nxt = torch.where((p == CARRY) & (dist < 0.01) & (meas < 0.02), LOWER, nxt)
        nxt = torch.where((p == LOWER) & (dist < 0.005) & (meas < 0.012), RELEASE, nxt)
        nxt = torch.where((p == RELEASE) & (self.timer >= GRIPPER_WAIT), RETREAT, nxt)
        # Lost the object while carrying it: go back and grasp again.
        dropped = ((p == LIFT) | (p == CARRY) | (p == LOWER)) & ~grasped & (self.timer >= 2)
        # The object moved away under the hand (a mid-episode reposition, a knock): rise and approach it again
        # instead of sweeping across the table at grasp height.
        moved = ((p == DESCEND) | (p == CLOSE)) & ~grasped & (obj_off_xy > REAPPROACH_DISTANCE)
        nxt = torch.where(dropped | moved, APPROACH, nxt)
        changed = nxt != p
        # The lift goes straight up from where the grasp closed.
        lift_goal = torch.stack([tcp_world[:, 0], tcp_world[:, 1], tcp_world[:, 2] + LIFT_HEIGHT], -1)
        self.lift_goal = torch.where((changed & (nxt == LIFT))[:, None], lift_goal, self.lift_goal)
        self.timer = torch.where(changed, torch.zeros_like(self.timer), self.timer)
        self.phase = nxt
        return action
