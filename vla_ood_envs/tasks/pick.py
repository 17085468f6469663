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
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sapien
import sapien.render
import torch
from gymnasium.utils import seeding as gym_seeding

from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import SimConfig

from ..catalog import Catalog, MeshAsset, default_catalog
from ..factors import PickFactors, PickPools, sample_factors, train_pools
from . import robots, scene as scene_lib

SUCCESS_XY_MARGIN = 0.01
SUCCESS_MAX_GAP = 0.05
SUCCESS_MIN_CONTACT = 0.03
GRASP_MIN_FORCE = 0.5
GRASP_MAX_ANGLE = 85
HOLD_STEPS = 5
PARK_ORIGIN = (2.5, -2.0)  # behind the camera, on the floor
PARK_PITCH = 0.35


class ActionError(ValueError):
    """An action of the wrong shape, with NaN/inf, or out of bounds."""


def _yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    half = yaw / 2
    return torch.stack([torch.cos(half), torch.zeros_like(half), torch.zeros_like(half), torch.sin(half)], -1)


class VLAPickEnv(BaseEnv):
    SUPPORTED_ROBOTS = ["panda_vla"]
    SUPPORTED_REWARD_MODES = ("staged", "dense", "normalized_dense", "sparse", "none")

    def __init__(
        self,
        *args,
        robot_uids: str = "panda_vla",
        pools: PickPools | None = None,
        catalog: Catalog | None = None,
        camera_width: int = 224,
        camera_height: int = 224,
        max_episode_steps: int = 80,
        sim_freq: int = 500,
        control_freq: int = 5,
        terminate_on_success: bool = False,
        action_out_of_bounds: str = "error",
        reward_mode: str = "staged",
        control_mode: str = robots.CONTROL_MODE,
        **kwargs,
    ):
        if robot_uids != "panda_vla":
            raise ValueError(
                f"VLAPick runs on robot_uids='panda_vla' (Franka Panda with the study's metric delta-pose action); "
                f"{robot_uids!r} is not supported. The study's WidowX-250S is not supported yet: besides its "
                f"assets (python -m mani_skill.utils.download_asset widowx250s) it needs its own metric controller, "
                f"start pose and camera set-up in vla_ood_envs.tasks."
            )
        if action_out_of_bounds not in ("error", "clip"):
            raise ValueError("action_out_of_bounds must be 'error' or 'clip'")
        self.catalog = catalog or default_catalog()
        self.pools = pools or train_pools(self.catalog)
        self.pools.validate(self.catalog)
        self.camera_width, self.camera_height = int(camera_width), int(camera_height)
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = terminate_on_success
        self.action_out_of_bounds = action_out_of_bounds
        sim_config = dict(kwargs.pop("sim_config", None) or {})
        sim_config.setdefault("sim_freq", sim_freq)
        sim_config.setdefault("control_freq", control_freq)
        self._object_assets: list[MeshAsset] = list(self.catalog.objects)
        self._receptacle_assets: list[MeshAsset] = list(self.catalog.receptacles)
        self._object_index = {a.name: i for i, a in enumerate(self._object_assets)}
        self._receptacle_index = {a.name: i for i, a in enumerate(self._receptacle_assets)}
        self._table_index = {a.name: i for i, a in enumerate(self.catalog.tables)}
        self.factors: list[PickFactors | None] = []
        self.events: list[list[dict]] = []
        self.episode_version = 0  # bumps whenever any env starts an episode (wrappers cache per-episode data)
        self._pending_factors: dict[int, PickFactors] = {}
        super().__init__(*args, robot_uids=robot_uids, reward_mode=reward_mode, control_mode=control_mode,
                         sim_config=sim_config, **kwargs)

    # ------------------------------------------------------------------ scene
    @property
    def _default_sim_config(self):
        return SimConfig()

    @property
    def _default_sensor_configs(self):
        return [scene_lib.camera_config(self.camera_width, self.camera_height)]

    @property
    def _default_human_render_camera_configs(self):
        return scene_lib.camera_config(512, 512, name="render_camera")

    def _load_agent(self, options: dict):
        super()._load_agent(options, sapien.Pose(p=[*scene_lib.ROBOT_BASE_XY, 0]))

    def _park_pose(self, k: int) -> sapien.Pose:
        x = PARK_ORIGIN[0] + PARK_PITCH * (k % 8)
        y = PARK_ORIGIN[1] + PARK_PITCH * (k // 8)
        return sapien.Pose(p=[x, y, -2 * scene_lib.TABLE_HALF_SIZE[2] + 0.001])

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

    def _load_scene(self, options: dict):
        self._seg_lut = None
        self._table_textures = [sapien.render.RenderTexture2D(str(t.texture)) for t in self.catalog.tables]
        top = self.catalog.table_top or default_catalog().table_top
        self.table = scene_lib.build_table(self.scene, str(top), self._table_textures[0])
        self.floor = scene_lib.build_floor(self.scene)
        self.objects = [self._build_mesh_actor(a, f"object:{a.name}", k) for k, a in enumerate(self._object_assets)]
        n = len(self.objects)
        self.receptacles = [
            self._build_mesh_actor(a, f"receptacle:{a.name}", n + k) for k, a in enumerate(self._receptacle_assets)
        ]
        dev = self.device
        self._obj_height = torch.tensor([a.height for a in self._object_assets], device=dev)
        self._rec_height = torch.tensor([a.height for a in self._receptacle_assets], device=dev)
        self._rec_half_xy = torch.tensor([a.half_extents[:2] for a in self._receptacle_assets], device=dev)

    def _load_lighting(self, options: dict):
        scene_lib.add_lights(self.scene)

    # ------------------------------------------------------------------ episodes
    def reset(self, seed=None, options=None):
        options = dict(options or {})
        factors = options.pop("factors", None)
        if factors is not None:
            if isinstance(factors, (PickFactors, dict)):
                factors = [factors]
            env_idx = options.get("env_idx")
            targets = list(range(self.num_envs)) if env_idx is None else [int(i) for i in env_idx]
            if len(factors) != len(targets):
                raise ValueError(f"reset(options={{'factors': ...}}) needs one record per reset env "
                                 f"({len(targets)}), got {len(factors)}")
            pending = {
                i: f if isinstance(f, PickFactors) else PickFactors.from_dict(f) for i, f in zip(targets, factors)
            }
            for f in pending.values():
                self._check_factors(f)  # before the reset, so a bad record leaves the env as it was
            self._pending_factors = pending
        if "pools" in options:
            pools = options.pop("pools")
            pools.validate(self.catalog)
            self.pools = pools
        if seed is not None or self._np_random is None:
            # Gymnasium's seeding contract (env.np_random), which ManiSkill's reset does not set up itself.
            first = seed if seed is None or isinstance(seed, int) else int(np.atleast_1d(seed)[0])
            self._np_random, self._np_random_seed = gym_seeding.np_random(first)
        return super().reset(seed=seed, options=options)

    def _check_factors(self, f: PickFactors) -> None:
        for kind, name, index in (("object", f.object, self._object_index),
                                  ("receptacle", f.receptacle, self._receptacle_index),
                                  ("table", f.table, self._table_index)):
            if name not in index:
                raise ValueError(f"factor {kind}={name!r} is not in the catalog; known: {sorted(index)}")
        for p in f.distractor_objects:
            if p.name not in self._object_index or p.name == f.object:
                raise ValueError(f"distractor object {p.name!r} must be a catalog object other than the target")
        for p in f.distractor_receptacles:
            if p.name not in self._receptacle_index or p.name == f.receptacle:
                raise ValueError(f"distractor receptacle {p.name!r} must be a catalog receptacle other than the target")
        if f.overlay is not None and f.overlay not in self.catalog.names("overlays"):
            raise ValueError(f"overlay {f.overlay!r} is not in the catalog")
        if f.background is not None and f.background not in self._table_index:
            raise ValueError(f"background {f.background!r} is not a table appearance of the catalog")
        if len(f.robot_qpos_offset) != 7:
            raise ValueError("robot_qpos_offset needs 7 values (one per arm joint)")

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        idx = env_idx.cpu().tolist()
        if len(self.factors) != self.num_envs:
            self.factors = [None] * self.num_envs
            self.events = [[] for _ in range(self.num_envs)]
            self._episode_state_init()
        for i in idx:
            # Explicit records were checked in reset(); sampled ones come from pools checked by validate().
            f = self._pending_factors.pop(i, None)
            if f is None:
                f = sample_factors(self.pools, self._batched_episode_rng[i], self.catalog)
            self.factors[i] = f
            self.events[i] = []
        self._pending_factors = {}
        self.episode_version += 1
        self._place_actors(env_idx, idx)
        self._reset_robot(env_idx, idx)
        for i in idx:
            scene_lib.set_table_texture(self.table, i, self._table_textures[self._table_index[self.factors[i].table]])
        dev = self.device
        self.target_object = torch.tensor([self._object_index[self.factors[i].object] for i in range(self.num_envs)],
                                          device=dev)
        self.target_receptacle = torch.tensor(
            [self._receptacle_index[self.factors[i].receptacle] for i in range(self.num_envs)], device=dev
        )
        self.grasped_ever[env_idx] = False
        self.held_steps[env_idx] = 0
        self.held_ever[env_idx] = False
        self.potential[env_idx] = 0.0
        self._last_progress_step[env_idx] = -1

    def _episode_state_init(self):
        n, dev = self.num_envs, self.device
        self.grasped_ever = torch.zeros(n, dtype=torch.bool, device=dev)
        self.held_ever = torch.zeros(n, dtype=torch.bool, device=dev)
        self.held_steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.potential = torch.zeros(n, device=dev)
        self._last_progress_step = torch.full((n,), -1, dtype=torch.long, device=dev)

    def _place_actors(self, env_idx: torch.Tensor, idx: list[int]) -> None:
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
                pose = Pose.create_from_pq(p.to(self.device), _yaw_quat(yaw).to(self.device))
                actor.set_pose(pose)
                if not self.gpu_sim_enabled:
                    self._set_rendered(actor, idx, [row in wanted.get(k, {}) for row in range(b)])
                actor.set_linear_velocity(torch.zeros((b, 3), device=self.device))
                actor.set_angular_velocity(torch.zeros((b, 3), device=self.device))

    @staticmethod
    def _set_rendered(actor, idx: list[int], on: list[bool]) -> None:
        """Skip parked items when rendering: they are out of view, but the CPU rasteriser still pays for them
        (about 15% of a 224x224 frame). Only on CPU sim, where each sub-scene's render body is its own object."""
        for i, visible in zip(idx, on):
            body = actor._objs[i].find_component_by_type(sapien.render.RenderBodyComponent)
            if body is not None and body.is_enabled != visible:
                body.enable() if visible else body.disable()

    def _reset_robot(self, env_idx: torch.Tensor, idx: list[int]) -> None:
        rest = torch.tensor(self.agent.keyframes["rest"].qpos, dtype=torch.float32, device=self.device)
        qpos = rest.repeat(len(idx), 1)
        offsets = torch.tensor([self.factors[i].robot_qpos_offset for i in idx], dtype=torch.float32,
                               device=self.device)
        qpos[:, :7] += offsets
        self.agent.reset(qpos)
        self.agent.robot.set_pose(Pose.create_from_pq(
            torch.tensor([*scene_lib.ROBOT_BASE_XY, 0.0], device=self.device).repeat(len(idx), 1)))

    # ------------------------------------------------------------------ per-env views of the selected items
    def _select(self, actors: Sequence, which: torch.Tensor, fn) -> torch.Tensor:
        """fn(actor) for each env's selected actor, batched: one call per distinct actor in use, not per env."""
        if self.num_envs == 1:
            return fn(actors[int(which[0])])
        out = None
        for k in torch.unique(which).tolist():
            value = fn(actors[k])
            if out is None:
                out = torch.zeros((self.num_envs, *value.shape[1:]), dtype=value.dtype, device=self.device)
            mask = which == k
            out[mask] = value[mask]
        return out

    def object_pose(self) -> Pose:
        return Pose.create(self._select(self.objects, self.target_object, lambda a: a.pose.raw_pose))

    def receptacle_pose(self) -> Pose:
        return Pose.create(self._select(self.receptacles, self.target_receptacle, lambda a: a.pose.raw_pose))

    # ------------------------------------------------------------------ image-space and event helpers
    ROBOT_SEG = -2
    OTHER_SEG = -1

    def segmentation_lut(self) -> torch.Tensor:
        """Maps a segmentation id to: ROBOT_SEG for robot links, k for object k, 1000 + j for receptacle j,
        OTHER_SEG for everything else (table, floor)."""
        if self._seg_lut is None:
            id_map = self.segmentation_id_map
            lut = torch.full((max(id_map) + 2,), self.OTHER_SEG, dtype=torch.long)
            robot_links = {id(link) for link in self.agent.robot.get_links()}
            objects = {id(a): k for k, a in enumerate(self.objects)}
            receptacles = {id(a): k for k, a in enumerate(self.receptacles)}
            for seg_id, thing in id_map.items():
                if id(thing) in robot_links:
                    lut[seg_id] = self.ROBOT_SEG
                elif id(thing) in objects:
                    lut[seg_id] = objects[id(thing)]
                elif id(thing) in receptacles:
                    lut[seg_id] = 1000 + receptacles[id(thing)]
            self._seg_lut = lut.to(self.device)
        return self._seg_lut

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

    @property
    def instructions(self) -> list[str]:
        return [f.instruction if f is not None else "" for f in self.factors]

    def manifests(self) -> list[dict]:
        """The factor record of each env's current episode, plus its seed (the episode manifest)."""
        seeds = [int(s) for s in np.atleast_1d(self._episode_seed)] if self._episode_seed is not None else []
        out = []
        for i, f in enumerate(self.factors):
            d = f.to_dict() if f is not None else {}
            d["task"] = "VLAPick"
            d["seed"] = seeds[i] if i < len(seeds) else None
            d["pools"] = self.pools.name
            d["events"] = [dict(e) for e in self.events[i]] if i < len(self.events) else []
            out.append(d)
        return out

    # ------------------------------------------------------------------ evaluation and reward
    def evaluate(self) -> dict:
        obj_p = self.object_pose().p
        rec_pose = self.receptacle_pose()
        rec_p = rec_pose.p
        # Offset of the object from the receptacle, in the receptacle's yaw frame.
        q = rec_pose.q
        rec_yaw = torch.atan2(2 * (q[:, 0] * q[:, 3] + q[:, 1] * q[:, 2]), 1 - 2 * (q[:, 2] ** 2 + q[:, 3] ** 2))
        d = obj_p[:, :2] - rec_p[:, :2]
        c, s = torch.cos(rec_yaw), torch.sin(rec_yaw)
        local = torch.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
        half = self._rec_half_xy[self.target_receptacle]
        in_xy = (local.abs() <= half + SUCCESS_XY_MARGIN).all(-1)
        rec_top = rec_p[:, 2] + self._rec_height[self.target_receptacle]
        gap = obj_p[:, 2] - rec_top
        obj_mid = obj_p[:, 2] + self._obj_height[self.target_object] / 2
        rec_mid = rec_p[:, 2] + self._rec_height[self.target_receptacle] / 2
        in_z = (gap <= SUCCESS_MAX_GAP) & (obj_mid > rec_mid)
        contact = self._pair_contact_force()
        is_grasped = self._select(self.objects, self.target_object,
                                  lambda a: self.agent.is_grasping(a, GRASP_MIN_FORCE, GRASP_MAX_ANGLE))
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
        }

    def _pair_contact_force(self) -> torch.Tensor:
        if self.num_envs == 1:
            forces = self.scene.get_pairwise_contact_forces(self.objects[int(self.target_object[0])],
                                                            self.receptacles[int(self.target_receptacle[0])])
            return torch.linalg.norm(forces, dim=-1)
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

    def compute_staged_reward(self, info: dict) -> torch.Tensor:
        reward = self._new_potential - self.potential
        self.potential = self._new_potential.clone()
        return reward

    def get_reward(self, obs: Any, action: torch.Tensor, info: dict):
        if self._reward_mode == "staged":
            return self.compute_staged_reward(info)
        return super().get_reward(obs=obs, action=action, info=info)

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
        reward[info["success"]] = 5.0
        return reward

    def compute_normalized_dense_reward(self, obs: Any, action: torch.Tensor, info: dict):
        return self.compute_dense_reward(obs=obs, action=action, info=info) / 5.0

    def compute_sparse_reward(self, obs: Any, action: torch.Tensor, info: dict):
        return info["success"].float()

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

    # ------------------------------------------------------------------ stepping
    def _validate_action(self, action):
        if action is None or isinstance(action, dict):
            return action
        a = torch.as_tensor(np.asarray(action) if not isinstance(action, torch.Tensor) else action,
                            dtype=torch.float32, device=self.device)
        if a.shape not in ((7,), (self.num_envs, 7)):
            raise ActionError(f"action must have shape (7,) or ({self.num_envs}, 7): [dx, dy, dz (m), droll, dpitch, "
                              f"dyaw (rad), gripper (+1 open, -1 close)]; got shape {tuple(a.shape)}")
        if not torch.isfinite(a).all():
            raise ActionError(f"action contains NaN or inf: {a.tolist()}")
        if getattr(self, "_action_bounds", None) is None:  # built once: this runs every step
            self._action_bounds = tuple(torch.as_tensor(b, device=self.device) for b in robots.action_bounds())
        low, high = self._action_bounds
        out = (a < low - 1e-6) | (a > high + 1e-6)
        if out.any():
            if self.action_out_of_bounds == "error":
                raise ActionError(
                    f"action out of bounds: each step moves at most {robots.MAX_DELTA_POS} m and "
                    f"{robots.MAX_DELTA_ROT} rad, gripper in [-1, 1]; got {a.tolist()}. Clip it yourself or make "
                    f"the env with action_out_of_bounds='clip'."
                )
            a = torch.clamp(a, low, high)
        return a

    def step(self, action):
        obs, reward, _, _, info = super().step(self._validate_action(action))
        elapsed = self.elapsed_steps.to(self.device)
        truncated = elapsed >= self.max_episode_steps
        terminated = info["success"].clone() if self.terminate_on_success else torch.zeros_like(truncated)
        return obs, reward, terminated, truncated, info
