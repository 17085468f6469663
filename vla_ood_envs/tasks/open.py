"""VLAOpen: open the door (or, as a variant, the drawer) of an articulated object (the study's second task).

The study describes this task only in its appendix (docs/study.md section 3) and released no code; this is our
definition. A Franka Panda with the study's 7-D metric action faces a generated articulated object (cabinet,
microwave, fridge, ... from the catalog, one door or drawer each) placed at the side of the workspace so that
both the robot and the third-person camera see its front.

- Instruction: "open the {O}", where {O} is the object's noun ("microwave"; drawers: "nightstand drawer").
- Success (every step in `info["success"]`; evaluations read the last step): the joint is open at least
  `DOOR_THRESHOLD` (20 degrees) for doors, `DRAWER_THRESHOLD` (8 cm) for drawers.
- Staged reward in the study's style, as the step-to-step change of the potential
  0.1*handle_grasped_ever + 0.1*min(opening / threshold, 1) + 1.0*success; a maximum return of 1.2.
- Grasp: both fingers touch the moving part (door or drawer, handle included) with >= 0.5 N, forces within
  85 degrees of the opening axis (ManiSkill's test, as for VLAPick).

Every articulated object of the chosen kinds is built once in each sub-scene and parked off-camera when unused,
so choosing the object is a pose change at reset, never a scene rebuild.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import sapien
import torch

from mani_skill.utils.structs.pose import Pose

from ..catalog import ArticulatedAsset
from ..factors.open import (
    KINDS, OPEN_TEST_POSITIONS, OPEN_TEST_TEMPLATES, OPEN_TEST_YAWS, OPEN_TRAIN_POSITIONS, OPEN_TRAIN_TEMPLATE,
    OPEN_TRAIN_YAWS, OpenFactors, articulated_names, open_train_pools, sample_open_factors,
)
from . import scene as scene_lib
from ..errors import ConfigError
from .base import VLATaskEnv, common_outside_pools, footprint, in_pool, yaw_quat
from .contacts import grasp_test, pair_forces

DOOR_THRESHOLD = math.radians(20.0)
DRAWER_THRESHOLD = 0.08
GRASP_MIN_FORCE = 0.5
GRASP_MAX_ANGLE = 85
# Where the object stands: its bottom centre, and the direction its front faces (world yaw of its +x axis).
OPEN_ANCHOR = (-0.06, -0.20)
NOMINAL_FACING = math.radians(95.0)
VARIANTS = {"door": ("door",), "drawer": ("drawer",), "any": KINDS}


class VLAOpenEnv(VLATaskEnv):
    TASK_NAME = "VLAOpen"
    FACTORS_CLS = OpenFactors
    TEMPLATES = {"train": (OPEN_TRAIN_TEMPLATE,), "test": OPEN_TEST_TEMPLATES}
    START_KEYFRAME = "open_rest"

    def __init__(self, *args, variant: str = "door", **kwargs):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)} (which articulated objects to open), "
                             f"got {variant!r}")
        self.variant = variant
        self.kinds = VARIANTS[variant]
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ task hooks
    def _setup_assets(self) -> None:
        self._assets: list[ArticulatedAsset] = [a for a in self.catalog.articulated if a.kind in self.kinds]
        if not self._assets:
            raise ValueError(f"the catalog at {self.catalog.root} has no articulated objects of kinds {self.kinds}")
        self._index = {a.name: i for i, a in enumerate(self._assets)}

    def _default_pools(self):
        return open_train_pools(self.catalog, self.kinds)

    def _sample_factors(self, rng: np.random.RandomState) -> OpenFactors:
        return sample_open_factors(self.pools, rng, self.catalog)

    def object_names(self, split: str | None = None) -> list[str]:
        return articulated_names(self.catalog, self.kinds, split)

    def placement_region(self, region: str) -> dict:
        if region == "test":
            return dict(object_positions=OPEN_TEST_POSITIONS, yaws=OPEN_TEST_YAWS)
        if region == "train":
            return dict(object_positions=OPEN_TRAIN_POSITIONS, yaws=OPEN_TRAIN_YAWS)
        raise ValueError(f"VLAOpen placement region must be 'test' (held out) or 'train', got {region!r}")

    def _check_factors(self, f: OpenFactors) -> OpenFactors:
        if f.object not in self._index:
            raise ValueError(f"factor object={f.object!r} is not an articulated object of this env (variant "
                             f"{self.variant!r}); known: {sorted(self._index)}")
        self._check_common_factors(f)
        if len(f.object_xy) != 2 or not all(map(math.isfinite, (*f.object_xy, f.object_yaw))):
            raise ConfigError(f"factors object_xy and object_yaw must be finite numbers, got {f.object_xy}, "
                             f"{f.object_yaw}")
        depth, width = self._assets[self._index[f.object]].size[:2]
        corners = footprint((-depth / 2, -width / 2), (depth / 2, width / 2), 1.0,
                            (OPEN_ANCHOR[0] + f.object_xy[0], OPEN_ANCHOR[1] + f.object_xy[1]),
                            NOMINAL_FACING + f.object_yaw)
        self._check_on_table(f"{f.object} ({self.variant})", "object_xy", f.object_xy, corners)
        if not f.noun:
            f = dataclasses.replace(f, noun=self._assets[self._index[f.object]].noun)
        return f

    def _outside_pools(self, f: OpenFactors, pools) -> list[str]:
        """The factors of `f` that `pools` could not have drawn, by field name."""
        out = [] if f.object in pools.objects else ["object"]
        if not in_pool(f.object_xy, pools.object_positions):
            out.append("object_xy")
        return out + common_outside_pools(f, pools)

    def _load_items(self) -> None:
        self._plan_parking([a.footprint_radius for a in self._assets])
        self.articulations = []
        for k, asset in enumerate(self._assets):
            loader = self.scene.create_urdf_loader()
            loader.fix_root_link = True
            # ManiSkill 3.0.1's load_file_as_articulation_builder unpacks parse()'s dict as a tuple; read it here.
            parsed = loader.parse(str(asset.urdf))
            if len(parsed["articulation_builders"]) != 1 or parsed["actor_builders"]:
                raise ValueError(f"{asset.urdf} must hold exactly one articulation (a body and its moving part)")
            builder = parsed["articulation_builders"][0]
            builder.initial_pose = self._park(k)
            self.articulations.append(builder.build(name=f"articulated:{asset.name}"))
        self.moving_links = [art.links_map[a.moving_link] for art, a in zip(self.articulations, self._assets)]
        dev = self.device
        as_t = lambda rows: torch.tensor(rows, dtype=torch.float32, device=dev)  # noqa: E731
        self._joint_origin = as_t([a.joint_origin for a in self._assets])
        self._joint_axis = as_t([a.joint_axis for a in self._assets])
        self._handle_pos = as_t([a.handle_position for a in self._assets])
        self._handle_axis = as_t([a.handle_axis for a in self._assets])
        self._is_drawer = torch.tensor([a.joint_type == "prismatic" for a in self._assets], device=dev)
        self._threshold = torch.where(self._is_drawer, DRAWER_THRESHOLD, DOOR_THRESHOLD).float()

    def _park(self, k: int) -> sapien.Pose:
        return self._park_pose(k, lift=0.0)  # on the floor, behind the camera

    def _segmentation_groups(self):
        return [(art.get_links(), k) for k, art in enumerate(self.articulations)]

    # ------------------------------------------------------------------ episodes
    def _place_items(self, env_idx: torch.Tensor, idx: list[int]) -> None:
        b, dev = len(idx), self.device
        chosen = [self._index[self.factors[i].object] for i in idx]
        for k, art in enumerate(self.articulations):
            park = self._park(k)
            p = torch.tensor(park.p, dtype=torch.float32).repeat(b, 1)
            yaw = torch.zeros(b)
            on = [c == k for c in chosen]
            for row, i in enumerate(idx):
                if on[row]:
                    f = self.factors[i]
                    p[row] = torch.tensor([OPEN_ANCHOR[0] + f.object_xy[0], OPEN_ANCHOR[1] + f.object_xy[1], 0.0])
                    yaw[row] = NOMINAL_FACING + f.object_yaw
            art.set_root_pose(Pose.create_from_pq(p.to(dev), yaw_quat(yaw).to(dev)))
            art.set_qpos(torch.zeros((b, art.max_dof), device=dev))
            art.set_qvel(torch.zeros((b, art.max_dof), device=dev))
            if not self.gpu_sim_enabled:
                links = [[link._objs[i].entity for link in art.links] for i in range(self.num_envs)]
                self._set_rendered(links, idx, on)

    def _reset_task_state(self, env_idx: torch.Tensor) -> None:
        n, dev = self.num_envs, self.device
        if getattr(self, "grasped_ever", None) is None or len(self.grasped_ever) != n:
            self.grasped_ever = torch.zeros(n, dtype=torch.bool, device=dev)
            self.max_opening = torch.zeros(n, device=dev)
            self.potential = torch.zeros(n, device=dev)
            self._last_progress_step = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.target_object = torch.tensor([self._index[self.factors[i].object] for i in range(n)], device=dev)
        self.grasped_ever[env_idx] = False
        self.max_opening[env_idx] = 0.0
        self.potential[env_idx] = 0.0
        self._last_progress_step[env_idx] = -1

    # ------------------------------------------------------------------ privileged state (per env, batched)
    def object_root_pose(self) -> Pose:
        return Pose.create(self._select(self.articulations, self.target_object, lambda a: a.pose.raw_pose))

    def moving_link_pose(self) -> Pose:
        return Pose.create(self._select(self.moving_links, self.target_object, lambda l: l.pose.raw_pose))

    def joint_position(self) -> torch.Tensor:
        """How far each env's door (rad) or drawer (m) is open."""
        return self._select(self.articulations, self.target_object, lambda a: a.get_qpos())[:, 0]

    def handle_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World position of each env's handle (the point to grasp) and the world direction of its bar."""
        link = self.moving_link_pose()
        k = self.target_object
        pos = link.p + _rotate(link.q, self._handle_pos[k])
        return pos, _rotate(link.q, self._handle_axis[k])

    def joint_frame(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World position of each env's joint origin (a point on the hinge line) and the joint axis."""
        root = self.object_root_pose()
        k = self.target_object
        return root.p + _rotate(root.q, self._joint_origin[k]), _rotate(root.q, self._joint_axis[k])

    def front_normal(self) -> torch.Tensor:
        """World direction the closed front faces (the object's +x axis)."""
        root = self.object_root_pose()
        x = torch.tensor([1.0, 0.0, 0.0], device=self.device).expand(self.num_envs, 3)
        return _rotate(root.q, x)

    @property
    def threshold(self) -> torch.Tensor:
        return self._threshold[self.target_object]

    @property
    def is_drawer(self) -> torch.Tensor:
        return self._is_drawer[self.target_object]

    # ------------------------------------------------------------------ evaluation and reward
    def evaluate(self) -> dict:
        opening = self.joint_position()
        threshold = self.threshold
        success = opening >= threshold
        is_grasped = self._grasped()
        progress = torch.clamp(opening / threshold, 0.0, 1.0)
        step = self.elapsed_steps.to(self.device).long()
        fresh = step != self._last_progress_step  # evaluate() may run more than once per step
        self._last_progress_step = torch.where(fresh, step, self._last_progress_step)
        self.grasped_ever |= fresh & is_grasped
        self.max_opening = torch.maximum(self.max_opening, opening)
        self._new_potential = 0.1 * self.grasped_ever.float() + 0.1 * progress + 1.0 * success.float()
        return {
            "success": success,
            "is_grasped": is_grasped,
            "grasped_ever": self.grasped_ever.clone(),
            "opening": opening,
            "max_opening": self.max_opening.clone(),
            "open_fraction": opening / threshold,
            "potential": self._new_potential.clone(),
        }

    def _grasped(self) -> torch.Tensor:
        """Whether the robot grasps each env's moving part (N,) bool; on CPU from one contact query."""
        if self.gpu_sim_enabled:
            return self._select(self.moving_links, self.target_object,
                                lambda l: self.agent.is_grasping(l, GRASP_MIN_FORCE, GRASP_MAX_ANGLE))
        link, agent = self.moving_links[int(self.target_object[0])], self.agent
        left, right = pair_forces(self.scene, [(agent.finger1_link, link), (agent.finger2_link, link)])
        return grasp_test(agent, left, right, GRASP_MIN_FORCE, GRASP_MAX_ANGLE)

    def compute_dense_reward(self, obs: Any, action: torch.Tensor, info: dict):
        handle, _ = self.handle_pose()
        reach = 1 - torch.tanh(5 * torch.linalg.norm(handle - self.agent.tcp_pose.p, dim=-1))
        grasped = info["is_grasped"].float()
        progress = torch.clamp(info["open_fraction"], 0.0, 1.0)
        reward = reach + grasped + 2 * progress
        reward[info["success"]] = self.DENSE_MAX
        return reward

    def _get_obs_extra(self, info: dict):
        obs = dict(tcp_pose=self.agent.tcp_pose.raw_pose)
        if self.obs_mode_struct.use_state:
            handle, axis = self.handle_pose()
            obs.update(
                is_grasped=info["is_grasped"].float(),
                handle_pos=handle,
                handle_axis=axis,
                front_normal=self.front_normal(),
                opening=info["opening"][:, None],
                open_fraction=info["open_fraction"][:, None],
                tcp_to_handle_pos=handle - self.agent.tcp_pose.p,
            )
        return obs


def _rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (N, 3) by unit quaternions q (N, 4, wxyz)."""
    w, u = q[:, :1], q[:, 1:]
    t = 2 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)
