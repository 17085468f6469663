"""Motion shaping shared by the scripted experts: turning goal poses into the env's 7-D delta action the way a
careful teleoperator moves (bounded speed, bounded change of speed, bounded rotation per step).

All functions are batched over the env's sub-scenes and work on the arm controller's *target* pose, which is what
the delta action moves (the measured pose lags it).
"""

from __future__ import annotations

import torch

from mani_skill.utils.geometry.rotation_conversions import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler_angles,
)


def controller_target(base):
    """The arm controller's target pose (robot-base frame) of an unwrapped task."""
    return base.agent.controller.controllers["arm"]._target_pose


def capped_translation(goal: torch.Tensor, target_world: torch.Tensor, prev_delta: torch.Tensor, gain: float,
                       max_speed: float, max_accel: float) -> torch.Tensor:
    """A proportional step towards `goal`, capped in length (speed) and in change from `prev_delta` (accel)."""
    delta = gain * (goal - target_world)
    norm = torch.linalg.norm(delta, dim=-1, keepdim=True).clamp(min=1e-9)
    delta = delta * torch.clamp(max_speed / norm, max=1.0)
    change = delta - prev_delta
    change_norm = torch.linalg.norm(change, dim=-1, keepdim=True).clamp(min=1e-9)
    return prev_delta + change * torch.clamp(max_accel / change_norm, max=1.0)


def rotation_action(r_goal: torch.Tensor, r_target: torch.Tensor, max_rot: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation part of the action turning the target orientation towards `r_goal` by at most `max_rot` rad,
    and the remaining angle (before this step)."""
    aa = matrix_to_axis_angle(r_goal @ r_target.transpose(-1, -2))
    ang = torch.linalg.norm(aa, dim=-1, keepdim=True).clamp(min=1e-9)
    aa = aa * torch.clamp(max_rot / ang, max=1.0)
    rot = matrix_to_euler_angles(axis_angle_to_matrix(aa), "XYZ")
    # Round-off of the rotation conversions leaves ~1e-8 rad in idle axes; in a dataset that noise would be
    # stretched to +-1 by quantile normalisation (OpenVLA's q01/q99), so an idle axis is exactly zero.
    rot = torch.where(rot.abs() < 1e-6, torch.zeros_like(rot), rot)
    return rot, ang[:, 0]


def gripper_frame(approach: torch.Tensor, opening: torch.Tensor, approach_axis: int) -> torch.Tensor:
    """Orientations (N, 3, 3) of a tcp whose fingers point along `approach` and close along `opening` (unit,
    orthogonal), for a robot whose tcp frame points its fingers along axis `approach_axis` (robots.RobotSpec:
    2 = z on the Panda, 0 = x on the WidowX) and closes along y."""
    if approach_axis == 2:
        return torch.stack([torch.cross(opening, approach, dim=-1), opening, approach], -1)
    if approach_axis == 0:
        return torch.stack([approach, opening, torch.cross(approach, opening, dim=-1)], -1)
    raise ValueError(f"tcp approach axis must be 0 (x) or 2 (z), got {approach_axis}")


def half_turn(r: torch.Tensor, flip: torch.Tensor, approach_axis: int) -> torch.Tensor:
    """`r` turned half a turn about its fingers' axis (the other two columns negated) where `flip`: a parallel
    gripper grasps the same either way."""
    sign = torch.full((3,), -1.0, device=r.device)
    sign[approach_axis] = 1.0
    return torch.where(flip[:, None, None], r * sign, r)


class ScriptedExpert:
    """What the scripted experts share: speed limits, per-env phase / timer / last-translation buffers (phase 0 is
    the first), and their reset. Call `reset(env)` after each env reset (`env_idx` for a partial reset), then
    `act(env)` each step for a (num_envs, 7) action tensor."""

    PHASE_NAMES: tuple[str, ...] = ()

    def __init__(self, max_speed: float, max_accel: float):
        self.max_speed = max_speed
        self.max_accel = max_accel

    def reset(self, env, env_idx: torch.Tensor | None = None) -> None:
        base = env.unwrapped
        n, dev = base.num_envs, base.device
        if env_idx is None or not hasattr(self, "phase"):
            env_idx = torch.arange(n, device=dev)
            self.phase = torch.zeros(n, dtype=torch.long, device=dev)
            self.timer = torch.zeros(n, dtype=torch.long, device=dev)
            self.prev_delta = torch.zeros((n, 3), device=dev)
            self._allocate(n, dev)
        self.phase[env_idx] = 0
        self.timer[env_idx] = 0
        self.prev_delta[env_idx] = 0
        self._reset_envs(base, env_idx)

    def _allocate(self, n: int, dev) -> None:
        """Create the expert's own per-env buffers."""

    def _reset_envs(self, base, env_idx: torch.Tensor) -> None:
        """Reset the expert's own per-env state of the envs in `env_idx`."""

    def phase_names(self) -> list[str]:
        return [self.PHASE_NAMES[i] for i in self.phase.tolist()]
