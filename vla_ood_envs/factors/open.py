"""Episodes of VLAOpen as factor records, and the pools they are drawn from (the articulated-open task).

An episode is an `OpenFactors` record: which articulated object, table appearance, instruction template, the
object's placement (an offset from the task's anchor and a yaw offset from its nominal facing) and the robot's
start offset. `OpenPools` holds the values each factor may take; held-out pools are disjoint from training ones.
Sampling is a pure function of a numpy RandomState, so a seed fixes the episode.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..catalog import Catalog, default_catalog
from .pools import ZERO_OFFSET, PoolError, PoolOps, is_nominal_start, pick_one, record_fields

KINDS = ("door", "drawer")

# Placement: the object's root (bottom centre) at the anchor plus an offset, its front facing the nominal
# direction plus a yaw offset. Training: a 5x5 grid at 2 cm pitch (+-4 cm) and yaw offsets of 0, +-5, +-10 deg.
# Held out: the ring of cells 3 cm further out (+-7 cm) and yaw offsets of +-15 and +-20 deg.
OPEN_PITCH = 0.02
OPEN_TRAIN_POSITIONS = tuple((round(OPEN_PITCH * (i - 2), 4), round(OPEN_PITCH * (j - 2), 4))
                             for i in range(5) for j in range(5))
_RING = tuple(round(x, 4) for x in (-0.07, -0.05, -0.03, -0.01, 0.01, 0.03, 0.05, 0.07))
OPEN_TEST_POSITIONS = tuple((x, y) for x in _RING for y in _RING if max(abs(x), abs(y)) > 0.06)
OPEN_TRAIN_YAWS = tuple(round(math.radians(d), 6) for d in (-10, -5, 0, 5, 10))
OPEN_TEST_YAWS = tuple(round(math.radians(d), 6) for d in (-20, -15, 15, 20))

OPEN_TRAIN_TEMPLATE = "open the {O}"
# {O} is the object's noun: "microwave" for a door, "nightstand drawer" for a drawer, so every phrasing fits both.
OPEN_TEST_TEMPLATES = (
    "Open the {O}.",
    "please open the {O}",
    "pull the {O} open",
    "Can you open the {O}?",
    "get the {O} open",
    "Open up the {O}",
    "the {O} should be opened.",
    "Pull open the {O}.",
    "grab the handle and open the {O}",
    "Would you open the {O}, please?",
    "go ahead and open the {O}",
    "I need the {O} opened.",
    "open the {O} for me",
    "{O}: open it, please.",
    "Make sure the {O} is open.",
    "get the {O} opened up",
)


@dataclass(frozen=True)
class OpenFactors:
    """Everything that defines one VLAOpen episode. `object_xy` is an offset (m) from the task's anchor and
    `object_yaw` an offset (rad) from the object's nominal facing; `noun` is what the instruction calls it (filled
    from the catalog when left empty)."""

    object: str
    table: str
    template: str
    object_xy: tuple[float, float]
    object_yaw: float
    noun: str = ""
    robot_qpos_offset: tuple[float, ...] = ZERO_OFFSET
    overlay: str | None = None
    overlay_alpha: float = 0.0
    background: str | None = None

    @property
    def instruction(self) -> str:
        return self.template.replace("{O}", self.noun or self.object)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OpenFactors":
        d = record_fields(cls, d)
        d["object_xy"] = tuple(d["object_xy"])
        d["robot_qpos_offset"] = tuple(d.get("robot_qpos_offset", ZERO_OFFSET))
        return cls(**d)


def articulated_names(catalog: Catalog, kinds: tuple[str, ...], split: str | None = None) -> list[str]:
    return [a.name for a in catalog.articulated if a.kind in kinds and (split is None or a.split == split)]


@dataclass(frozen=True)
class OpenPools(PoolOps):
    """The values each VLAOpen factor may take."""

    objects: tuple[str, ...]
    tables: tuple[str, ...]
    templates: tuple[str, ...] = (OPEN_TRAIN_TEMPLATE,)
    object_positions: tuple[tuple[float, float], ...] = OPEN_TRAIN_POSITIONS
    yaws: tuple[float, ...] = OPEN_TRAIN_YAWS
    robot_qpos_offsets: tuple[tuple[float, ...], ...] = (ZERO_OFFSET,)
    overlays: tuple[str, ...] = ()
    overlay_alpha: float = 0.0
    backgrounds: tuple[str, ...] = ()
    name: str = "train"

    REQUIRED = ("templates", "object_positions", "yaws", "robot_qpos_offsets")
    CATALOG_POOLS = (("objects", "articulated"), ("tables", "tables"))

    def held_out(self, catalog: Catalog | None = None) -> list[str]:
        """Every way these pools reach outside the training distribution (see `open_held_out_factors`)."""
        return open_held_out_factors(self, catalog)

    def validate(self, catalog: Catalog) -> None:
        self._validate_common(catalog)
        for t in self.templates:
            if "{O}" not in t:
                raise PoolError(f"template {t!r} must contain {{O}} (the object)")


def open_train_pools(catalog: Catalog | None = None, kinds: tuple[str, ...] = ("door",)) -> OpenPools:
    """The training distribution: the training articulated objects of the given kinds, 16 table appearances, one
    template, the training placements."""
    catalog = catalog or default_catalog()
    return OpenPools(objects=tuple(articulated_names(catalog, kinds, "train")),
                     tables=tuple(catalog.names("tables", "train")))


def sample_open_factors(pools: OpenPools, rng: np.random.RandomState, catalog: Catalog | None = None) -> OpenFactors:
    """Draw one episode; each factor is uniform over its pool, drawn in a fixed order."""
    catalog = catalog or default_catalog()
    obj = pick_one(rng, pools.objects)
    table = pick_one(rng, pools.tables)
    template = pick_one(rng, pools.templates)
    xy = tuple(float(v) for v in pick_one(rng, pools.object_positions))
    yaw = float(pick_one(rng, pools.yaws))
    offset = tuple(float(x) for x in pick_one(rng, pools.robot_qpos_offsets))
    overlay = pick_one(rng, pools.overlays)
    background = pick_one(rng, pools.backgrounds)
    return OpenFactors(
        object=obj, table=table, template=template, object_xy=xy, object_yaw=yaw,
        noun=catalog.get("articulated", obj).noun, robot_qpos_offset=offset,
        overlay=overlay, overlay_alpha=float(pools.overlay_alpha) if overlay else 0.0, background=background,
    )


def open_held_out_factors(pools: OpenPools, catalog: Catalog | None = None) -> list[str]:
    """Every way the pools reach outside the training distribution (empty for training pools)."""
    catalog = catalog or default_catalog()
    problems = []
    for kind, names in (("articulated", pools.objects), ("tables", pools.tables)):
        test = sorted(set(names) & set(catalog.names(kind, "test")))
        if test:
            problems.append(f"held-out {kind}: {test}")
    if set(pools.templates) != {OPEN_TRAIN_TEMPLATE}:
        problems.append("instruction templates other than the training one")
    if not set(pools.object_positions) <= set(OPEN_TRAIN_POSITIONS) or not set(pools.yaws) <= set(OPEN_TRAIN_YAWS):
        problems.append("object placements outside the training ones")
    if not all(map(is_nominal_start, pools.robot_qpos_offsets)):
        problems.append("perturbed robot start poses")
    if pools.overlays or pools.backgrounds:
        problems.append("image overlays or background photos")
    return problems
