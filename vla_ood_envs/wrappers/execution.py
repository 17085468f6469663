"""Execution OOD perturbations: where things are, how the robot starts, and an object that moves mid-episode."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import torch

from ..factors.pick import REPOSITION_POSITIONS, TRAIN_POSITIONS
from ..factors.pools import is_nominal_start
from ..tasks.robots import RobotSpec, find_robot
from ..tasks.scene import WORKSPACE_CENTER
from .base import Perturbation, PerturbationError, Severity

# The farthest a mid-episode reposition can move the object from a training cell (to a ring corner), rounded up to
# the mm: the band (lo, hi) is inclusive, so a band reaching this far still holds that move; one starting beyond it
# holds none.
_REPOSITION_REACH = math.ceil(1000 * max(math.dist(a, b) for a in TRAIN_POSITIONS for b in REPOSITION_POSITIONS)) / 1000


class PlacementSampler(Perturbation):
    """Place the task's items in a held-out region (region="test") or the training one ("train").

    VLAPick: "test" (alias "ring") puts object and receptacle on the ring of cells 3 cm outside the training square
    (+-10.5 cm from the centre) with object yaws at odd multiples of pi/8; "train" (alias "grid") is the 6x6 grid.
    VLAOpen: "test" puts the articulated object on the ring 3 cm outside its training placements (+-7 cm) with
    yaw offsets of +-15 or +-20 degrees. Held-out placements are disjoint from training ones."""

    layer = "scene"

    def __init__(self, env: gym.Env, region: str = "test"):
        super().__init__(env, region=region)
        try:
            changes = self.task.placement_region(region)
        except ValueError as exc:
            raise PerturbationError(str(exc)) from exc
        self._swap_pools(f"positions:{region}", **changes)


def robot_init_offsets(body: tuple[float, ...] = (0.08, 0.15), wrist: tuple[float, ...] = (0.3, 0.6),
                       max_shoulder_elbow: float = 0.25, robot: str | RobotSpec = "panda_vla"
                       ) -> tuple[tuple[float, ...], ...]:
    """The held-out start poses of `robot`: each of the study's joints 1-5 offset by 0 or +-body[i], the wrist
    rotation by 0 or +-wrist[i]; the unperturbed pose (training) is excluded, and so are combinations whose shoulder
    plus elbow change exceeds `max_shoulder_elbow` rad (they swing the hand out of the workspace). The change is
    |shoulder| + |elbow| on the Panda and |shoulder + elbow| on the WidowX (the study's rule: about 14k poses)."""
    spec = robot if isinstance(robot, RobotSpec) else find_robot(robot)
    body_vals = (0.0,) + tuple(s * v for v in body for s in (1, -1))
    wrist_vals = (0.0,) + tuple(s * v for v in wrist for s in (1, -1))
    shoulder, elbow = (spec.body_joints.index(j) for j in spec.shoulder_elbow)
    out = []
    for combo in itertools.product(body_vals, repeat=len(spec.body_joints)):
        a, b = combo[shoulder], combo[elbow]
        change = abs(a + b) if spec.signed_shoulder_elbow else abs(a) + abs(b)
        if change > max_shoulder_elbow + 1e-9:
            continue
        for w in wrist_vals:
            offset = [0.0] * spec.arm_dof
            for j, v in zip(spec.body_joints, combo):
                offset[j] = v
            offset[spec.wrist_joint] = w
            if not is_nominal_start(offset):
                out.append(tuple(offset))
    return tuple(out)


class RobotInitPose(Perturbation):
    """Start each episode from a perturbed joint configuration (see `robot_init_offsets`). `scale` multiplies every
    offset and the shoulder+elbow limit, so a sweep over severity is `scale` in (0, 1] (1: the study's offsets)."""

    layer = "scene"
    SEVERITY = Severity("scale", 0.0, 1.0, low_open=True)

    def __init__(self, env: gym.Env, scale: float = 1.0, max_shoulder_elbow: float = 0.25):
        super().__init__(env, scale=scale, max_shoulder_elbow=max_shoulder_elbow)
        offsets = robot_init_offsets((0.08 * scale, 0.15 * scale), (0.3 * scale, 0.6 * scale),
                                     max_shoulder_elbow * scale, robot=self.task.robot_spec)
        self.offsets = offsets
        self._swap_pools(f"robot-init:{scale:g}", robot_qpos_offsets=offsets)


class MidEpisodeReposition(Perturbation):
    """Teleport the target object once per episode to a cell `distance` (m) away from where it started, grasped or
    not, and let it settle. The target cell is an episode factor (`reposition_xy`); the event is appended to the
    manifest's `events` (`from` and `to` as offsets from the workspace centre, the frame of `reposition_xy`, so
    `to` equals it) and flagged in `info["repositioned"]`.

    trigger="step": after `at_step` actions (the study: 5); "grasp": the step after the object is first grasped;
    "near": once the gripper is within `near_distance` of the object.
    """

    layer = "event"
    tasks = ("VLAPick",)
    # distance: the band (m) the new cell's distance from the old one is drawn in; at most the largest distance
    # between two cells it can move between.
    SEVERITY = Severity("distance", 0.0, _REPOSITION_REACH, unit="m", low_open=True, interval=True)

    def __init__(self, env: gym.Env, at_step: int = 5, distance: tuple[float, float] = (0.15, 0.21),
                 trigger: str = "step", near_distance: float = 0.05):
        super().__init__(env, at_step=at_step, distance=distance, trigger=trigger, near_distance=near_distance)
        if trigger not in ("step", "grasp", "near"):
            raise PerturbationError(f"trigger must be 'step', 'grasp' or 'near', got {trigger!r}")
        self.at_step, self.trigger, self.near_distance = int(at_step), trigger, float(near_distance)
        self._swap_pools(f"reposition:{trigger}", reposition_positions=REPOSITION_POSITIONS,
                         reposition_distance=self.severity)
        self._fired = torch.zeros(self.task.num_envs, dtype=torch.bool, device=self.task.device)
        self._version = -1

    def _due(self) -> torch.Tensor:
        t = self.task
        if self.trigger == "step":
            return t.elapsed_steps.to(t.device) == self.at_step
        if self.trigger == "grasp":
            return t.grasped_ever.clone()
        dist = torch.linalg.norm(t.agent.tcp_pose.p - t.object_pose().p, dim=-1)
        return dist < self.near_distance

    def step(self, action):
        t = self.task
        if self._version != t.episode_version:
            self._version = t.episode_version
            self._fired = torch.tensor([bool(e and any(x.get("type") == "reposition" for x in e)) for e in t.events],
                                       device=t.device)
            self._xy = torch.tensor([f.reposition_xy or (math.nan, math.nan) for f in t.factors],
                                    dtype=torch.float32, device=t.device)
        fire = self._due() & ~self._fired & ~torch.isnan(self._xy[:, 0])
        if fire.any():
            # Positions in the manifest's frame (offsets from the workspace centre, like reposition_xy).
            centre = torch.tensor(WORKSPACE_CENTER, dtype=torch.float32, device=t.device)
            before = t.object_pose().p[:, :2] - centre
            grasped = t.evaluate()["is_grasped"]
            t.teleport_target_object(fire, self._xy)
            after = t.object_pose().p[:, :2] - centre
            steps = t.elapsed_steps.reshape(-1).expand(t.num_envs)
            for i in torch.nonzero(fire).flatten().tolist():
                t.events[i].append({
                    "type": "reposition",
                    "step": int(steps[i]),
                    "from": [round(float(v), 4) for v in before[i]],
                    "to": [round(float(v), 4) for v in after[i]],
                    "moved": round(float(torch.linalg.norm(after[i] - before[i])), 4),
                    "was_grasped": bool(grasped[i]),
                })
            self._fired |= fire
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["repositioned"] = fire if isinstance(reward, torch.Tensor) else bool(fire[0])
        return obs, reward, terminated, truncated, info

