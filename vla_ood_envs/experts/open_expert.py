"""Scripted expert for VLAOpen: grasp the handle, then pull it along the joint's arc (doors) or axis (drawers).

Privileged state (the handle's pose, the joint's axis and opening) comes from the unwrapped task; the action is
the env's own 7-D metric delta. Phases:

- align: turn the hand to point into the front (fingers closing across the handle's bar) while moving to a
  point 10 cm in front of the handle;
- approach: straight in until the handle is between the fingers; close: hold still while the gripper closes;
- pull: the grasp pose is carried along the joint's motion, leading the measured opening by at most one step's
  worth, so the hand never drags the handle off its arc; stop at `goal` (past the success threshold) and hold.
A grasp lost early makes the expert let go, back off (straight out 8 cm) and align on the handle where it now is;
one lost when the door is already well past the threshold ends the pull there.
"""

from __future__ import annotations

import math

import torch

from mani_skill.utils.geometry.rotation_conversions import axis_angle_to_matrix, quaternion_to_matrix

from .motion import ScriptedExpert, capped_translation, controller_target, gripper_frame, half_turn, rotation_action

ALIGN, APPROACH, CLOSE, PULL, HOLD, BACK_OFF = range(6)
PHASE_NAMES = ("align", "approach", "close", "pull", "hold", "back off")

MAX_SPEED = 0.04  # m per control step
MAX_ACCEL = 0.015
GAIN = 0.7
MAX_ROT = 0.25  # rad per step
PRE_GRASP = 0.10  # m in front of the handle
DOOR_STEP = math.radians(6.0)  # how far the target leads the door's opening, per step
DRAWER_STEP = 0.025
DOOR_GOAL = math.radians(30.0)  # the success threshold is 20 deg / 8 cm
DRAWER_GOAL = 0.13
GRIPPER_WAIT = 3
MAX_LAG = 0.06  # m between the controller's target and the measured hand


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.norm(v, dim=-1, keepdim=True).clamp(min=1e-9)


