"""VLAPick: put an object on a receptacle (the RL4VLA study's pick-and-place task) on ManiSkill3.

Every object and receptacle of the catalog is built once in every sub-scene; an episode moves the ones its
factor record names onto the table and leaves the rest parked on the floor behind the camera. Choosing other
objects, receptacles, distractors or table appearances is therefore a pose/texture change at reset, the same in
single-env CPU mode and batched GPU mode, and never a scene rebuild.

Success, grasp and the staged reward follow the study (docs/study.md section 1):
- grasp: both fingers in contact with >= 0.5 N, force within 85 deg of the opening axis (ManiSkill's test);
- success: object centre within the receptacle's half-extent + 1 cm in xy, object bottom at most 5 cm above the
  receptacle top, object-receptacle contact force > 0.03 N; evaluations read it at the last step;
- staged reward: the step-to-step change of 0.1*grasped_ever + 0.1*held_5_steps_ever + 1.0*(success and
  grasped_ever); a maximum return of 1.2, and -1 when a placed object is knocked off again.

For the evaluation's failure classes the info also says, per step: `receptacle_gap` (m, xy distance from the
object centre to the target receptacle's footprint, 0 over it, rounded to 0.01 mm), `distractor_grasped` (a distractor object is
grasped), `distractor_on_receptacle` (a distractor object rests on the target receptacle, by the success geometry
without the contact test) and `on_distractor_receptacle` (the target object rests on a distractor receptacle);
all False where the episode has no distractors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import sapien
import torch

from mani_skill.utils.structs.pose import Pose

from ..catalog import MeshAsset
from ..factors.pick import TEST_TEMPLATES, TRAIN_POSITIONS, TRAIN_TEMPLATE, TRAIN_YAWS, RING_POSITIONS, TEST_YAWS
from ..factors.pick import (
    FOOTPRINT_CLEARANCE, MIN_PAIR_DISTANCE, PickFactors, PickPools, sample_factors, train_pools,
)
from . import scene as scene_lib
from ..errors import ConfigError
from .base import (
    ActionError, VLATaskEnv, common_outside_pools, footprint, footprints_apart, in_pool, yaw_quat,
)
from .contacts import grasp_test, pair_forces

__all__ = ["ActionError", "VLAPickEnv"]

SUCCESS_XY_MARGIN = 0.01
SUCCESS_MAX_GAP = 0.05
SUCCESS_MIN_CONTACT = 0.03
GRASP_MIN_FORCE = 0.5
GRASP_MAX_ANGLE = 85
HOLD_STEPS = 5


def pick_outside_pools(f: PickFactors, pools: PickPools) -> list[str]:
    """The factors of `f` that `pools` could not have drawn (values outside the pools; distractor counts,
    distances or reposition distances other than the pools'), by field name; empty for a record of the pools."""
    out = [name for name, value, pool in (("object", f.object, pools.objects),
                                          ("receptacle", f.receptacle, pools.receptacles)) if value not in pool]
    if not in_pool(f.object_xy, pools.object_positions):
        out.append("object_xy")
    if not in_pool(f.receptacle_xy, pools.receptacle_positions):
        out.append("receptacle_xy")
    out += common_outside_pools(f, pools)
    for key, placements, names, count, positions, anchor, yaws in (
            ("distractor_objects", f.distractor_objects, pools.distractor_objects, pools.n_distractor_objects,
             pools.object_positions, f.object_xy, pools.yaws),
            ("distractor_receptacles", f.distractor_receptacles, pools.distractor_receptacles,
             pools.n_distractor_receptacles, pools.receptacle_positions, f.receptacle_xy, (0.0,))):
        if len(placements) != count or any(
                p.name not in names or not in_pool(p.xy, positions) or not in_pool((p.yaw,), [(y,) for y in yaws])
                or math.dist(p.xy, anchor) <= pools.distractor_min_distance for p in placements):
            out.append(key)
    if pools.reposition_positions:
        lo, hi = pools.reposition_distance
        if f.reposition_xy is None or not in_pool(f.reposition_xy, pools.reposition_positions) or not (
                lo - 1e-9 <= math.dist(f.reposition_xy, f.object_xy) <= hi + 1e-9):
            out.append("reposition_xy")
    elif f.reposition_xy is not None:
        out.append("reposition_xy")
    return out


class VLAPickEnv(VLATaskEnv):
    TASK_NAME = "VLAPick"
    FACTORS_CLS = PickFactors
    TEMPLATES = {"train": (TRAIN_TEMPLATE,), "test": TEST_TEMPLATES}

    # ------------------------------------------------------------------ task hooks
    def _setup_assets(self) -> None:
        self._object_assets: list[MeshAsset] = [self._fit_to_gripper(a) for a in self.catalog.objects]
        self._receptacle_assets: list[MeshAsset] = list(self.catalog.receptacles)
        self._object_index = {a.name: i for i, a in enumerate(self._object_assets)}
        self._receptacle_index = {a.name: i for i, a in enumerate(self._receptacle_assets)}

    def _fit_to_gripper(self, asset: MeshAsset) -> MeshAsset:
        """The object as this env builds it: shrunk (keeping its proportions) where it is wider than the robot's
        gripper can grasp (RobotSpec.max_object_width)."""
        limit = self.robot_spec.max_object_width
        width = 2 * min(asset.half_extents[:2])
        if limit is None or width <= limit:
            return asset
        return dataclasses.replace(asset, scale=asset.scale * limit / width)

    def _default_pools(self):
        return train_pools(self.catalog)

    def _sample_factors(self, rng: np.random.RandomState) -> PickFactors:
        return sample_factors(self.pools, rng, self.catalog)

    def object_names(self, split: str | None = None) -> list[str]:
        return self.catalog.names("objects", split)

    def placement_region(self, region: str) -> dict:
        if region in ("ring", "test"):
            return dict(object_positions=RING_POSITIONS, receptacle_positions=RING_POSITIONS, yaws=TEST_YAWS)
        if region in ("grid", "train"):
            return dict(object_positions=TRAIN_POSITIONS, receptacle_positions=TRAIN_POSITIONS, yaws=TRAIN_YAWS)
        raise ValueError(f"VLAPick placement region must be 'ring' (held out) or 'grid' (training), got {region!r}")

    def _build_mesh_actor(self, asset: MeshAsset, name: str, park_index: int):
        builder = self.scene.create_actor_builder()
        material = sapien.pysapien.physx.PhysxMaterial(asset.friction, asset.friction, 0.0)
        scale = [asset.scale] * 3
        builder.add_multiple_convex_collisions_from_file(
            str(asset.collision), scale=scale, material=material, density=asset.density
        )
        builder.add_visual_from_file(str(asset.visual), scale=scale)
        builder.initial_pose = self._park_pose(park_index)
        return builder.build(name=name)

    def _load_items(self):
        self._plan_parking([a.footprint_radius for a in (*self._object_assets, *self._receptacle_assets)])
        self.objects = [self._build_mesh_actor(a, f"object:{a.name}", k) for k, a in enumerate(self._object_assets)]
        n = len(self.objects)
        self.receptacles = [
            self._build_mesh_actor(a, f"receptacle:{a.name}", n + k) for k, a in enumerate(self._receptacle_assets)
        ]
        dev = self.device
        self._obj_height = torch.tensor([a.height for a in self._object_assets], device=dev)
        self._rec_height = torch.tensor([a.height for a in self._receptacle_assets], device=dev)
        self._rec_half_xy = torch.tensor([a.half_extents[:2] for a in self._receptacle_assets], device=dev)

    def _segmentation_groups(self):
        groups = [([a], k) for k, a in enumerate(self.objects)]
        return groups + [([a], 1000 + j) for j, a in enumerate(self.receptacles)]

    # ------------------------------------------------------------------ episodes
    def _check_factors(self, f: PickFactors) -> None:
        for kind, name, index in (("object", f.object, self._object_index),
                                  ("receptacle", f.receptacle, self._receptacle_index)):
            if name not in index:
                raise ValueError(f"factor {kind}={name!r} is not in the catalog; known: {sorted(index)}")
        for p in f.distractor_objects:
            if p.name not in self._object_index or p.name == f.object:
                raise ValueError(f"distractor object {p.name!r} must be a catalog object other than the target")
        for p in f.distractor_receptacles:
            if p.name not in self._receptacle_index or p.name == f.receptacle:
                raise ValueError(f"distractor receptacle {p.name!r} must be a catalog receptacle other than the target")
        self._check_common_factors(f)
        self._check_placements(f)

    def _check_placements(self, f: PickFactors) -> None:
        """The placement rules for an explicit record: every item on the table and off the robot's base; object
        and receptacle cells more than 7 cm apart (MIN_PAIR_DISTANCE); no two items' footprints (bounding boxes as
        built, turned by their yaws) closer than FOOTPRINT_CLEARANCE; a reposition target clear of the receptacle
        and the distractors. (The sampler keeps to the stricter bounding circles; a record may sit closer.)"""
        cx, cy = scene_lib.WORKSPACE_CENTER
        obj = self._object_assets[self._object_index[f.object]]
        rec = self._receptacle_assets[self._receptacle_index[f.receptacle]]
        items = [("object", "object_xy", f.object_xy, obj, f.object_yaw),
                 ("receptacle", "receptacle_xy", f.receptacle_xy, rec, 0.0)]
        items += [(f"distractor object {p.name!r}", f"distractor_objects[{k}].xy", p.xy,
                   self._object_assets[self._object_index[p.name]], p.yaw) for k, p in enumerate(f.distractor_objects)]
        items += [(f"distractor receptacle {p.name!r}", f"distractor_receptacles[{k}].xy", p.xy,
                   self._receptacle_assets[self._receptacle_index[p.name]], p.yaw)
                  for k, p in enumerate(f.distractor_receptacles)]
        gap = math.dist(f.object_xy, f.receptacle_xy)
        if gap <= MIN_PAIR_DISTANCE:
            raise ConfigError(f"object_xy={tuple(f.object_xy)} and receptacle_xy={tuple(f.receptacle_xy)} are "
                              f"{gap:.3f} m apart; object and receptacle need more than {MIN_PAIR_DISTANCE} m")
        placed = []
        for what, key, xy, asset, yaw in items:
            if len(xy) != 2 or not all(map(math.isfinite, (*xy, yaw))):
                raise ConfigError(f"factor {key} must be two finite numbers (m) with a finite yaw, got {xy}, {yaw}")
            corners = footprint(asset.bbox_min, asset.bbox_max, asset.scale, (cx + xy[0], cy + xy[1]), yaw)
            self._check_on_table(what, key, xy, corners)
            for other, other_corners in placed:
                if not footprints_apart(corners, other_corners, FOOTPRINT_CLEARANCE):
                    raise ConfigError(f"factor {key}={tuple(xy)} puts the {what} on the {other}: footprints must "
                                      f"stay {FOOTPRINT_CLEARANCE} m apart")
            placed.append((what, corners))
        if f.reposition_xy is not None:
            xy = f.reposition_xy
            if len(xy) != 2 or not all(map(math.isfinite, xy)):
                raise ConfigError(f"factor reposition_xy must be two finite numbers (m), got {xy}")
            corners = footprint(obj.bbox_min, obj.bbox_max, obj.scale, (cx + xy[0], cy + xy[1]), f.object_yaw)
            self._check_on_table("object", "reposition_xy", xy, corners)
            for other, other_corners in placed[1:]:
                if not footprints_apart(corners, other_corners, FOOTPRINT_CLEARANCE):
                    raise ConfigError(f"factor reposition_xy={tuple(xy)} would move the object onto the {other} "
                                      f"(footprints must stay {FOOTPRINT_CLEARANCE} m apart)")

    def _outside_pools(self, f: PickFactors, pools: PickPools) -> list[str]:
        return pick_outside_pools(f, pools)

    def _reset_task_state(self, env_idx: torch.Tensor) -> None:
        n, dev = self.num_envs, self.device
        if getattr(self, "grasped_ever", None) is None or len(self.grasped_ever) != n:
            self.grasped_ever = torch.zeros(n, dtype=torch.bool, device=dev)
            self.held_ever = torch.zeros(n, dtype=torch.bool, device=dev)
            self.held_steps = torch.zeros(n, dtype=torch.long, device=dev)
            self.potential = torch.zeros(n, device=dev)
            self._last_progress_step = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.target_object = torch.tensor([self._object_index[self.factors[i].object] for i in range(n)], device=dev)
        self.target_receptacle = torch.tensor(
            [self._receptacle_index[self.factors[i].receptacle] for i in range(n)], device=dev
        )
        self._distractor_objects = self._index_table([[p.name for p in self.factors[i].distractor_objects]
                                                      for i in range(n)], self._object_index)
        self._distractor_receptacles = self._index_table(
            [[p.name for p in self.factors[i].distractor_receptacles] for i in range(n)], self._receptacle_index)
        self.grasped_ever[env_idx] = False
        self.held_steps[env_idx] = 0
        self.held_ever[env_idx] = False
        self.potential[env_idx] = 0.0
        self._last_progress_step[env_idx] = -1

    def _index_table(self, names: list[list[str]], index: dict[str, int]) -> torch.Tensor:
        """(num_envs, max count) long catalog indices of each env's distractors, -1 where an env has fewer."""
        width = max((len(row) for row in names), default=0)
        table = torch.full((self.num_envs, width), -1, dtype=torch.long)
        for i, row in enumerate(names):
            for j, name in enumerate(row):
                table[i, j] = index[name]
        return table.to(self.device)

    def _place_items(self, env_idx: torch.Tensor, idx: list[int]) -> None:
        """Put the episode's items on the table and park every other object/receptacle (per reset env)."""
        cx, cy = scene_lib.WORKSPACE_CENTER
        b = len(idx)
        for group, assets, index in ((self.objects, self._object_assets, self._object_index),
                                     (self.receptacles, self._receptacle_assets, self._receptacle_index)):
            is_obj = group is self.objects
            offset = 0 if is_obj else len(self.objects)
            wanted: dict[int, dict[int, tuple[float, float, float]]] = {}
            for row, i in enumerate(idx):
                f = self.factors[i]
                if is_obj:
                    items = [(f.object, f.object_xy, f.object_yaw)]
                    items += [(p.name, p.xy, p.yaw) for p in f.distractor_objects]
                else:
                    items = [(f.receptacle, f.receptacle_xy, 0.0)]
                    items += [(p.name, p.xy, p.yaw) for p in f.distractor_receptacles]
                for name, xy, yaw in items:
                    wanted.setdefault(index[name], {})[row] = (cx + xy[0], cy + xy[1], yaw)
            for k, actor in enumerate(group):
                park = self._park_pose(offset + k)
                p = torch.tensor(park.p, dtype=torch.float32).repeat(b, 1)
                yaw = torch.zeros(b)
                for row, (x, y, w) in wanted.get(k, {}).items():
                    p[row] = torch.tensor([x, y, 0.001])
                    yaw[row] = w
                pose = Pose.create_from_pq(p.to(self.device), yaw_quat(yaw).to(self.device))
                actor.set_pose(pose)
                if not self.gpu_sim_enabled:
                    self._set_rendered(actor._objs, idx, [row in wanted.get(k, {}) for row in range(b)])
                actor.set_linear_velocity(torch.zeros((b, 3), device=self.device))
                actor.set_angular_velocity(torch.zeros((b, 3), device=self.device))

    # ------------------------------------------------------------------ per-env views of the selected items
    def object_pose(self) -> Pose:
        return Pose.create(self._select(self.objects, self.target_object, lambda a: a.pose.raw_pose))

    def receptacle_pose(self) -> Pose:
        return Pose.create(self._select(self.receptacles, self.target_receptacle, lambda a: a.pose.raw_pose))

    # ------------------------------------------------------------------ events
    def teleport_target_object(self, mask: torch.Tensor, xy: torch.Tensor) -> None:
        """Move each masked env's target object to workspace offset `xy` (N, 2), on the table, at rest."""
        cx, cy = scene_lib.WORKSPACE_CENTER
        for k in torch.unique(self.target_object[mask]).tolist():
            rows = mask & (self.target_object == k)
            actor = self.objects[k]
            raw = actor.pose.raw_pose.clone()
            raw[rows, 0] = xy[rows, 0] + cx
            raw[rows, 1] = xy[rows, 1] + cy
            raw[rows, 2] = 0.002
            actor.set_pose(Pose.create(raw))
            lin, ang = actor.linear_velocity.clone(), actor.angular_velocity.clone()
            lin[rows] = 0
            ang[rows] = 0
            actor.set_linear_velocity(lin)
            actor.set_angular_velocity(ang)

    # ------------------------------------------------------------------ evaluation and reward
    def _rests_on(self, obj_p: torch.Tensor, obj_height: torch.Tensor, rec_pose: Pose, rec_half: torch.Tensor,
                  rec_height: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The success geometry of objects at `obj_p` (N, 3) over receptacles at `rec_pose`: (in_xy, in_z, gap), each
        (N,); gap is the xy distance (m) from the object centre to the receptacle footprint (0 over it)."""
        q = rec_pose.q
        rec_p = rec_pose.p
        # Offset of the object from the receptacle, in the receptacle's yaw frame.
        rec_yaw = torch.atan2(2 * (q[:, 0] * q[:, 3] + q[:, 1] * q[:, 2]), 1 - 2 * (q[:, 2] ** 2 + q[:, 3] ** 2))
        d = obj_p[:, :2] - rec_p[:, :2]
        c, s = torch.cos(rec_yaw), torch.sin(rec_yaw)
        local = torch.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
        in_xy = (local.abs() <= rec_half + SUCCESS_XY_MARGIN).all(-1)
        gap_xy = torch.linalg.norm(torch.clamp(local.abs() - rec_half, min=0.0), dim=-1)
        rec_top = rec_p[:, 2] + rec_height
        gap = obj_p[:, 2] - rec_top
        obj_mid = obj_p[:, 2] + obj_height / 2
        rec_mid = rec_p[:, 2] + rec_height / 2
        in_z = (gap <= SUCCESS_MAX_GAP) & (obj_mid > rec_mid)
        return in_xy, in_z, gap_xy

    def _distractor_info(self, obj_p: torch.Tensor, rec_pose: Pose, grasped: torch.Tensor | None = None) -> dict:
        """What the distractors are doing (see the module docstring); one pass per distractor column, and none in
        conditions without distractors. `grasped`: whether a distractor is grasped, when already known (CPU
        simulation: from the step's one contact query)."""
        n, dev = self.num_envs, self.device
        known = grasped is not None
        grasped = grasped if known else torch.zeros(n, dtype=torch.bool, device=dev)
        on_target = torch.zeros_like(grasped)
        on_distractor = torch.zeros_like(grasped)
        rec = self.target_receptacle
        for col in range(self._distractor_objects.shape[1]):
            which = self._distractor_objects[:, col]
            valid, safe = which >= 0, which.clamp(min=0)
            pose = Pose.create(self._select(self.objects, safe, lambda a: a.pose.raw_pose))
            if not known:
                g = self._select(self.objects, safe,
                                 lambda a: self.agent.is_grasping(a, GRASP_MIN_FORCE, GRASP_MAX_ANGLE))
                grasped |= valid & g
            in_xy, in_z, _ = self._rests_on(pose.p, self._obj_height[safe], rec_pose, self._rec_half_xy[rec],
                                            self._rec_height[rec])
            on_target |= valid & in_xy & in_z
        for col in range(self._distractor_receptacles.shape[1]):
            which = self._distractor_receptacles[:, col]
            valid, safe = which >= 0, which.clamp(min=0)
            pose = Pose.create(self._select(self.receptacles, safe, lambda a: a.pose.raw_pose))
            in_xy, in_z, _ = self._rests_on(obj_p, self._obj_height[self.target_object], pose,
                                            self._rec_half_xy[safe], self._rec_height[safe])
            on_distractor |= valid & in_xy & in_z
        return {"distractor_grasped": grasped, "distractor_on_receptacle": on_target,
                "on_distractor_receptacle": on_distractor}

    def evaluate(self) -> dict:
        obj_p = self.object_pose().p
        rec_pose = self.receptacle_pose()
        in_xy, in_z, gap_xy = self._rests_on(obj_p, self._obj_height[self.target_object], rec_pose,
                                             self._rec_half_xy[self.target_receptacle],
                                             self._rec_height[self.target_receptacle])
        contact, is_grasped, distractor_grasped = self._contacts_and_grasps()
        success = in_xy & in_z & (contact > SUCCESS_MIN_CONTACT)
        self._update_progress(is_grasped, success)
        return {
            "success": success,
            "is_grasped": is_grasped,
            "grasped_ever": self.grasped_ever.clone(),
            "held_ever": self.held_ever.clone(),
            "is_placed": in_xy & in_z,
            "contact_force": contact,
            "potential": self.potential.clone(),
            # Rounded to 0.01 mm: PhysX carries float-level state from one episode into the next (about 1e-8 m),
            # and a reported distance that differs at that level makes two replays of a seed look different.
            "receptacle_gap": torch.round(gap_xy, decimals=5),
            **self._distractor_info(obj_p, rec_pose, distractor_grasped),
        }

    def _contacts_and_grasps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Object-receptacle contact force (N,) in newtons, whether the robot grasps the object (N,) bool, and
        whether it grasps a distractor object (N,) bool; the last is None on the GPU simulation, where
        `_distractor_info` asks ManiSkill per distractor column."""
        if self.gpu_sim_enabled:
            is_grasped = self._select(self.objects, self.target_object,
                                      lambda a: self.agent.is_grasping(a, GRASP_MIN_FORCE, GRASP_MAX_ANGLE))
            return self._pair_contact_force(), is_grasped, None
        # CPU simulation (one env): one contact query for the finger pairs of the object and of every distractor
        # object, and the placement pair.
        obj, rec = self.objects[int(self.target_object[0])], self.receptacles[int(self.target_receptacle[0])]
        agent = self.agent
        held = [obj] + [self.objects[k] for k in self._distractor_objects[0].tolist() if k >= 0]
        pairs = [(finger, item) for item in held for finger in (agent.finger1_link, agent.finger2_link)]
        forces = pair_forces(self.scene, pairs + [(obj, rec)])
        grasps = [grasp_test(agent, forces[2 * i], forces[2 * i + 1], GRASP_MIN_FORCE, GRASP_MAX_ANGLE)
                  for i in range(len(held))]
        distractor = torch.zeros(1, dtype=torch.bool, device=self.device)
        for g in grasps[1:]:
            distractor |= g
        return torch.linalg.norm(forces[-1], dim=-1), grasps[0], distractor

    def _pair_contact_force(self) -> torch.Tensor:
        """Object-receptacle contact force (N,) on the GPU simulation: one query per object-receptacle pair in use."""
        out = torch.zeros(self.num_envs, device=self.device)
        pairs = torch.stack([self.target_object, self.target_receptacle], -1)
        for o, r in torch.unique(pairs, dim=0).tolist():
            forces = self.scene.get_pairwise_contact_forces(self.objects[o], self.receptacles[r])
            mask = (self.target_object == o) & (self.target_receptacle == r)
            out[mask] = torch.linalg.norm(forces, dim=-1)[mask]
        return out

    def _update_progress(self, is_grasped: torch.Tensor, success: torch.Tensor) -> None:
        # evaluate() may be called more than once per step (by users, by wrappers); count each step once.
        step = self.elapsed_steps.to(self.device).long()
        fresh = step != self._last_progress_step
        self._last_progress_step = torch.where(fresh, step, self._last_progress_step)
        self.held_steps = torch.where(fresh, torch.where(is_grasped, self.held_steps + 1, 0), self.held_steps)
        self.grasped_ever |= fresh & is_grasped
        self.held_ever |= fresh & (self.held_steps >= HOLD_STEPS)
        self._new_potential = (0.1 * self.grasped_ever.float() + 0.1 * self.held_ever.float()
                               + 1.0 * (success & self.grasped_ever).float())

    def compute_dense_reward(self, obs: Any, action: torch.Tensor, info: dict):
        tcp = self.agent.tcp_pose.p
        obj = self.object_pose().p
        obj_center = obj.clone()
        obj_center[:, 2] += self._obj_height[self.target_object] / 2
        reach = 1 - torch.tanh(5 * torch.linalg.norm(obj_center - tcp, dim=-1))
        grasped = info["is_grasped"].float()
        goal = self.receptacle_pose().p.clone()
        goal[:, 2] += self._rec_height[self.target_receptacle] + 0.03
        place = 1 - torch.tanh(5 * torch.linalg.norm(goal - obj, dim=-1))
        reward = reach + grasped + place * grasped + 2 * info["is_placed"].float() * (1 - grasped)
        reward[info["success"]] = self.DENSE_MAX
        return reward

    def _get_obs_extra(self, info: dict):
        obs = dict(tcp_pose=self.agent.tcp_pose.raw_pose)
        if self.obs_mode_struct.use_state:
            obj, rec = self.object_pose(), self.receptacle_pose()
            obs.update(
                is_grasped=info["is_grasped"].float(),
                obj_pose=obj.raw_pose,
                receptacle_pose=rec.raw_pose,
                tcp_to_obj_pos=obj.p - self.agent.tcp_pose.p,
                obj_to_receptacle_pos=rec.p - obj.p,
            )
        return obs
