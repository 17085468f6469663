"""Episodes as factor records, and the pools factors are drawn from.

An episode of VLAPick is fully described by a `PickFactors` record (which object, receptacle, table appearance,
instruction template, placements, robot start offset, distractors). A `PickPools` says which values each factor
may take; the training pools are the study's training distribution, and OOD conditions swap one pool for a
held-out one. Sampling is a pure function of a numpy RandomState, so a seed fixes the episode.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .catalog import Catalog, default_catalog

# The study's placement grid: 6x6 cells at 3 cm pitch spanning a 15x15 cm square around the workspace centre.
GRID_PITCH = 0.03
GRID_OFFSETS = tuple(round(GRID_PITCH * (i - 2.5), 4) for i in range(6))  # -0.075 .. 0.075
TRAIN_POSITIONS = tuple((x, y) for x in GRID_OFFSETS for y in GRID_OFFSETS)
TRAIN_YAWS = tuple(round(k * math.pi / 4, 6) for k in range(4))
MIN_PAIR_DISTANCE = 0.07  # object and receptacle cells are more than 7 cm apart
FOOTPRINT_CLEARANCE = 0.005  # and their footprints (bounding circles) do not overlap, by at least this

TRAIN_TEMPLATE = "put {O} on {R}"
TEST_TEMPLATES = (
    "Place the {O} on the {R}",
    "set {O} on {R}",
    "move the {O} to the {R}",
    "Take the {O} and put it on the {R}",
    "pick up {O} and set it down on {R}",
    "please put the {O} on the {R}",
    "Put {O} onto {R}.",
    "place the {O} onto the {R} surface",
    "Make sure {O} is on {R}.",
    "on the {R}, put the {O}",
    "put the {O} where the {R} is",
    "Move the {O} from the table to the {R}",
    "Move {O} so it's on {R}.",
    "Can you put {O} on {R}?",
    "{O} on the {R}, please.",
    "the {O} should be placed on the {R}.",
)

ZERO_OFFSET = (0.0,) * 7


class PoolError(ValueError):
    """A pool is empty, names unknown assets, or admits no valid episode."""


@dataclass(frozen=True)
class Placement:
    """An extra item on the table (distractor object or receptacle)."""

    name: str
    xy: tuple[float, float]
    yaw: float = 0.0


@dataclass(frozen=True)
class PickFactors:
    """Everything that defines one VLAPick episode. `xy` are offsets (m) from the workspace centre."""

    object: str
    receptacle: str
    table: str
    template: str
    object_xy: tuple[float, float]
    receptacle_xy: tuple[float, float]
    object_yaw: float
    robot_qpos_offset: tuple[float, ...] = ZERO_OFFSET
    distractor_objects: tuple[Placement, ...] = ()
    distractor_receptacles: tuple[Placement, ...] = ()

    @property
    def instruction(self) -> str:
        return self.template.replace("{O}", self.object).replace("{R}", self.receptacle)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PickFactors":
        d = dict(d)
        for key in ("distractor_objects", "distractor_receptacles"):
            d[key] = tuple(p if isinstance(p, Placement) else Placement(p["name"], tuple(p["xy"]), p.get("yaw", 0.0))
                           for p in d.get(key, ()))
        d["object_xy"] = tuple(d["object_xy"])
        d["receptacle_xy"] = tuple(d["receptacle_xy"])
        d["robot_qpos_offset"] = tuple(d.get("robot_qpos_offset", ZERO_OFFSET))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown factor fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class PickPools:
    """The values each factor may take. Positions are offsets (m) from the workspace centre."""

    objects: tuple[str, ...]
    receptacles: tuple[str, ...]
    tables: tuple[str, ...]
    templates: tuple[str, ...] = (TRAIN_TEMPLATE,)
    object_positions: tuple[tuple[float, float], ...] = TRAIN_POSITIONS
    receptacle_positions: tuple[tuple[float, float], ...] = TRAIN_POSITIONS
    yaws: tuple[float, ...] = TRAIN_YAWS
    robot_qpos_offsets: tuple[tuple[float, ...], ...] = (ZERO_OFFSET,)
    name: str = "train"
    extras: dict = field(default_factory=dict, compare=False, hash=False)

    def replace(self, **changes) -> "PickPools":
        return dataclasses.replace(self, **changes)

    def validate(self, catalog: Catalog) -> None:
        for kind, names in (("objects", self.objects), ("receptacles", self.receptacles), ("tables", self.tables)):
            if not names:
                raise PoolError(f"pool '{self.name}': the {kind} pool is empty")
            known = set(catalog.names(kind))
            missing = [n for n in names if n not in known]
            if missing:
                raise PoolError(f"pool '{self.name}': unknown {kind} {missing}; the catalog has {sorted(known)}")
        for what in ("templates", "object_positions", "receptacle_positions", "yaws", "robot_qpos_offsets"):
            if not getattr(self, what):
                raise PoolError(f"pool '{self.name}': the {what} pool is empty")
        for t in self.templates:
            if "{O}" not in t or "{R}" not in t:
                raise PoolError(f"template {t!r} must contain both {{O}} and {{R}}")


def train_pools(catalog: Catalog | None = None) -> PickPools:
    """The study's training distribution: 16 objects, the plate, 16 table appearances, 1 template, the grid."""
    catalog = catalog or default_catalog()
    return PickPools(
        objects=tuple(catalog.names("objects", "train")),
        receptacles=tuple(catalog.names("receptacles", "train")),
        tables=tuple(catalog.names("tables", "train")),
    )


def _min_distance(catalog: Catalog, obj: str, rec: str) -> float:
    r = catalog.get("objects", obj).footprint_radius + catalog.get("receptacles", rec).footprint_radius
    return max(MIN_PAIR_DISTANCE, r + FOOTPRINT_CLEARANCE)


def valid_position_pairs(pools: PickPools, catalog: Catalog, obj: str, rec: str) -> list[tuple[int, int]]:
    """Index pairs (object position, receptacle position) that keep the two apart as the task requires."""
    d_min = _min_distance(catalog, obj, rec)
    out = []
    for i, a in enumerate(pools.object_positions):
        for j, b in enumerate(pools.receptacle_positions):
            if math.dist(a, b) > d_min:
                out.append((i, j))
    return out


def sample_factors(pools: PickPools, rng: np.random.RandomState, catalog: Catalog | None = None) -> PickFactors:
    """Draw one episode from the pools (uniform over each factor; placements uniform over valid pairs)."""
    catalog = catalog or default_catalog()
    obj = pools.objects[rng.randint(len(pools.objects))]
    rec = pools.receptacles[rng.randint(len(pools.receptacles))]
    table = pools.tables[rng.randint(len(pools.tables))]
    template = pools.templates[rng.randint(len(pools.templates))]
    pairs = valid_position_pairs(pools, catalog, obj, rec)
    if not pairs:
        raise PoolError(f"pool '{pools.name}': no placement keeps {obj!r} clear of {rec!r}")
    i, j = pairs[rng.randint(len(pairs))]
    yaw = pools.yaws[rng.randint(len(pools.yaws))]
    offset = pools.robot_qpos_offsets[rng.randint(len(pools.robot_qpos_offsets))]
    return PickFactors(
        object=obj, receptacle=rec, table=table, template=template,
        object_xy=pools.object_positions[i], receptacle_xy=pools.receptacle_positions[j],
        object_yaw=float(yaw), robot_qpos_offset=tuple(float(x) for x in offset),
    )