class OpenExpert(ScriptedExpert):
    PHASE_NAMES = PHASE_NAMES

    def __init__(self, max_speed: float = MAX_SPEED, max_accel: float = MAX_ACCEL):
        super().__init__(max_speed, max_accel)

    def _allocate(self, n: int, dev) -> None:
        self.lost = torch.zeros(n, dtype=torch.long, device=dev)
        self.grasp_p = torch.zeros((n, 3), device=dev)
        self.grasp_r = torch.eye(3, device=dev).repeat(n, 1, 1)
        self.grasp_q = torch.zeros(n, device=dev)
        self.flip = torch.zeros(n, dtype=torch.bool, device=dev)
        self.back_off = torch.zeros((n, 3), device=dev)
        self.prev_tcp = torch.zeros((n, 3), device=dev)

    def _reset_envs(self, base, env_idx: torch.Tensor) -> None:
        self.lost[env_idx] = 0
        self.prev_tcp[env_idx] = base.agent.tcp_pose.p[env_idx]

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _grasp_frame(base) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Handle position, the face's outward normal, and a gripper orientation for grasping the handle: fingers
        pointing into the face, closing across the bar. Its half turn about the fingers (`half_turn`) grasps the
        same."""
        handle, bar = base.handle_pose()
        link = base.moving_link_pose()
        x = torch.tensor([1.0, 0.0, 0.0], device=base.device).expand_as(handle)
        normal = _unit((quaternion_to_matrix(link.q) @ x[..., None])[..., 0])
        y = _unit(torch.cross(bar, -normal, dim=-1))
        return handle, normal, gripper_frame(-normal, y, base.robot_spec.tcp_approach_axis)

    @staticmethod
    def _turn(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
        """Angle of the rotation between two orientations."""
        cos = ((r_a @ r_b.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
        return torch.arccos(cos.clamp(-1.0, 1.0))

    # ------------------------------------------------------------------ policy
    @torch.no_grad()
    def act(self, env) -> torch.Tensor:
        base = env.unwrapped
        dev = base.device
        target = controller_target(base)
        offset = base.agent.robot.pose.p
        target_world = target.p + offset
        r_target = quaternion_to_matrix(target.q)
        tcp_world = base.agent.tcp_pose.p
        # Of the two equivalent grasp orientations, take the nearer one when an approach starts, then keep it: a
        # bar across the current closing axis would otherwise make the choice flicker between half turns.
        starting = (self.phase == ALIGN) & (self.timer == 0)
        handle, normal, r_bar = self._grasp_frame(base)
        finger_axis = base.robot_spec.tcp_approach_axis
        r_keep, r_other = half_turn(r_bar, self.flip, finger_axis), half_turn(r_bar, ~self.flip, finger_axis)
        self.flip = torch.where(starting & (self._turn(r_other, r_target) < self._turn(r_keep, r_target)),
                                ~self.flip, self.flip)
        r_grasp = half_turn(r_bar, self.flip, finger_axis)
        opening = base.joint_position()
        drawer = base.is_drawer
        info = base.evaluate()
        grasped = info["is_grasped"]
        p = self.phase

        # Pull: carry the grasp pose along the joint's motion to just ahead of the measured opening.
        goal_open = torch.where(drawer, DRAWER_GOAL, DOOR_GOAL)
        lead = torch.where(drawer, DRAWER_STEP, DOOR_STEP)
        want = torch.minimum(opening + lead, goal_open) - self.grasp_q
        origin, axis = base.joint_frame()
        rot = axis_angle_to_matrix(axis * torch.where(drawer, 0.0, want)[:, None])
        arc_p = origin + (rot @ (self.grasp_p - origin)[..., None])[..., 0]
        pull_p = torch.where(drawer[:, None], self.grasp_p + axis * want[:, None], arc_p)
        pull_r = rot @ self.grasp_r

        goal = torch.where((p == ALIGN)[:, None], handle + PRE_GRASP * normal, handle)
        goal = torch.where(((p == PULL) | (p == HOLD))[:, None], pull_p, goal)
        goal = torch.where((p == BACK_OFF)[:, None], self.back_off, goal)
        r_goal = torch.where(((p == PULL) | (p == HOLD))[:, None, None], pull_r, r_grasp)
        r_goal = torch.where((p == BACK_OFF)[:, None, None], r_target, r_goal)

        # When the arm stalls far behind its target (the controller's inverse kinematics found no solution), stop
        # leading it: the target walks back towards the hand, so the solver starts from a near pose again.
        stalled = torch.linalg.norm(tcp_world - self.prev_tcp, dim=-1) < 0.005
        behind = (torch.linalg.norm(target_world - tcp_world, dim=-1) > MAX_LAG) & stalled
        self.prev_tcp = tcp_world.clone()
        move_to = torch.where(behind[:, None], tcp_world, goal)
        delta = capped_translation(move_to, target_world, self.prev_delta, GAIN, self.max_speed, self.max_accel)
        delta = torch.where((p == CLOSE)[:, None], torch.zeros_like(delta), delta)
        self.prev_delta = delta
        rot_action, ang = rotation_action(r_goal, r_target, MAX_ROT)
        closed = (p >= CLOSE) & (p != BACK_OFF)
        gripper = torch.where(closed, -1.0, 1.0).to(dev)
        action = torch.cat([delta, rot_action, gripper[:, None]], -1)

        dist = torch.linalg.norm(goal - (target_world + delta), dim=-1)
        meas = torch.linalg.norm(goal - tcp_world, dim=-1)
        self.timer = self.timer + 1
        self.lost = torch.where(grasped | (p < PULL), 0, self.lost + 1)
        nxt = p.clone()
        nxt = torch.where((p == ALIGN) & (dist < 0.01) & (ang < 0.05) & (meas < 0.02), APPROACH, nxt)
        nxt = torch.where((p == APPROACH) & (dist < 0.004) & (meas < 0.01), CLOSE, nxt)
        nxt = torch.where((p == CLOSE) & (self.timer >= GRIPPER_WAIT), PULL, nxt)
        nxt = torch.where((p == PULL) & (opening >= goal_open - 1e-3), HOLD, nxt)
        # A lost grasp means letting go, backing off and grasping again, unless the door is already well past the
        # threshold: there the hand stays where it is, closed, since letting go or re-grasping risks knocking the
        # door shut (a wide-open door leans on the arm).
        lost = ((p == PULL) | (p == HOLD)) & (self.lost >= 3)
        far_enough = opening >= 0.5 * (base.threshold + goal_open)
        nxt = torch.where(lost & ~far_enough & (p != BACK_OFF), BACK_OFF, nxt)
        nxt = torch.where(lost & far_enough & (p == PULL), HOLD, nxt)
        nxt = torch.where((p == BACK_OFF) & (dist < 0.01), ALIGN, nxt)
        changed = nxt != p
        start_pull = changed & (nxt == PULL)
        # The pull starts from where the grasp closed: the controller's target then, and the opening then.
        self.grasp_p = torch.where(start_pull[:, None], target_world, self.grasp_p)
        self.grasp_r = torch.where(start_pull[:, None, None], r_target, self.grasp_r)
        self.grasp_q = torch.where(start_pull, opening, self.grasp_q)
        # Backing off goes straight out of the grasp, along the fingers, before the hand turns.
        self.back_off = torch.where((changed & (nxt == BACK_OFF))[:, None],
                                    target_world - 0.08 * r_target[:, :, finger_axis], self.back_off)
        self.timer = torch.where(changed, torch.zeros_like(self.timer), self.timer)
        self.phase = nxt
        return action
