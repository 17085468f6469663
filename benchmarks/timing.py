"""Timing helper shared by the benchmarks: two envs stepped in alternating rounds, median steps/s of each."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

ROUNDS = 5


def _round(env, action_fn: Callable[[], np.ndarray], steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action_fn())
    return steps / (time.perf_counter() - t)


def measure_pair(a, a_action: Callable, b, b_action: Callable, steps: int, warmup: int = 3) -> tuple[float, float]:
    """Median steps/s of two envs measured in alternating rounds, so machine drift hits both alike."""
    for env, act in ((a, a_action), (b, b_action)):
        env.reset(seed=0)
        _round(env, act, warmup)
    per = max(1, steps // ROUNDS)
    ra, rb = [], []
    for _ in range(ROUNDS):
        ra.append(_round(a, a_action, per))
        rb.append(_round(b, b_action, per))
    return float(np.median(ra)), float(np.median(rb))
