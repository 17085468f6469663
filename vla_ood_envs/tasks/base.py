"""What the VLA tasks share on top of ManiSkill's BaseEnv: factor records per episode, the tabletop scene, the
study's metric action with validation, the episode timing, the manifest, and the segmentation classes that
image perturbations read.

A task subclass defines its factor record and pools (`FACTORS_CLS`, `_default_pools`, `_sample_factors`,
`_check_factors`), builds its items once in `_load_items` (parked off-camera when unused, so changing items is a
pose change, never a rebuild), places them per episode in `_place_items`, and computes success and reward.
"""

from __future__ import annotations

import abc
import dataclasses
import math
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
from ..errors import ActionError, ConfigError, EnvClosedError
from ..factors.pools import is_nominal_start
from ..spec import ACTION_LAYOUT, CONTROL_MODE, MAX_DELTA_POS, MAX_DELTA_ROT, action_bounds
from . import arguments, robots, scene as scene_lib

DEFAULT_EPISODE_STEPS = 80  # 16 s at the 5 Hz control rate (the study's episode length)
# Seeds: numpy's RandomState (ManiSkill's episode RNG) takes [0, 2**32); episode seeds an env draws for itself are
# in [0, 2**31), the range ManiSkill draws its own from.
SEED_LIMIT = 2**32
DRAWN_SEED_LIMIT = 2**31
# What `reset(options=...)` understands: the package's keys, then ManiSkill's own.
RESET_OPTIONS = {
    "factors": "an episode record (or one per reset env) to play instead of a sampled one",
    "pools": "the pools to sample from, from this reset on",
    "reconfigure": "True rebuilds the scene first (bit-exact trajectories whatever ran before)",
    "env_idx": "which envs of a batched env to reset",
    "reset_to_env_states": "ManiSkill's restore of saved env states",
}

# Parking of unused items: on the floor, behind the Panda's camera (+x), inside the sub-scene's own cell of
# ManiSkill's GPU grid (sub-scenes sit `SimConfig.spacing` apart and share one physics scene).
PARK_X_START = 1.0  # the first column's edge; the table ends at x = 0.5, and from here on the floor is hidden
# from both robots' cameras (behind the Panda's, behind the table for the WidowX's)
PARK_CLEARANCE = 0.05  # between parked items, and between an item and the cell border
PLACEMENT_CLEARANCE = 0.005  # an explicit placement's footprint keeps this far from the table edge and the robot


class ParkingError(ConfigError):
    """The unused items do not fit inside one sub-scene's cell of ManiSkill's GPU grid."""


def park_slots(count: int, radius: float, spacing: float, x_start: float = PARK_X_START,
               clearance: float = PARK_CLEARANCE) -> list[tuple[float, float]]:
    """Floor positions (x, y in the sub-scene's frame, m) for `count` parked items of footprint radius at most
    `radius` (m): columns from `x_start` towards +x, rows across y, every footprint inside the sub-scene's cell
    |x|, |y| <= spacing / 2 (less `clearance`) and `clearance` apart.

    Raises ParkingError when they do not fit (a smaller `sim_config.spacing` than ManiSkill's default 5 m).
    """
    pitch = 2 * radius + clearance
    limit = spacing / 2 - clearance - radius
    xs = [x_start + radius + pitch * i for i in range(max(0, math.floor((limit - x_start - radius) / pitch) + 1))]
    rows = max(0, math.floor(2 * limit / pitch) + 1)
    ys = [pitch * (j - (rows - 1) / 2) for j in range(rows)]
    if len(xs) * len(ys) < count:
        raise ParkingError(
            f"{count} unused items of footprint radius {radius:.3f} m do not fit on the floor of a sub-scene's "
            f"{spacing:g} m cell (GPU simulation puts sub-scenes sim_config.spacing apart); use a larger "
            f"sim_config={{'spacing': ...}} (ManiSkill's default is 5)")
    return [(round(x, 4), round(y, 4)) for x in xs for y in ys][:count]


