"""What the VLA tasks share on top of ManiSkill's BaseEnv: factor records per episode, the tabletop scene, the
study's metric action with validation, the episode timing, the manifest, and the segmentation classes that
image perturbations read.

A task subclass defines its factor record and pools (`FACTORS_CLS`, `_default_pools`, `_sample_factors`,
`_check_factors`), builds its items once in `_load_items` (parked off-camera when unused, so changing items is a
pose change, never a rebuild), places them per episode in `_place_items`, and computes success and reward.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Sequence

import numpy as np
import sapien
import sapien.render
import torch
from gymnasium.utils import seeding as gym_seeding

from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import SimConfig

from ..catalog import Catalog, default_catalog
from . import robots, scene as scene_lib

PARK_ORIGIN = (2.5, -2.0)  # behind the camera, on the floor
PARK_PITCH = 0.35


class ActionError(ValueError):
    """An action of the wrong shape, with NaN/inf, or out of bounds."""


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    half = yaw / 2
    return torch.stack([torch.cos(half), torch.zeros_like(half), torch.zeros_like(half), torch.sin(half)], -1)


class VLATaskEnv(BaseEnv, metaclass=abc.ABCMeta):
    SUPPORTED_ROBOTS = list(robots.ROBOTS)
    SUPPORTED_REWARD_MODES = ("staged", "dense", "normalized_dense", "sparse", "none")
    TASK_NAME: ClassVar[str] = ""
    FACTORS_CLS: ClassVar[type] = object
    # Instruction templates by pool ("train": the one used for training data, "test": the held-out phrasings).
    TEMPLATES: ClassVar[dict[str, tuple[str, ...]]] = {}
    START_KEYFRAME: ClassVar[str] = "rest"  # the robot's nominal start (a keyframe of the agent, robots.py)
    # Segmentation classes (see segmentation_lut): robot links, everything that is not an item (table, floor).
    ROBOT_SEG = -2
    OTHER_SEG = -1

    def __init__(
        self,
        *args,
        robot_uids: str = "panda_vla",
        pools=None,
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
        # Checked before ManiSkill loads the agent: ManiSkill prompts on stdin and exits when assets are missing.
        self.robot_spec = robots.robot_spec(robot_uids, self.TASK_NAME)
        if action_out_of_bounds not in ("error", "clip"):
            raise ValueError("action_out_of_bounds must be 'error' or 'clip'")
        self.catalog = catalog or default_catalog()
        self._setup_assets()
        self.pools = pools or self._default_pools()
        self.validate_pools(self.pools)
        self.camera_width, self.camera_height = int(camera_width), int(camera_height)
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = terminate_on_success
        self.action_out_of_bounds = action_out_of_bounds
        sim_config = dict(kwargs.pop("sim_config", None) or {})
        sim_config.setdefault("sim_freq", sim_freq)
        sim_config.setdefault("control_freq", control_freq)
        self._table_index = {a.name: i for i, a in enumerate(self.catalog.tables)}
        self.factors: list = []
        self.events: list[list[dict]] = []
        self.episode_version = 0  # bumps whenever any env starts an episode (wrappers cache per-episode data)
        self._pending_factors: dict[int, Any] = {}
        super().__init__(*args, robot_uids=self.robot_spec.uid, reward_mode=reward_mode, control_mode=control_mode,
                         sim_config=sim_config, **kwargs)

    # ------------------------------------------------------------------ task hooks
    def _setup_assets(self) -> None:
        """Index the catalog items the task uses (runs before the pools are validated)."""

    @abc.abstractmethod
    def _default_pools(self):
        """The task's training pools."""

    @abc.abstractmethod
    def _sample_factors(self, rng: np.random.RandomState):
        """One episode's factor record drawn from `self.pools`."""

    @abc.abstractmethod
    def _check_factors(self, f):
        """Raise ValueError for a record the env cannot play; may return a completed copy of it."""

    @abc.abstractmethod
    def _load_items(self) -> None:
        """Build the task's items in every sub-scene (parked when unused)."""

    @abc.abstractmethod
    def _place_items(self, env_idx: torch.Tensor, idx: list[int]) -> None:
        """Put each reset env's items where its factor record says and park the others."""

    @abc.abstractmethod
    def _reset_task_state(self, env_idx: torch.Tensor) -> None:
        """Reset the per-env progress the task's success and reward keep (and `target_object`)."""

    @abc.abstractmethod
    def _segmentation_groups(self) -> list[tuple[Sequence, int]]:
        """(items, class) pairs for segmentation_lut: each ManiSkill actor or link in `items` maps to `class`."""

    @abc.abstractmethod
    def object_names(self, split: str | None = None) -> list[str]:
        """Names of the catalog items the task's `object` factor may take."""

    @abc.abstractmethod
    def placement_region(self, region: str) -> dict:
        """Pool changes that put the task's items in a named region ("train" or "test")."""

    # ------------------------------------------------------------------ scene
    @property
    def _default_sim_config(self):
        return SimConfig()

    @property
    def _default_sensor_configs(self):
        spec = self.robot_spec
        return [scene_lib.camera_config(self.camera_width, self.camera_height, spec.camera_pose, spec.camera_hfov,
                                        depth=self.obs_mode_struct.visual.depth)]

    def _setup_sensors(self, options: dict):
        super()._setup_sensors(options)
        scene_lib.zero_copy_pictures(self.scene.sensors.values())

    @property
    def _default_human_render_camera_configs(self):
        spec = self.robot_spec
        return scene_lib.camera_config(512, 512, spec.camera_pose, spec.camera_hfov, name="render_camera")

    def _load_agent(self, options: dict):
        super()._load_agent(options, sapien.Pose(p=[*self.robot_spec.base_xy, 0]))

    def _load_lighting(self, options: dict):
        scene_lib.add_lights(self.scene)

    def _load_scene(self, options: dict):
        self._seg_lut = None
        self._table_textures = [sapien.render.RenderTexture2D(str(t.texture)) for t in self.catalog.tables]
        top = self.catalog.table_top or default_catalog().table_top
        self.table = scene_lib.build_table(self.scene, str(top), self._table_textures[0])
        self.floor = scene_lib.build_floor(self.scene)
        self._load_items()

    def _park_pose(self, k: int) -> sapien.Pose:
        x = PARK_ORIGIN[0] + PARK_PITCH * (k % 8)
        y = PARK_ORIGIN[1] + PARK_PITCH * (k // 8)
        return sapien.Pose(p=[x, y, -2 * scene_lib.TABLE_HALF_SIZE[2] + 0.001])

    @staticmethod
    def _set_rendered(components: Sequence, idx: list[int], on: list[bool]) -> None:
        """Skip parked items when rendering: they are out of view, but the CPU rasteriser still pays for them
        (about 15% of a 224x224 frame). Only on CPU sim, where each sub-scene's render body is its own object.
        `components[i]` is sub-scene i's SAPIEN entity (an actor) or list of entities (an articulation's links)."""
        for i, visible in zip(idx, on):
            entities = components[i] if isinstance(components[i], (list, tuple)) else [components[i]]
            for entity in entities:
                body = entity.find_component_by_type(sapien.render.RenderBodyComponent)
                if body is not None and body.is_enabled != visible:
                    body.enable() if visible else body.disable()

    # ------------------------------------------------------------------ episodes
    def reset(self, seed=None, options=None):
        options = dict(options or {})
        factors = options.pop("factors", None)
        if factors is not None:
            if isinstance(factors, (self.FACTORS_CLS, dict)):
                factors = [factors]
            env_idx = options.get("env_idx")
            targets = list(range(self.num_envs)) if env_idx is None else [int(i) for i in env_idx]
            if len(factors) != len(targets):
                raise ValueError(f"reset(options={{'factors': ...}}) needs one record per reset env "
                                 f"({len(targets)}), got {len(factors)}")
            pending = {}
            for i, f in zip(targets, factors):
                f = f if isinstance(f, self.FACTORS_CLS) else self.FACTORS_CLS.from_dict(f)
                pending[i] = self._check_factors(f) or f  # before the reset: a bad record leaves the env as it was
            self._pending_factors = pending
        if "pools" in options:
            pools = options.pop("pools")
            self.validate_pools(pools)
            self.pools = pools
        if seed is not None or self._np_random is None:
            # Gymnasium's seeding contract (env.np_random), which ManiSkill's reset does not set up itself.
            first = seed if seed is None or isinstance(seed, int) else int(np.atleast_1d(seed)[0])
            self._np_random, self._np_random_seed = gym_seeding.np_random(first)
        return super().reset(seed=seed, options=options)

    def _check_common_factors(self, f) -> None:
        if f.table not in self._table_index:
            raise ValueError(f"factor table={f.table!r} is not in the catalog; known: {sorted(self._table_index)}")
        if f.overlay is not None and f.overlay not in self.catalog.names("overlays"):
            raise ValueError(f"overlay {f.overlay!r} is not in the catalog")
        if f.background is not None and f.background not in self._table_index:
            raise ValueError(f"background {f.background!r} is not a table appearance of the catalog")
        self._check_offset(f.robot_qpos_offset)

    def _check_offset(self, offset) -> None:
        dof = self.robot_spec.arm_dof
        if len(offset) not in (0, dof):
            raise ValueError(f"robot_qpos_offset needs {dof} values (one per arm joint of the {self.robot_spec.label}) "
                             f"or none (the nominal start); got {len(offset)}")

    def validate_pools(self, pools) -> None:
        """Raise for pools this env cannot sample from: the pools' own checks against the catalog, and robot
        offsets of the wrong length for this env's robot."""
        pools.validate(self.catalog)
        for offset in pools.robot_qpos_offsets:
            self._check_offset(offset)

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        idx = env_idx.cpu().tolist()
        if len(self.factors) != self.num_envs:
            self.factors = [None] * self.num_envs
            self.events = [[] for _ in range(self.num_envs)]
        for i in idx:
            # Explicit records were checked in reset(); sampled ones come from pools checked by validate().
            f = self._pending_factors.pop(i, None)
            if f is None:
                f = self._sample_factors(self._batched_episode_rng[i])
            self.factors[i] = f
            self.events[i] = []
        self._pending_factors = {}
        self.episode_version += 1
        self._place_items(env_idx, idx)
        self._reset_robot(idx)
        for i in idx:
            scene_lib.set_table_texture(self.table, i, self._table_textures[self._table_index[self.factors[i].table]])
        self._reset_task_state(env_idx)

    def _reset_robot(self, idx: list[int]) -> None:
        rest = torch.tensor(self.agent.keyframes[self.START_KEYFRAME].qpos, dtype=torch.float32, device=self.device)
        qpos = rest.repeat(len(idx), 1)
        zero = self.robot_spec.zero_offset()
        offsets = torch.tensor([self.factors[i].robot_qpos_offset or zero for i in idx], dtype=torch.float32,
                               device=self.device)
        qpos[:, :self.robot_spec.arm_dof] += offsets
        self.agent.reset(qpos)
        self.agent.robot.set_pose(Pose.create_from_pq(
            torch.tensor([*self.robot_spec.base_xy, 0.0], device=self.device).repeat(len(idx), 1)))

    def _select(self, items: Sequence, which: torch.Tensor, fn) -> torch.Tensor:
        """fn(item) for each env's selected item, batched: one call per distinct item in use, not per env."""
        if self.num_envs == 1:
            return fn(items[int(which[0])])
        out = None
        for k in torch.unique(which).tolist():
            value = fn(items[k])
            if out is None:
                out = torch.zeros((self.num_envs, *value.shape[1:]), dtype=value.dtype, device=self.device)
            mask = which == k
            out[mask] = value[mask]
        return out

    # ------------------------------------------------------------------ image-space helpers and the manifest
    def segmentation_lut(self) -> torch.Tensor:
        """Maps a segmentation id to a class: ROBOT_SEG for robot links, the item classes of the task
        (`_segmentation_groups`), OTHER_SEG for everything else (table, floor)."""
        if self._seg_lut is None:
            id_map = self.segmentation_id_map
            lut = torch.full((max(id_map) + 2,), self.OTHER_SEG, dtype=torch.long)
            classes = {id(link): self.ROBOT_SEG for link in self.agent.robot.get_links()}
            for entities, value in self._segmentation_groups():
                classes.update({id(e): value for e in entities})
            for seg_id, thing in id_map.items():
                if id(thing) in classes:
                    lut[seg_id] = classes[id(thing)]
            self._seg_lut = lut.to(self.device)
        return self._seg_lut

    @property
    def instructions(self) -> list[str]:
        return [f.instruction if f is not None else "" for f in self.factors]

    def manifests(self) -> list[dict]:
        """The factor record of each env's current episode, plus its seed (the episode manifest)."""
        seeds = [int(s) for s in np.atleast_1d(self._episode_seed)] if self._episode_seed is not None else []
        out = []
        for i, f in enumerate(self.factors):
            d = f.to_dict() if f is not None else {}
            d["task"] = self.TASK_NAME
            d["robot"] = self.robot_spec.uid
            d["seed"] = seeds[i] if i < len(seeds) else None
            d["pools"] = self.pools.name
            d["events"] = [dict(e) for e in self.events[i]] if i < len(self.events) else []
            out.append(d)
        return out

    # ------------------------------------------------------------------ reward plumbing
    def compute_staged_reward(self, info: dict) -> torch.Tensor:
        reward = self._new_potential - self.potential
        self.potential = self._new_potential.clone()
        return reward

    def get_reward(self, obs: Any, action: torch.Tensor, info: dict):
        if self._reward_mode == "staged":
            return self.compute_staged_reward(info)
        return super().get_reward(obs=obs, action=action, info=info)

    DENSE_MAX = 5.0  # the dense reward of a success; "normalized_dense" divides by it

    def compute_normalized_dense_reward(self, obs: Any, action: torch.Tensor, info: dict):
        return self.compute_dense_reward(obs=obs, action=action, info=info) / self.DENSE_MAX

    def compute_sparse_reward(self, obs: Any, action: torch.Tensor, info: dict):
        return info["success"].float()

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
