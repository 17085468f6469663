"""Semantic OOD perturbations: which object, which receptacle, distractors, and how the instruction is phrased."""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym

from ..factors.pick import DISTRACTOR_MIN_DISTANCE
from .base import Perturbation, PerturbationError, Severity, resolve_names

# The farthest a distractor may be required to stand from its target (m). Past 0.192 m (a corner cell to the far
# side's second cell) only the grid's opposite corners qualify and the sampler's 200 draws often find none (at 0.20:
# 28 of 30 seeds); at 0.19 every one of 200 seeds drew an episode, for objects and receptacles alike.
_MAX_MIN_DISTANCE = 0.19


class ObjectSampler(Perturbation):
    """Draw the target object (VLAPick: the object to move; VLAOpen: the articulated object) from the held-out pool
    ("test"), the training pool, or a list of catalog names."""

    layer = "scene"

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "test"):
        super().__init__(env, pool=pool)
        t = self.task
        self.objects = resolve_names(pool, t.object_names("train"), t.object_names("test"), "object")
        self._swap_pools(f"objects:{pool if isinstance(pool, str) else 'custom'}", objects=self.objects)


class ReceptacleSampler(Perturbation):
    """Draw the target receptacle from the held-out pool ("test"), the training pool, or a list of names."""

    layer = "scene"
    tasks = ("VLAPick",)

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "test"):
        super().__init__(env, pool=pool)
        cat = self.task.catalog
        self.receptacles = resolve_names(pool, cat.names("receptacles", "train"), cat.names("receptacles", "test"),
                                         "receptacle")
        self._swap_pools(f"receptacles:{pool if isinstance(pool, str) else 'custom'}", receptacles=self.receptacles)


class InstructionParaphrase(Perturbation):
    """Phrase the instruction with a held-out template ("test": the study's 16), the training one, or your own.

    Templates use {O} for the object and {R} for the receptacle (VLAPick) or {O} alone (VLAOpen). The template is
    a factor of the episode, so the manifest says which phrasing was used.
    """

    layer = "language"

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "test"):
        super().__init__(env, pool=pool)
        if pool in ("train", "test"):
            templates = self.task.TEMPLATES[pool]
        elif isinstance(pool, str):
            raise PerturbationError(f"template pool must be 'train', 'test' or a list of templates, got {pool!r}")
        else:
            templates = tuple(pool)
        self.templates = templates
        self._swap_pools(f"templates:{pool if isinstance(pool, str) else 'custom'}", templates=templates)


class _Distractor(Perturbation):
    """Shared body of the distractor wrappers: `count` extra items of a catalog kind, far from their target."""

    layer = "scene"
    kind = ""
    tasks = ("VLAPick",)
    # min_distance (m): how far from its target a distractor must stand; a closer one competes more (the study:
    # > 15 cm).
    SEVERITY = Severity("min_distance", 0.0, _MAX_MIN_DISTANCE, unit="m", stronger="lower")

    def __init__(self, env: gym.Env, pool: str | Sequence[str], count: int, min_distance: float):
        super().__init__(env, pool=pool, count=count, min_distance=min_distance)
        if count < 1:
            raise PerturbationError("count must be >= 1")
        cat = self.task.catalog
        names = resolve_names(pool, cat.names(self.kind, "train"), cat.names(self.kind, "test"),
                              f"distractor {self.kind[:-1]}")
        self._swap_pools(f"distractor-{self.kind}:{pool if isinstance(pool, str) else 'custom'}x{count}",
                         distractor_min_distance=self.severity,
                         **{f"distractor_{self.kind}": names, f"n_distractor_{self.kind}": count})


class DistractorObject(_Distractor):
    """Add `count` graspable distractors more than `min_distance` from the target; the instruction names only the
    target. `pool`: "train" (seen objects), "test" (held-out objects) or a list of names."""

    kind = "objects"

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "train", count: int = 1,
                 min_distance: float = DISTRACTOR_MIN_DISTANCE):
        super().__init__(env, pool, count, min_distance)


class DistractorReceptacle(_Distractor):
    """Add `count` distractor receptacles more than `min_distance` from the target receptacle (default pool: the
    held-out receptacles)."""

    kind = "receptacles"

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "test", count: int = 1,
                 min_distance: float = DISTRACTOR_MIN_DISTANCE):
        super().__init__(env, pool, count, min_distance)
