"""VLAPick's episodes as factor records, and the pools its factors are drawn from.

An episode of VLAPick is fully described by a `PickFactors` record (which object, receptacle, table appearance,
instruction template, placements, robot start offset, distractors). A `PickPools` says which values each factor
may take; the training pools are the study's training distribution, and OOD conditions swap one pool for a
held-out one. Sampling is a pure function of a numpy RandomState, so a seed fixes the episode.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..catalog import Catalog, default_catalog
from .pools import ZERO_OFFSET, PoolError, PoolOps, is_nominal_start, pick_one, record_fields

# The study's placement grid: 6x6 cells at 3 cm pitch spanning a 15x15 cm square around the workspace centre.
GRID_PITCH = 0.03
GRID_OFFSETS = tuple(round(GRID_PITCH * (i - 2.5), 4) for i in range(6))  # -0.075 .. 0.075
TRAIN_POSITIONS = tuple((x, y) for x in GRID_OFFSETS for y in GRID_OFFSETS)
TRAIN_YAWS = tuple(round(k * math.pi / 4, 6) for k in range(4))
# The held-out ring: cells 3 cm outside the training square (max(|x|, |y|) = 10.5 cm), yaws at odd multiples of pi/8.
RING_OFFSETS = tuple(round(GRID_PITCH * (i - 3.5), 4) for i in range(8))  # -0.105 .. 0.105
RING_POSITIONS = tuple((x, y) for x in RING_OFFSETS for y in RING_OFFSETS if max(abs(x), abs(y)) > 0.1)
TEST_YAWS = tuple(round((2 * k + 1) * math.pi / 8, 6) for k in range(4))
# Where a mid-episode reposition may move the object: the grid and the ring together (from a central cell no
# grid cell is 15 cm away).
REPOSITION_POSITIONS = TRAIN_POSITIONS + RING_POSITIONS
DISTRACTOR_MIN_DISTANCE = 0.15
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

@dataclass(frozen=True)
class Placement:
    """An extra item on the table (distractor object or receptacle)."""

    name: str
    xy: tuple[float, float]
    yaw: float = 0.0


@dataclass(frozen=True)
class PickFactors:
    """Everything that defines one VLAPick episode. Every position (`object_xy`, `receptacle_xy`, the distractors'
    `xy`, `reposition_xy`, and the manifest's `events[*].from/to`) is an offset (m) from the workspace centre,
    world (x, y) = tasks.scene.WORKSPACE_CENTER."""

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
    overlay: str | None = None  # texture blended into the image (dynamic texture / noise conditions)
    overlay_alpha: float = 0.0
    background: str | None = None  # held-out table photo composited behind the scene (image-side unseen table)
    reposition_xy: tuple[float, float] | None = None  # where a mid-episode reposition event moves the object

    @property
    def instruction(self) -> str:
        return self.template.replace("{O}", self.object).replace("{R}", self.receptacle)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PickFactors":
        d = record_fields(cls, d)
        for key in ("distractor_objects", "distractor_receptacles"):
            d[key] = tuple(p if isinstance(p, Placement) else Placement(p["name"], tuple(p["xy"]), p.get("yaw", 0.0))
                           for p in d.get(key, ()))
        d["object_xy"] = tuple(d["object_xy"])
        d["receptacle_xy"] = tuple(d["receptacle_xy"])
        d["robot_qpos_offset"] = tuple(d.get("robot_qpos_offset", ZERO_OFFSET))
        if d.get("reposition_xy") is not None:
            d["reposition_xy"] = tuple(d["reposition_xy"])
        return cls(**d)


@dataclass(frozen=True)
class PickPools(PoolOps):
    """The values each factor may take. Positions are offsets (m) from the workspace centre."""

    objects: tuple[str, ...]
    receptacles: tuple[str, ...]
    tables: tuple[str, ...]
    templates: tuple[str, ...] = (TRAIN_TEMPLATE,)
    object_positions: tuple[tuple[float, float], ...] = TRAIN_POSITIONS
    receptacle_positions: tuple[tuple[float, float], ...] = TRAIN_POSITIONS
    yaws: tuple[float, ...] = TRAIN_YAWS
    robot_qpos_offsets: tuple[tuple[float, ...], ...] = (ZERO_OFFSET,)
    distractor_objects: tuple[str, ...] = ()
    n_distractor_objects: int = 0
    distractor_receptacles: tuple[str, ...] = ()
    n_distractor_receptacles: int = 0
    distractor_min_distance: float = DISTRACTOR_MIN_DISTANCE
    overlays: tuple[str, ...] = ()
    overlay_alpha: float = 0.0
    backgrounds: tuple[str, ...] = ()
    reposition_positions: tuple[tuple[float, float], ...] = ()
    reposition_distance: tuple[float, float] = (0.15, 0.21)
    name: str = "train"

    REQUIRED = ("templates", "object_positions", "receptacle_positions", "yaws", "robot_qpos_offsets")
    CATALOG_POOLS = (("objects", "objects"), ("receptacles", "receptacles"), ("tables", "tables"))

    def held_out(self, catalog: Catalog | None = None) -> list[str]:
        """Every way these pools reach outside the training distribution (see `held_out_factors`)."""
        return held_out_factors(self, catalog)

    def validate(self, catalog: Catalog) -> None:
        self._validate_common(catalog)
        for t in self.templates:
            if "{O}" not in t or "{R}" not in t:
                raise PoolError(f"template {t!r} must contain both {{O}} and {{R}}")
        for kind, names, count in (("objects", self.distractor_objects, self.n_distractor_objects),
                                   ("receptacles", self.distractor_receptacles, self.n_distractor_receptacles)):
            if count and not names:
                raise PoolError(f"pool '{self.name}': {count} distractor {kind} requested but their pool is empty")
            unknown = [n for n in names if n not in set(catalog.names(kind))]
            if unknown:
                raise PoolError(f"pool '{self.name}': unknown distractor {kind} {unknown}")


def train_pools(catalog: Catalog | None = None) -> PickPools:
    """The study's training distribution: 16 objects, the plate, 16 table appearances, 1 template, the grid."""
    catalog = catalog or default_catalog()
    return PickPools(
        objects=tuple(catalog.names("objects", "train")),
        receptacles=tuple(catalog.names("receptacles", "train")),
        tables=tuple(catalog.names("tables", "train")),
    )


def _radius(catalog: Catalog, kind: str, name: str) -> float:
    return catalog.get(kind, name).footprint_radius


def _min_distance(catalog: Catalog, obj: str, rec: str) -> float:
    r = _radius(catalog, "objects", obj) + _radius(catalog, "receptacles", rec)
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


def _clear(xy, radius: float, placed: list[tuple[tuple[float, float], float]]) -> bool:
    return all(math.dist(xy, p) > radius + r + FOOTPRINT_CLEARANCE for p, r in placed)


MAX_TRIES = 200


def _place_distractors(rng, catalog: Catalog, kind: str, names: list[str], count: int, anchor, positions,
                       min_distance: float, placed: list, yaws) -> tuple[Placement, ...] | None:
    """`count` distinct items from `names`, each more than `min_distance` from `anchor` and clear of everything in
    `placed` (which grows); None when the rules cannot be met. Yaws are drawn from `yaws` (none: yaw 0)."""
    out: list[Placement] = []
    for _ in range(count):
        name = pick_one(rng, [n for n in names if n not in {p.name for p in out}])
        if name is None:
            return None
        r = _radius(catalog, kind, name)
        cell = pick_one(rng, [c for c in positions if math.dist(c, anchor) > min_distance and _clear(c, r, placed)])
        if cell is None:
            return None
        out.append(Placement(name, cell, float(pick_one(rng, list(yaws))) if yaws else 0.0))
        placed.append((cell, r))
    return tuple(out)


def sample_factors(pools: PickPools, rng: np.random.RandomState, catalog: Catalog | None = None) -> PickFactors:
    """Draw one episode from the pools.

    Each factor is uniform over its pool; placements are uniform over the cells that satisfy the task's spacing
    rules (object-receptacle > 7 cm and no footprint overlap; distractors > `distractor_min_distance` from the
    item they distract from; a reposition target `reposition_distance` away from the object's cell). A draw whose
    placement rules cannot be met is redrawn; the draws consume the RandomState in a fixed order, so a seed
    fixes the episode.
    """
    catalog = catalog or default_catalog()
    for _ in range(MAX_TRIES):
        obj = pick_one(rng, pools.objects)
        rec = pick_one(rng, pools.receptacles)
        table = pick_one(rng, pools.tables)
        template = pick_one(rng, pools.templates)
        pairs = valid_position_pairs(pools, catalog, obj, rec)
        if not pairs:
            continue
        i, j = pick_one(rng, pairs)
        obj_xy, rec_xy = pools.object_positions[i], pools.receptacle_positions[j]
        yaw = float(pick_one(rng, list(pools.yaws)))
        offset = tuple(float(x) for x in pick_one(rng, list(pools.robot_qpos_offsets)))
        placed = [(obj_xy, _radius(catalog, "objects", obj)), (rec_xy, _radius(catalog, "receptacles", rec))]
        d_objs = _place_distractors(rng, catalog, "objects", [n for n in pools.distractor_objects if n != obj],
                                    pools.n_distractor_objects, obj_xy, pools.object_positions,
                                    pools.distractor_min_distance, placed, pools.yaws)
        if d_objs is None:
            continue
        d_recs = _place_distractors(rng, catalog, "receptacles",
                                    [n for n in pools.distractor_receptacles if n != rec],
                                    pools.n_distractor_receptacles, rec_xy, pools.receptacle_positions,
                                    pools.distractor_min_distance, placed, ())
        if d_recs is None:
            continue
        reposition = None
        if pools.reposition_positions:
            lo, hi = pools.reposition_distance
            r = _radius(catalog, "objects", obj)
            cells = [c for c in pools.reposition_positions
                     if lo <= math.dist(c, obj_xy) <= hi and _clear(c, r, placed[1:])]
            reposition = pick_one(rng, cells)
            if reposition is None:
                continue
        overlay = pick_one(rng, list(pools.overlays))
        background = pick_one(rng, list(pools.backgrounds))
        return PickFactors(
            object=obj, receptacle=rec, table=table, template=template,
            object_xy=obj_xy, receptacle_xy=rec_xy, object_yaw=yaw, robot_qpos_offset=offset,
            distractor_objects=d_objs, distractor_receptacles=d_recs,
            overlay=overlay, overlay_alpha=float(pools.overlay_alpha) if overlay else 0.0,
            background=background, reposition_xy=reposition,
        )
    raise PoolError(f"pool '{pools.name}': no episode satisfying the placement rules found in {MAX_TRIES} draws; "
                    f"loosen the distances or widen the position pools")


def held_out_factors(pools: PickPools, catalog: Catalog | None = None) -> list[str]:
    """Every way the pools reach outside the training distribution (empty for training pools). Demo generation
    and training refuse pools for which this is not empty."""
    catalog = catalog or default_catalog()
    problems = []
    for kind, names in (("objects", pools.objects), ("receptacles", pools.receptacles), ("tables", pools.tables)):
        test = sorted(set(names) & set(catalog.names(kind, "test")))
        if test:
            problems.append(f"held-out {kind}: {test}")
    if set(pools.templates) != {TRAIN_TEMPLATE}:
        problems.append("instruction templates other than the training one")
    if not set(pools.object_positions) | set(pools.receptacle_positions) <= set(TRAIN_POSITIONS):
        problems.append("positions outside the training grid")
    if not set(pools.yaws) <= set(TRAIN_YAWS):
        problems.append("object yaws outside the training set")
    if not all(map(is_nominal_start, pools.robot_qpos_offsets)):
        problems.append("perturbed robot start poses")
    if pools.n_distractor_objects or pools.n_distractor_receptacles:
        problems.append("distractors")
    if pools.overlays or pools.backgrounds:
        problems.append("image overlays or background photos")
    if pools.reposition_positions:
        problems.append("mid-episode repositioning")
    return problems
