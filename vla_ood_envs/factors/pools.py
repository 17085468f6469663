"""What the factor records and pools of every task share: the nominal robot start, reading a record back from a
manifest, the pool checks and copies, and the one uniform draw both tasks' samplers use.

A task's records and pools (`pick.py`, `open.py`) build on these; sampling is a pure function of a numpy
RandomState, so a seed fixes the episode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..catalog import Catalog
from ..errors import PoolError  # noqa: F401 (kept importable from here)

# The nominal robot start: no joint offsets. A perturbed start lists one offset per arm joint of the env's robot
# (7 for the Panda, 6 for the WidowX); the env checks the length.
ZERO_OFFSET: tuple[float, ...] = ()


def is_nominal_start(offset: tuple[float, ...]) -> bool:
    return not any(offset)


# Keys the episode manifest adds to a factor record (VLATaskEnv.manifests); a record read back from a manifest
# replays the episode, so from_dict accepts and drops them.
MANIFEST_KEYS = frozenset({"task", "robot", "seed", "pools", "events", "replayed_from", "outside_pools",
                           "max_episode_steps"})


def record_fields(cls, d: dict) -> dict:
    """`d` without the manifest keys, after checking it names only fields of the factor record `cls`."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known - MANIFEST_KEYS
    if unknown:
        raise ValueError(f"unknown factor fields {sorted(unknown)}; known: {sorted(known)}")
    return {k: v for k, v in d.items() if k in known}


class PoolOps:
    """What the pools of every task share: copies with changes, and the checks of the common factors."""

    # Factor pools that must not be empty, and the kind of catalog name each required pool holds.
    REQUIRED: tuple[str, ...] = ()
    CATALOG_POOLS: tuple[tuple[str, str], ...] = ()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def renamed(self, tag: str, **changes):
        """A copy with `changes` and `tag` appended to the name (the manifest shows every pool change)."""
        return dataclasses.replace(self, name=f"{self.name}+{tag}", **changes)

    def _validate_common(self, catalog: Catalog) -> None:
        for field, kind in self.CATALOG_POOLS:
            names = getattr(self, field)
            if not names:
                raise PoolError(f"pool '{self.name}': the {field} pool is empty")
            known = set(catalog.names(kind))
            missing = [n for n in names if n not in known]
            if missing:
                raise PoolError(f"pool '{self.name}': unknown {field} {missing}; the catalog has {sorted(known)}")
        for what in self.REQUIRED:
            if not getattr(self, what):
                raise PoolError(f"pool '{self.name}': the {what} pool is empty")
        for kind, names in (("overlays", self.overlays), ("tables", self.backgrounds)):
            unknown = [n for n in names if n not in set(catalog.names(kind))]
            if unknown:
                raise PoolError(f"pool '{self.name}': unknown {kind} {unknown}")
        if len({len(o) for o in self.robot_qpos_offsets if o}) > 1:
            raise PoolError(f"pool '{self.name}': the robot_qpos_offsets have different lengths; each lists one "
                            f"offset per arm joint of the env's robot")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise PoolError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")


def pick_one(rng: np.random.RandomState, items):
    """A uniform draw from `items`, or None from an empty pool (which consumes no random number)."""
    return items[rng.randint(len(items))] if items else None
