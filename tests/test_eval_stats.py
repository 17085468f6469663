"""Statistics of the evaluation (vla_ood_envs.evaluation.stats) against published and hand-computed values."""

import math

import numpy as np
import pytest

from vla_ood_envs.evaluation.stats import (axis_mean, bootstrap_rate, degradation_ratio, newcombe_interval,
                                           paired_difference, summarize_rate, wilson_interval)


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", method 3 (Wilson score):
    # 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775.
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-5) and hi == pytest.approx(0.3662, abs=5e-5)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-5)
    # By hand: k = n gives (n / (n + z^2), 1).
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(10 / (10 + 1.959964 ** 2), abs=1e-6) and hi == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)


def test_newcombe_difference_matches_the_published_example():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", example (a):
    # 56/70 - 48/80, method 10 (hybrid score) -> +0.0524 to +0.3339.
    d, lo, hi = newcombe_interval(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=5e-5) and hi == pytest.approx(0.3339, abs=5e-5)


def test_degradation_ratio_and_axis_mean_reproduce_the_paper():
    # study.md section 7, SFT column: IND 0.781; the five vision conditions average 0.642 (the paper's axis mean).
    vision = [0.719, 0.719, 0.557, 0.708, 0.505]
    assert degradation_ratio(0.557, 0.781) == pytest.approx((0.557 - 0.781) / 0.781)
    assert degradation_ratio(0.5, 0.0) != degradation_ratio(0.5, 0.0)  # nan when IND is 0
    # Conditions given as 1000 episodes each whose rates are exactly the paper's: the axis mean is unweighted.
    per = {f"c{i}": (np.r_[np.ones(int(r * 1000)), np.zeros(1000 - int(r * 1000))], np.zeros(1000, int))
           for i, r in enumerate(vision)}
    mean, (lo, hi) = axis_mean(per, n_boot=500)
    assert mean == pytest.approx(0.6416)
    assert lo < mean < hi and hi - lo < 0.03
    assert degradation_ratio(mean, 0.781) == pytest.approx(-0.1785, abs=5e-4)


def test_paired_difference_interval_matches_the_normal_approximation():
    # 400 shared episodes: 60 pairs where a succeeds and b fails, 20 the reverse, the rest concordant.
    # d = (60 - 20) / 400 = 0.1; SE = sqrt((b + c) / n^2 - (b - c)^2 / n^3) = 0.021794 -> 0.1 +- 0.0427.
    a = np.r_[np.ones(60), np.zeros(20), np.ones(200), np.zeros(120)]
    b = np.r_[np.zeros(60), np.ones(20), np.ones(200), np.zeros(120)]
    pd = paired_difference(a, b, np.zeros(400, int))
    assert pd.diff == pytest.approx(0.1) and (pd.a_only, pd.b_only, pd.n) == (60, 20, 400)
    assert pd.low == pytest.approx(0.0573, abs=0.006) and pd.high == pytest.approx(0.1427, abs=0.006)
    # Pairing removes the shared variation: the unpaired interval of the same margins is wider.
    _, nlo, nhi = newcombe_interval(int(a.sum()), 400, int(b.sum()), 400)
    assert nhi - nlo > 1.5 * (pd.high - pd.low)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference(a, b[:10], np.zeros(400, int))


def test_bootstrap_over_seeds_and_episodes():
    seeds = np.repeat([0, 1, 2], 16)
    same = np.tile(np.r_[np.ones(12), np.zeros(4)], 3)  # every seed 12/16
    lo, hi = bootstrap_rate(same, seeds)
    assert lo < 0.75 < hi
    # Seeds that disagree completely widen the interval to the seed-level spread.
    split = np.r_[np.ones(16), np.ones(16), np.zeros(16)]
    lo2, hi2 = bootstrap_rate(split, seeds)
    assert (lo2, hi2) == (0.0, 1.0)
    # Unequal seed sizes take the looped path and agree with the vectorised one in spirit.
    lo3, hi3 = bootstrap_rate(np.r_[same, [1.0]], np.r_[seeds, [2]], n_boot=400)
    assert lo3 < 0.76 < hi3
    s = summarize_rate(same.astype(bool), seeds)
    assert (s.k, s.n, s.rate) == (36, 48, 0.75) and s.wilson == wilson_interval(36, 48)
