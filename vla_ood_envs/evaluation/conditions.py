"""What the evaluation suite plays: conditions (rows of the declaration table, or a declared condition with other
wrapper arguments, for severity sweeps) and the episode seeds every policy shares.

Episode seeds are a pure function of (seed index, episode index): seed = base + SEED_STRIDE * k + j, with
base 100000 by default, above the seeds demo generation starts from (0 upwards). The condition does not enter the
seed on purpose: every condition draws its episodes from the same seed stream, so two policies evaluated on a
condition see the same factor records (the env samples a record from its reset seed), and conditions of one run
are paired with each other as far as their pools allow (the same object and placements wherever the pools match).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

BASE_SEED = 100_000
SEED_STRIDE = 10_000  # episodes per seed index at most; seed k covers [base + k * stride, base + (k + 1) * stride)
MAX_SEEDS = 10
# The severity sweep of the image conditions: alpha of the blended texture. The declared weak/strong conditions
# (the study's 0.3/0.5) and IND (alpha 0) complete the curve, so the default leaves those values out.
SWEEP_ALPHAS = (0.1, 0.2, 0.4, 0.6, 0.8)
SWEEP_WRAPPERS = ("DynamicTexture", "DynamicNoise")


class ConditionError(ValueError):
    """An unknown task or condition name, or a sweep value out of range."""


@dataclass(frozen=True)
class Condition:
    """One column of work: a registered env ID, optionally with some of its wrappers' arguments replaced.

    key: the condition's name in results files (the env ID for declared conditions).
    overrides: wrapper name -> arguments replacing the declaration's (passed to gym.make as wrapper_overrides).
    severity: the swept parameter's value (alpha) for sweep conditions, else None.
    """

    key: str
    env_id: str
    task: str
    axis: str
    display_name: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=True)
    severity: float | None = None
    sweep: str | None = None  # the swept wrapper's name for sweep conditions

    def make_kwargs(self) -> dict:
        return {"wrapper_overrides": self.overrides} if self.overrides else {}

    def to_dict(self) -> dict:
        return {"key": self.key, "env_id": self.env_id, "task": self.task, "axis": self.axis,
                "display_name": self.display_name, "overrides": self.overrides, "severity": self.severity,
                "sweep": self.sweep}


def declared_conditions(task: str) -> list[Condition]:
    """Every row of the declaration table for `task`, in table order (IND first)."""
    from ..registry import DECLARATIONS, TASKS

    if task not in TASKS:
        raise ConditionError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return [Condition(d.env_id, d.env_id, d.task, d.axis, d.display_name) for d in DECLARATIONS if d.task == task]


def sweep_conditions(task: str, alphas: Sequence[float] = SWEEP_ALPHAS) -> list[Condition]:
    """The image conditions of `task` at other blend strengths: for each of DynamicTexture and DynamicNoise that the
    task declares, one condition per alpha in (0, 1], built from the declared row through the wrapper's `alpha`."""
    from ..registry import DECLARATIONS

    out = []
    for wrapper in SWEEP_WRAPPERS:
        rows = [d for d in DECLARATIONS if d.task == task and any(n == wrapper for n, _ in d.wrappers)]
        if not rows:
            continue
        base = rows[-1]  # the strongest declared setting; only its alpha changes
        for a in alphas:
            a = float(a)
            if not 0.0 < a <= 1.0:
                raise ConditionError(f"sweep alphas must be in (0, 1], got {a}")
            out.append(Condition(f"{task}-{wrapper}@alpha={a:g}", base.env_id, task, base.axis,
                                 f"{wrapper} alpha {a:g}", {wrapper: {"alpha": a}}, severity=a, sweep=wrapper))
    return out


def select_conditions(task: str, names: Sequence[str] | None = None, sweep: Sequence[float] | None = None
                      ) -> list[Condition]:
    """The conditions of a run: all declared ones of `task` (names None) or those named (env ID, the ID without
    the task prefix and version, or the display name, case-insensitive), plus sweep conditions when `sweep` gives
    alphas. Raises ConditionError naming an unknown condition and listing the known ones."""
    declared = declared_conditions(task)
    if names:
        chosen = []
        for name in names:
            match = [c for c in declared if _matches(c, name)]
            if not match:
                known = ", ".join(_short(c) for c in declared)
                raise ConditionError(f"no {task} condition {name!r}; conditions: {known} (or their full env "
                                     f"IDs)")
            chosen.extend(c for c in match if c not in chosen)
    else:
        chosen = list(declared)
    if sweep:
        chosen.extend(sweep_conditions(task, sweep))
    return chosen


def _short(c: Condition) -> str:
    short = c.env_id[len(c.task) + 1:] if c.env_id.startswith(c.task + "-") else c.env_id
    return short.rsplit("-v", 1)[0] or "IND"


def _matches(c: Condition, name: str) -> bool:
    n = name.strip().lower()
    return n in (c.key.lower(), c.env_id.lower(), _short(c).lower(), c.display_name.lower()) or \
        (n == "ind" and c.axis == "IND")


def episode_seed(seed_index: int, episode_index: int, base_seed: int = BASE_SEED) -> int:
    """The reset seed of episode `episode_index` of seed `seed_index` (the same in every condition and for every
    policy). Raises ValueError outside 0 <= seed_index < MAX_SEEDS, 0 <= episode_index < SEED_STRIDE."""
    if not 0 <= seed_index < MAX_SEEDS:
        raise ValueError(f"seed index must be in [0, {MAX_SEEDS}), got {seed_index}")
    if not 0 <= episode_index < SEED_STRIDE:
        raise ValueError(f"episode index must be in [0, {SEED_STRIDE}), got {episode_index}")
    return int(base_seed) + SEED_STRIDE * int(seed_index) + int(episode_index)


def condition_order(conditions: Sequence[Condition]) -> dict[str, int]:
    """A stable order of condition keys: declaration-table order, then sweeps by wrapper and alpha."""
    from ..registry import DECLARATIONS

    table = {d.env_id: i for i, d in enumerate(DECLARATIONS)}

    def rank(c: Condition):
        if c.sweep is None:
            return (0, table.get(c.env_id, len(table)), "", 0.0)
        return (1, SWEEP_WRAPPERS.index(c.sweep) if c.sweep in SWEEP_WRAPPERS else 9, c.sweep, c.severity or 0.0)

    return {c.key: i for i, c in enumerate(sorted(conditions, key=rank))}
