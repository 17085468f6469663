"""Statistics of an evaluation: success rates with intervals, axis means, the degradation ratio, differences.

- A rate: k successes of n episodes with the Wilson score interval (Wilson 1927; the interval Newcombe 1998,
  "Two-sided confidence intervals for the single proportion", calls method 3), and a two-stage bootstrap over
  seeds x episodes (resample seeds with replacement, then episodes within each drawn seed).
- An axis mean: the unweighted mean of its conditions' rates (the paper's axis means are this; study.md section 7),
  with a bootstrap interval resampling every condition independently.
- The degradation ratio of the paper's tables: (OOD - IND) / IND.
- A difference between two policies: paired (the same factor records; a paired bootstrap over shared episodes,
  resampling seeds then episodes, the same draws for both policies) or unpaired (Newcombe's hybrid score
  interval, method 10 of Newcombe 1998, "Interval estimation for the difference between independent proportions").

Seeds are pooled before an interval (the rate is k / n over every episode of every seed), as the training design
asks. Bootstraps use a fixed generator seed, so a report is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
N_BOOT = 4000
BOOT_SEED = 0


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n, as (low, high) in [0, 1]; (nan, nan) for n = 0.

    Raises ValueError for k outside [0, n]."""
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At k = 0 and k = n the bounds are exactly 0 and 1 (rounding would leave 0.9999999999999999).
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference p1 - p2 of two independent proportions with Newcombe's hybrid score interval:
    (difference, low, high). nan where either n is 0."""
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return (d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def degradation_ratio(ood: float, ind: float) -> float:
    """(OOD - IND) / IND, the paper's relative change; nan when IND is 0."""
    return (ood - ind) / ind if ind else math.nan


def _boot_means(values: np.ndarray, groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
                ) -> np.ndarray:
    """(n_boot,) means of `values` over two-stage bootstrap draws: seeds resampled with replacement, then episodes
    within each drawn seed. groups[s] holds the positions of seed s's episodes."""
    groups = [g for g in groups if len(g)]
    g_count = len(groups)
    sizes = {len(g) for g in groups}
    if len(sizes) == 1:  # the usual case (every seed has the same episodes): one vectorised draw
        m = sizes.pop()
        table = np.stack(groups)
        seeds = rng.integers(0, g_count, size=(n_boot, g_count))
        within = rng.integers(0, m, size=(n_boot, g_count, m))
        return values[table[seeds[..., None], within]].mean(axis=(1, 2))
    out = np.empty(n_boot)
    for b in range(n_boot):
        parts = []
        for s in rng.integers(0, g_count, size=g_count):
            g = groups[s]
            parts.append(g[rng.integers(0, len(g), size=len(g))])
        out[b] = values[np.concatenate(parts)].mean()
    return out


def _groups(seed_ids: Sequence[int]) -> list[np.ndarray]:
    ids = np.asarray(seed_ids)
    return [np.flatnonzero(ids == s) for s in np.unique(ids)]


def bootstrap_rate(outcomes: Sequence[bool], seed_ids: Sequence[int], n_boot: int = N_BOOT,
                   rng_seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the success rate from the two-stage bootstrap over seeds x episodes.

    outcomes: (n,) success per episode; seed_ids: (n,) the seed index of each. (nan, nan) for no episodes."""
    x = np.asarray(outcomes, dtype=float)
    if len(x) != len(seed_ids):
        raise ValueError(f"one seed id per outcome: {len(x)} outcomes, {len(seed_ids)} seed ids")
    if not len(x):
        return (math.nan, math.nan)
    rng = np.random.default_rng(rng_seed)
    means = _boot_means(x, _groups(seed_ids), n_boot, rng)
    a = (1 - level) / 2
    return (float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))


@dataclass(frozen=True)
class RateSummary:
    """k of n with the Wilson and bootstrap intervals."""

    k: int
    n: int
    rate: float
    wilson: tuple[float, float]
    bootstrap: tuple[float, float]

    def to_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "rate": self.rate, "wilson": list(self.wilson),
                "bootstrap": list(self.bootstrap)}


def summarize_rate(outcomes: Sequence[bool], seed_ids: Sequence[int], n_boot: int = N_BOOT) -> RateSummary:
    x = np.asarray(outcomes, dtype=bool)
    k, n = int(x.sum()), int(len(x))
    return RateSummary(k, n, k / n if n else math.nan, wilson_interval(k, n),
                       bootstrap_rate(x, seed_ids, n_boot=n_boot))


def axis_mean(per_condition: Mapping[str, tuple[Sequence[bool], Sequence[int]]], n_boot: int = N_BOOT,
              rng_seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Unweighted mean of the conditions' success rates, with a bootstrap interval (each condition resampled by
    seeds x episodes, independently). per_condition: name -> (outcomes, seed ids)."""
    items = [(np.asarray(o, dtype=float), _groups(s)) for o, s in per_condition.values() if len(o)]
    if not items:
        return (math.nan, (math.nan, math.nan))
    mean = float(np.mean([x.mean() for x, _ in items]))
    rng = np.random.default_rng(rng_seed)
    per = [_boot_means(x, g, n_boot, rng) for x, g in items]
    boots = np.mean(per, axis=0)
    a = (1 - level) / 2
    return mean, (float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)))


@dataclass(frozen=True)
class PairedDifference:
    """mean(a) - mean(b) over n shared episodes, with the paired-bootstrap interval; a_only / b_only count the
    discordant pairs (a succeeded and b failed, and the reverse)."""

    diff: float
    low: float
    high: float
    n: int
    a_only: int
    b_only: int

    def to_dict(self) -> dict:
        return {"diff": self.diff, "low": self.low, "high": self.high, "n": self.n, "a_only": self.a_only,
                "b_only": self.b_only}


def paired_difference(a: Sequence[bool], b: Sequence[bool], seed_ids: Sequence[int], n_boot: int = N_BOOT,
                      rng_seed: int = BOOT_SEED, level: float = 0.95) -> PairedDifference:
    """Success of policy a minus policy b on the same episodes (a[i] and b[i] share a factor record and seed),
    with a percentile interval from the two-stage bootstrap applied to the pairs. Raises ValueError for
    unequal lengths."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) != len(seed_ids):
        raise ValueError(f"paired outcomes need equal lengths: {len(x)}, {len(y)}, {len(seed_ids)} seed ids")
    n = len(x)
    if not n:
        return PairedDifference(math.nan, math.nan, math.nan, 0, 0, 0)
    d = x - y
    rng = np.random.default_rng(rng_seed)
    means = _boot_means(d, _groups(seed_ids), n_boot, rng)
    q = (1 - level) / 2
    return PairedDifference(float(d.mean()), float(np.quantile(means, q)), float(np.quantile(means, 1 - q)), n,
                            int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum()))