def check_seed(seed) -> int:
    """`seed` as an int, or ConfigError (a ValueError): Gymnasium and ManiSkill take ints in [0, 2**32) (numpy's RandomState)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int in [0, 2**32) (or None for a fresh episode seed drawn from the env's "
                         f"own stream), got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ConfigError(f"seed must be in [0, 2**32), got {int(seed)}")
    return int(seed)


def check_episode_steps(value) -> int:
    """`max_episode_steps` as a positive int (control steps per episode), or ConfigError."""
    return arguments.positive_int("max_episode_steps", value)


def check_reset_options(options) -> dict:
    """A copy of reset's `options`, after checking that it is a dict of known keys with sane values."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(f"reset options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(RESET_OPTIONS), key=str)
    if unknown:
        known = "; ".join(f"{k!r}: {what}" for k, what in RESET_OPTIONS.items())
        raise ConfigError(f"unknown reset option(s) {unknown}; known options are {known}")
    if "reconfigure" in options and not isinstance(options["reconfigure"], (bool, np.bool_)):
        raise ConfigError(f"reset option 'reconfigure' must be True or False, got {options['reconfigure']!r}")
    return dict(options)


def footprint(bbox_min: Sequence[float], bbox_max: Sequence[float], scale: float, xy: Sequence[float],
              yaw: float) -> np.ndarray:
    """The xy corners (4, 2; m) of a mesh's bounding box (`bbox_min/max` in its frame, times `scale`) placed at
    `xy` and turned by `yaw` (rad) about z, as the tasks place items (`yaw_quat`)."""
    (x0, y0), (x1, y1) = bbox_min[:2], bbox_max[:2]
    local = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float) * scale
    c, s = math.cos(yaw), math.sin(yaw)
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(xy, dtype=float)


