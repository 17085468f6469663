"""What every OOD perturbation wrapper shares: its layer, its pools, and access to the task under the stack.

Layers:
- "scene": changes which factor values are drawn at reset (a pool swap, recorded in the manifest's `pools`);
- "image": transforms the observation image each frame (batched torch on the env's device);
- "language": changes the instruction (a template pool swap, so the template is in the manifest);
- "event": acts during the episode (recorded in the manifest's `events`).

A perturbation whose strength can be swept declares it (`SEVERITY`: the constructor argument and its range); the
registry reads that to report and change each registered ID's severity (`registry.severity_of`,
`gym.make(ID, severity=...)`).

Scene, language and event perturbations take effect from the next reset. Every wrapper works on a batched
env (the stack `gym.make` builds from the declaration table) and on the single-env numpy view a user gets from
`gym.make`, and stacks with other wrappers in any order that makes sense. A perturbation that is already in the
stack, or one that would give a pool another value than a perturbation under it gave it, is refused: a factor is
drawn from one pool, so only the outer change would take effect while the manifest lists both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import gymnasium as gym

from ..errors import PerturbationError  # noqa: F401 (kept importable from here)


@dataclass(frozen=True)
class Severity:
    """How strong a perturbation is: the constructor argument an evaluation sweeps, and the values it takes.

    param: the constructor argument (e.g. "alpha"). low, high: its range, in `unit`; `low_open`: `low` itself is
    not allowed (alpha 0 would be no perturbation). interval: the value is a (lo, hi) pair with lo <= hi, both in
    the range (a distance band). stronger: whether "higher" or "lower" values perturb more.
    """

    param: str
    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    interval: bool = False
    stronger: str = "higher"

    def range_text(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]" + (f" {self.unit}" if self.unit else "")

    def check(self, value: Any) -> float | tuple[float, float]:
        """`value` as a float (or a (lo, hi) pair of floats for an interval). Raises PerturbationError naming the
        range when it is outside, or a pair is given where a number is expected (and the other way round)."""
        def inside(v: float) -> bool:
            return (v > self.low if self.low_open else v >= self.low) and v <= self.high

        if self.interval:
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise PerturbationError(f"{self.param} must be a (low, high) pair in {self.range_text()}, got "
                                        f"{value!r}") from None
            if not (inside(lo) and inside(hi) and lo <= hi):
                raise PerturbationError(f"{self.param} must be (low, high) with low <= high, both in "
                                        f"{self.range_text()}; got {value!r}")
            return lo, hi
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise PerturbationError(f"{self.param} must be a number in {self.range_text()}, got {value!r}") from None
        if not inside(v):
            raise PerturbationError(f"{self.param} must be in {self.range_text()}, got {value!r}")
        return v


def task_of(env: gym.Env):
    """The VLA task (VLAPick, VLAOpen) under any stack of wrappers."""
    from ..tasks.base import VLATaskEnv

    base = env.unwrapped
    if not isinstance(base, VLATaskEnv):
        raise PerturbationError(f"this perturbation needs a vla_ood_envs task underneath, got {type(base).__name__}")
    return base


def resolve_names(pool: str | Sequence[str], catalog_names_train: list[str], catalog_names_test: list[str],
                  what: str) -> tuple[str, ...]:
    if isinstance(pool, str):
        if pool == "train":
            return tuple(catalog_names_train)
        if pool == "test":
            return tuple(catalog_names_test)
        raise PerturbationError(f"{what} pool must be 'train', 'test' or a list of names, got {pool!r}")
    names = tuple(pool)
    if not names:
        raise PerturbationError(f"{what} pool is empty")
    return names


def perturbations_under(env: gym.Env) -> list["Perturbation"]:
    """The perturbation wrappers in `env`'s stack, outermost first (through any other wrappers)."""
    out = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Perturbation):
            out.append(env)
        env = env.env
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Perturbation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Base of the OOD wrappers. Subclasses set `layer`, `tasks` and, where a strength makes sense, `SEVERITY`;
    the constructor checks the severity argument against it and keeps the value as `self.severity`."""

    layer: ClassVar[str] = ""
    SEVERITY: ClassVar[Severity | None] = None
    needs_segmentation: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = ("VLAPick", "VLAOpen")  # the tasks this perturbation makes sense for

    def __init__(self, env: gym.Env, **ctor_kwargs):
        # Recording the constructor arguments lets Gymnasium re-create the stack (env.spec, check_env).
        gym.utils.RecordConstructorArgs.__init__(self, **ctor_kwargs)
        if self.SEVERITY is not None:
            self.severity = self.SEVERITY.check(ctor_kwargs[self.SEVERITY.param])
        gym.Wrapper.__init__(self, env)
        self.task = task_of(env)
        if self.task.TASK_NAME not in self.tasks:
            raise PerturbationError(f"{type(self).__name__} applies to {' and '.join(self.tasks)} only, not to "
                                    f"{self.task.TASK_NAME}")
        self.pool_changes: dict = {}
        for other in perturbations_under(env):
            if type(other) is type(self):
                raise PerturbationError(
                    f"{type(self).__name__} is already in this env's stack (with {_short(other._saved_kwargs)}); "
                    f"stacked twice, only the outer one's pools would be drawn from while the manifest lists both. "
                    f"Build the stack with one {type(self).__name__} holding the setting you want")

    @classmethod
    def requires_segmentation(cls, **kwargs) -> bool:
        """Whether an instance built with these arguments reads the segmentation image."""
        return cls.needs_segmentation

    def _swap_pools(self, tag: str, **changes) -> None:
        for other in perturbations_under(self.env):
            for key, value in changes.items():
                if key in other.pool_changes and other.pool_changes[key] != value:
                    raise PerturbationError(
                        f"{type(self).__name__} would set the pools' {key} to {_short(value)}, but "
                        f"{type(other).__name__} under it set it to {_short(other.pool_changes[key])}; a factor is "
                        f"drawn from one pool, so only one of the two would take effect. Stack perturbations that "
                        f"change different factors, or give both the same setting")
        pools = self.task.pools.renamed(tag, **changes)
        self.task.validate_pools(pools)
        self.task.pools = pools
        self.pool_changes = dict(changes)