def footprints_apart(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Whether two convex footprints (corner arrays, (k, 2)) are at least `gap` (m) apart along one of their edge
    normals (the separating-axis test; for rectangles a gap of 0 means not overlapping)."""
    for poly in (a, b):
        for edge in np.roll(poly, -1, axis=0) - poly:
            n = np.array([-edge[1], edge[0]]) / max(float(np.hypot(*edge)), 1e-12)
            pa, pb = a @ n, b @ n
            if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
                return True
    return False


def in_pool(value: Sequence[float], pool: Sequence[Sequence[float]], tol: float = 1e-6) -> bool:
    """Whether the numbers `value` (a position, a yaw as a 1-tuple) equal one entry of `pool` within `tol`."""
    return any(len(value) == len(p) and all(abs(a - b) <= tol for a, b in zip(value, p)) for p in pool)


def offset_in_pool(offset: Sequence[float], pool: Sequence[Sequence[float]]) -> bool:
    """Whether a robot start offset is one of `pool`'s (the nominal start may be written () or all zeros)."""
    if is_nominal_start(offset):
        return any(is_nominal_start(o) for o in pool)
    return in_pool(offset, [o for o in pool if not is_nominal_start(o)])


def common_outside_pools(f, pools) -> list[str]:
    """The factors both tasks share (table, template, object yaw, robot offset, overlay, background) whose value
    in record `f` the `pools` could not have drawn."""
    out = [name for name, value, pool in (("table", f.table, pools.tables), ("template", f.template, pools.templates))
           if value not in pool]
    if not in_pool((f.object_yaw,), [(y,) for y in pools.yaws]):
        out.append("object_yaw")
    if not offset_in_pool(f.robot_qpos_offset, pools.robot_qpos_offsets):
        out.append("robot_qpos_offset")
    if (f.overlay not in pools.overlays if pools.overlays else f.overlay is not None) or (
            f.overlay is not None and abs(f.overlay_alpha - pools.overlay_alpha) > 1e-9):
        out.append("overlay")
    if f.background not in pools.backgrounds if pools.backgrounds else f.background is not None:
        out.append("background")
    return out


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
        max_episode_steps: int = DEFAULT_EPISODE_STEPS,
        sim_freq: int = 500,
        control_freq: int = 5,
        terminate_on_success: bool = False,
        action_out_of_bounds: str = "error",
        reward_mode: str = "staged",
        control_mode: str = CONTROL_MODE,
        **kwargs,
    ):
        # Checked before ManiSkill loads the agent: ManiSkill prompts on stdin and exits when assets are missing.
        self.robot_spec = robots.robot_spec(robot_uids, self.TASK_NAME)
        camera_width, camera_height = arguments.camera_size(camera_width, camera_height, kwargs.get("num_envs", 1),
                                                            kwargs.get("obs_mode"))
        arguments.choice("action_out_of_bounds", action_out_of_bounds, ("error", "clip"))
        arguments.choice("reward_mode", reward_mode, self.SUPPORTED_REWARD_MODES)
        self.catalog = catalog or default_catalog()
        self._setup_assets()
        self.pools = pools or self._default_pools()
        self.validate_pools(self.pools)
        self.camera_width, self.camera_height = int(camera_width), int(camera_height)
        self.max_episode_steps = check_episode_steps(max_episode_steps)
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
        # Per env: the current episode's seed (None when an explicit record was played) and, for explicit records,
        # where the record came from and which of its factors lie outside the pools (see `manifests`).
        self.episode_seeds: list[int | None] = []
        self._episode_records: list[dict] = []
        self._pending_records: dict[int, dict] = {}
        self._pending_seeds: dict[int, int] = {}
        super().__init__(*args, robot_uids=self.robot_spec.uid, reward_mode=reward_mode, control_mode=control_mode,
                         sim_config=sim_config, **kwargs)
        # ManiSkill's constructor played a first episode with its fixed seed 2022 (+ env index), which seeded the
        # streams below; a fresh env must not start every seedless run from that one seed. Gymnasium's own
        # `np_random` is likewise seeded from entropy on first use, until a reset passes a seed.
        self._seed_stream = np.random.default_rng()
        self._np_random = None
        self._robot_keep_out = self._measure_robot_keep_out()

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
    def _outside_pools(self, f, pools) -> list[str]:
        """The names of the factors of record `f` whose values `pools` cannot draw (empty: a record of the pools)."""

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

    def _plan_parking(self, radii: Sequence[float]) -> None:
        """Floor slots for the task's items (one per item, in build order; see `park_slots`)."""
        self.park_xy = park_slots(len(radii), max(radii), float(self.sim_config.spacing))

    def _park_pose(self, k: int, lift: float = 0.001) -> sapien.Pose:
        x, y = self.park_xy[k]
        return sapien.Pose(p=[x, y, -2 * scene_lib.TABLE_HALF_SIZE[2] + lift])

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
        """Start new episodes (Gymnasium's reset; ManiSkill's, for a batched env).

        seed: None, an int in [0, 2**32), or (batched envs) one int per reset env. A seed fixes the episode: the
            factor record, the first frame, and the env's stream of episode seeds that later seedless resets draw
            from. A seedless reset draws its episode seed from that stream (seeded from entropy in a fresh env),
            so every episode records in its manifest a seed that replays it: `reset(seed=manifest["seed"])`.
        options: a dict with any of `RESET_OPTIONS`: "factors" (an episode record, a dict such as a manifest, or
            one per reset env: played instead of a sampled episode, after the task's placement rules are checked),
            "pools" (the pools to sample from from now on), "reconfigure", "env_idx", "reset_to_env_states".

        Raises ConfigError (a ValueError) for a bad seed, unknown option keys, pools of the wrong kind, or a record
        the env cannot play; the env is then left as it was. EnvClosedError after close().
        """
        self._check_open("reset")
        options = check_reset_options(options)
        targets = self._reset_targets(options.get("env_idx"))
        seeds = self._seeds_for(seed, len(targets))
        pools = self.pools
        if "pools" in options:
            pools = options.pop("pools")
            if not isinstance(pools, type(self.pools)):
                raise ConfigError(f"reset option 'pools' must be {type(self.pools).__name__} (this env's kind of "
                                 f"pools), got {type(pools).__name__}")
            self.validate_pools(pools)
        pending, records = {}, {}
        factors = options.pop("factors", None)
        if factors is not None:
            if isinstance(factors, (self.FACTORS_CLS, dict)):
                factors = [factors]
            if not isinstance(factors, (list, tuple)) or len(factors) != len(targets):
                count = len(factors) if isinstance(factors, (list, tuple)) else type(factors).__name__
                raise ConfigError(f"reset option 'factors' needs one record ({self.FACTORS_CLS.__name__} or dict) per "
                                 f"reset env ({len(targets)}), got {count}")
            for i, f in zip(targets, factors):
                source = f if isinstance(f, dict) else {}
                if not isinstance(f, (self.FACTORS_CLS, dict)):
                    raise ConfigError(f"reset option 'factors': each record must be a {self.FACTORS_CLS.__name__} or a "
                                     f"dict, got {type(f).__name__}")
                if isinstance(f, dict):
                    try:
                        f = self.FACTORS_CLS.from_dict(f)
                    except (KeyError, TypeError) as exc:
                        fields = [x.name for x in dataclasses.fields(self.FACTORS_CLS)]
                        raise ConfigError(f"reset option 'factors': the record is incomplete or malformed ({exc!r}); a "
                                         f"{self.FACTORS_CLS.__name__} has the fields {fields}") from None
                pending[i] = self._check_factors(f) or f  # before the reset: a bad record leaves the env as it was
                records[i] = {"replayed_from": source.get("replayed_from") or {"seed": source.get("seed"),
                                                                               "pools": source.get("pools")},
                              "outside_pools": self._outside_pools(pending[i], pools)}
        # Everything is checked: from here on the reset happens.
        self.pools = pools
        self._pending_factors, self._pending_records = pending, records
        if seed is None:
            seeds = [int(s) for s in self._seed_stream.integers(DRAWN_SEED_LIMIT, size=len(targets))]
        else:
            # Gymnasium's seeding contract (env.np_random, from the first seed), and the stream of episode seeds.
            self._np_random, self._np_random_seed = gym_seeding.np_random(seeds[0])
            self._seed_stream = np.random.default_rng(seeds)
        self._pending_seeds = dict(zip(targets, seeds))
        if self.num_envs == 1:
            ms_seed = seeds[0]
        else:
            # ManiSkill takes one seed per env for all envs, reset or not; the others keep theirs.
            current = list(self.episode_seeds) if len(self.episode_seeds) == self.num_envs else [0] * self.num_envs
            ms_seed = [int(s) if s is not None else 0 for s in current]
            for i, s in zip(targets, seeds):
                ms_seed[i] = s
        return super().reset(seed=ms_seed, options=options)

    def _reset_targets(self, env_idx) -> list[int]:
        if env_idx is None:
            return list(range(self.num_envs))
        targets = [int(i) for i in (env_idx.tolist() if isinstance(env_idx, torch.Tensor) else env_idx)]
        if not targets or any(not 0 <= i < self.num_envs for i in targets) or len(set(targets)) != len(targets):
            raise ConfigError(f"reset option 'env_idx' must list distinct env indices in [0, {self.num_envs}), "
                             f"got {targets}")
        return targets

    def _seeds_for(self, seed, count: int) -> list[int] | None:
        """The episode seeds of `count` reset envs from a reset's `seed` (None: drawn later from the stream). One
        int for several envs expands as ManiSkill expands it: itself, then draws from RandomState(seed)."""
        if seed is None:
            return None
        if isinstance(seed, (list, tuple, np.ndarray, torch.Tensor)):
            seeds = [check_seed(s) for s in (seed.tolist() if hasattr(seed, "tolist") else seed)]
            if len(seeds) != count:
                raise ConfigError(f"reset(seed=...) takes one int, or one int per reset env ({count}); got "
                                 f"{len(seeds)} seeds")
            return seeds
        first = check_seed(seed)
        rest = np.random.RandomState(first).randint(DRAWN_SEED_LIMIT, size=count - 1).tolist() if count > 1 else []
        return [first, *map(int, rest)]

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

    # ------------------------------------------------------------------ placement rules of explicit records
    def _measure_robot_keep_out(self) -> tuple[float, float, float, float]:
        """The table area under the robot's base: the xy box (x0, y0, x1, y1; world, m) of its root link's
        collision shapes, where it stands (`robot_spec.base_xy`, facing +x). Explicit placements stay out of it."""
        from mani_skill.utils.geometry.trimesh_utils import get_component_mesh

        mesh = get_component_mesh(self.agent.robot.links[0]._objs[0], to_world_frame=False)
        (x0, y0, _), (x1, y1, _) = mesh.bounds
        bx, by = self.robot_spec.base_xy
        return (bx + float(x0), by + float(y0), bx + float(x1), by + float(y1))

    def _check_on_table(self, what: str, key: str, offset, corners: np.ndarray) -> None:
        """Raise ConfigError unless an item's footprint (`corners`, world xy, (4, 2)) lies on the table top and off
        the robot's base. `key` and `offset` name the factor and its value, for the message."""
        cx, (hx, hy) = scene_lib.TABLE_CENTER_X, scene_lib.TABLE_HALF_SIZE[:2]
        lo = np.array([cx - hx, -hy]) + PLACEMENT_CLEARANCE
        hi = np.array([cx + hx, hy]) - PLACEMENT_CLEARANCE
        if (corners < lo).any() or (corners > hi).any():
            raise ConfigError(f"factor {key}={tuple(offset)} puts the {what} off the table: its footprint reaches "
                              f"world x {corners[:, 0].min():.3f}..{corners[:, 0].max():.3f}, y "
                              f"{corners[:, 1].min():.3f}..{corners[:, 1].max():.3f}; the table top spans x "
                              f"{lo[0]:.3f}..{hi[0]:.3f}, y {lo[1]:.3f}..{hi[1]:.3f}")
        x0, y0, x1, y1 = self._robot_keep_out
        base = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        if not footprints_apart(corners, base, PLACEMENT_CLEARANCE):
            raise ConfigError(f"factor {key}={tuple(offset)} puts the {what} on the robot's base (world x in "
                              f"[{x0:.3f}, {x1:.3f}], y in [{y0:.3f}, {y1:.3f}]); place it in front of the robot")

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
        if len(self.episode_seeds) != self.num_envs:
            self.episode_seeds = [None] * self.num_envs
            self._episode_records = [{} for _ in range(self.num_envs)]
        for i in idx:
            # Explicit records were checked in reset(); sampled ones come from pools checked by validate().
            f = self._pending_factors.pop(i, None)
            record = self._pending_records.pop(i, None)
            if f is None:
                f = self._sample_factors(self._batched_episode_rng[i])
            self.factors[i] = f
            self.events[i] = []
            # A played record is reproduced by the record, not by a seed.
            self.episode_seeds[i] = None if record is not None else self._pending_seeds.get(i)
            self._episode_records[i] = record or {}
        self._pending_factors, self._pending_records, self._pending_seeds = {}, {}, {}
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
        """The record of each env's current episode (its manifest): the factor record plus

        task, robot; seed: the seed that replays it (`reset(seed=...)` with the same wrappers), None for an episode
        played from an explicit record (`reset(options={"factors": ...})`, which the record itself replays);
        pools: the name of the pools it was drawn from (every wrapper's change appended); events: what happened
        during the episode (positions as offsets from the task's origin, like the factor record's).
        Only where they apply: replayed_from ({"seed", "pools"} of the record played, when it was a manifest);
        outside_pools (the factors of a played record that the env's pools do not hold; `pools` then ends in
        "+outside:<factors>", so no consumer takes it for an episode of those pools); max_episode_steps (when the
        episode length is not the default 80).
        """
        out = []
        for i, f in enumerate(self.factors):
            d = f.to_dict() if f is not None else {}
            record = self._episode_records[i] if i < len(self._episode_records) else {}
            outside = record.get("outside_pools") or []
            d["task"] = self.TASK_NAME
            d["robot"] = self.robot_spec.uid
            d["seed"] = self.episode_seeds[i] if i < len(self.episode_seeds) else None
            d["pools"] = self.pools.name + (f"+outside:{','.join(outside)}" if outside else "")
            d["events"] = [dict(e) for e in self.events[i]] if i < len(self.events) else []
            if record:
                d["replayed_from"] = dict(record["replayed_from"])
                if outside:
                    d["outside_pools"] = list(outside)
            if self.max_episode_steps != DEFAULT_EPISODE_STEPS:
                d["max_episode_steps"] = self.max_episode_steps
            out.append(d)
        return out

    @property
    def spec(self):
        """Gymnasium's EnvSpec; its `max_episode_steps` is the task's episode length (gym.make leaves it empty when
        it adds no TimeLimit; the task truncates by itself, batched-safe)."""
        return getattr(self, "_spec", None)

    @spec.setter
    def spec(self, value) -> None:
        if value is not None and value.max_episode_steps is None:
            value = dataclasses.replace(value, max_episode_steps=self.max_episode_steps)
        self._spec = value

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
    ACTION_LAYOUT = ACTION_LAYOUT  # the spec's one-line layout, for the error messages

    def _validate_action(self, action):
        if action is None or isinstance(action, (dict, str, bytes)):
            # ManiSkill would take None as "no action" and a dict as a multi-agent action; neither means anything
            # for these single-robot tasks, so both are refused like any other malformed action.
            raise ActionError(f"action must be 7 numbers {self.ACTION_LAYOUT}, a numpy array or torch tensor of "
                              f"shape (7,) or ({self.num_envs}, 7); got {type(action).__name__} {action!r:.80}")
        if isinstance(action, torch.Tensor):
            numeric = action.dtype != torch.bool and not action.is_complex()
            raw = action
        else:
            try:
                raw = np.asarray(action)
            except ValueError as exc:  # ragged nested sequences
                raise ActionError(f"action must be 7 numbers {self.ACTION_LAYOUT}; got {action!r:.80} ({exc})") \
                    from None
            numeric = raw.dtype.kind in "iuf"
        if not numeric:
            raise ActionError(f"action must hold real numbers (a float or int dtype), got dtype {raw.dtype}: "
                              f"7 numbers {self.ACTION_LAYOUT}")
        a = torch.as_tensor(raw, dtype=torch.float32, device=self.device)
        if a.shape not in ((7,), (self.num_envs, 7)):
            raise ActionError(f"action must have shape (7,) or ({self.num_envs}, 7): {self.ACTION_LAYOUT}; got shape "
                              f"{tuple(a.shape)}")
        if not torch.isfinite(a).all():
            raise ActionError(f"action contains NaN or inf: {a.tolist()}")
        if getattr(self, "_action_bounds", None) is None:  # built once: this runs every step
            self._action_bounds = tuple(torch.as_tensor(b, device=self.device) for b in action_bounds())
        low, high = self._action_bounds
        out = (a < low - 1e-6) | (a > high + 1e-6)
        if out.any():
            if self.action_out_of_bounds == "error":
                raise ActionError(
                    f"action out of bounds: each step moves at most {MAX_DELTA_POS} m and "
                    f"{MAX_DELTA_ROT} rad, gripper in [-1, 1]; got {a.tolist()}. Clip it yourself or make "
                    f"the env with action_out_of_bounds='clip'."
                )
            a = torch.clamp(a, low, high)
        return a

    def _check_open(self, call: str) -> None:
        if getattr(self, "_closed", False):
            raise EnvClosedError(f"{call}() on a closed env: close() released its scene; make a new env with "
                                 f"gymnasium.make(...)")

    def close(self):
        self._closed = True
        super().close()

    def step(self, action):
        self._check_open("step")
        obs, reward, _, _, info = super().step(self._validate_action(action))
        elapsed = self.elapsed_steps.to(self.device)
        truncated = elapsed >= self.max_episode_steps
        terminated = info["success"].clone() if self.terminate_on_success else torch.zeros_like(truncated)
        return obs, reward, terminated, truncated, info
