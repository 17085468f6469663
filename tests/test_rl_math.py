"""The RL trainers' arithmetic against hand-worked values: GAE (with truncation bootstrap and the ORZ variant),
group-relative advantages, batch normalisation, the clipped losses and the trajectory DPO loss."""

import math

import numpy as np
import pytest
import torch

from vla_ood_envs.training.advantages import gae, group_advantages, normalize
from vla_ood_envs.training.dpo import preference_pairs
from vla_ood_envs.training.grpo import informative_groups
from vla_ood_envs.training.losses import clipped_surrogate, clipped_value_loss, dpo_loss, dpo_loss_grad

# Row 0: 3 steps cut by the time limit (bootstrap V = 2); row 1: 2 steps then terminated (bootstrap 0), padded.
REWARDS = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 9.0]])
VALUES = torch.tensor([[0.5, 1.0, 1.5], [1.0, 2.0, 9.0]])
LENGTHS = torch.tensor([3, 2])
BOOT = torch.tensor([2.0, 0.0])


def test_gae_hand_worked_with_truncation_bootstrap():
    adv, ret = gae(REWARDS, VALUES, LENGTHS, BOOT, gamma=0.5, lam=0.5)
    # Row 0: deltas 1 + .5*1 - .5 = 1, 0 + .5*1.5 - 1 = -.25, 2 + .5*2 - 1.5 = 1.5 (the bootstrap enters here);
    # A2 = 1.5, A1 = -.25 + .25*1.5 = .125, A0 = 1 + .25*.125 = 1.03125.
    # Row 1: deltas 0 + .5*2 - 1 = 0, 1 + 0 - 2 = -1 (terminated: no bootstrap); A1 = -1, A0 = -.25; padding 0.
    torch.testing.assert_close(adv, torch.tensor([[1.03125, 0.125, 1.5], [-0.25, -1.0, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[1.53125, 1.125, 3.0], [0.75, 1.0, 0.0]]))


def test_gae_orz_variant_is_monte_carlo_return_minus_value():
    adv, ret = gae(REWARDS, VALUES, LENGTHS, BOOT, gamma=1.0, lam=1.0)
    # Row 0: returns-to-go plus the bootstrap: 1+0+2+2 = 5, 0+2+2 = 4, 2+2 = 4. Row 1: 1, 1 (terminated).
    torch.testing.assert_close(ret, torch.tensor([[5.0, 4.0, 4.0], [1.0, 1.0, 0.0]]))
    torch.testing.assert_close(adv, torch.tensor([[4.5, 3.0, 2.5], [0.0, -1.0, 0.0]]))


def test_gae_rejects_bad_lengths():
    with pytest.raises(ValueError, match="lengths"):
        gae(REWARDS, VALUES, torch.tensor([4, 2]), BOOT)


def test_group_advantages_within_groups_and_identical_returns_give_zero():
    returns = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.3, 0.3, 0.3, 7.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    adv = group_advantages(returns, groups)
    r = np.array([1.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(adv[:4].numpy(), (r - r.mean()) / r.std(ddof=1), rtol=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))  # identical returns and a group of one: 0, not NaN
    assert torch.isfinite(adv).all()


def test_normalize_once_over_the_masked_batch():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = normalize(x, mask)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(out[mask].numpy(), (v - v.mean()) / v.std(), rtol=1e-5)
    assert torch.equal(out[~mask], torch.zeros(2))
    # The cross-rank hook sees (sum, sum of squares, count): doubling all three (two equal ranks) changes nothing.
    torch.testing.assert_close(normalize(x, mask, lambda s: 2 * s), out)


def test_clipped_surrogate_and_value_loss_hand_worked():
    new = torch.tensor([0.5, 0.5, 0.05])
    old = torch.zeros(3)
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, stats = clipped_surrogate(new, old, adv, clip=0.2)
    e = math.exp(0.5)
    # ratio e^.5 = 1.65: A > 0 is capped at 1.2, A < 0 keeps the larger penalty; inside the range it is -A*ratio.
    torch.testing.assert_close(loss, torch.tensor([-1.2, e, -2 * math.exp(0.05)]))
    assert stats["clipped"].tolist() == [1.0, 1.0, 0.0]
    torch.testing.assert_close(stats["approx_kl"], torch.tensor([e - 1.5, e - 1.5, math.exp(0.05) - 1.05]))
    # V = 1 from V_old = 0 towards R = 2: plain Huber .5, clipped (V = .2) Huber .5 * 1.8^2 = 1.62 -> the max.
    v = clipped_value_loss(torch.tensor([1.0, 12.0, 30.0]), torch.tensor([0.0, 20.0, 29.9]),
                           torch.tensor([2.0, 10.0, 10.0]), clip=0.2, huber_delta=10.0)
    # Second: V jumped 20 -> 12 towards R = 10: plain 2, clipped V = 19.8 gives .5 * 9.8^2 = 48.02 -> the max.
    # Third: |30 - 10| = 20 > delta, the linear branch: 10 * (20 - 5) = 150 (inside the clip range both agree).
    torch.testing.assert_close(v, torch.tensor([1.62, 48.02, 150.0]))


def test_dpo_loss_hand_computed_and_its_gradient():
    pi_w, ref_w, pi_l, ref_l = (torch.tensor([v], dtype=torch.float64, requires_grad=True)
                                for v in (-10.0, -11.0, -12.0, -11.0))
    loss = dpo_loss(pi_w, ref_w, pi_l, ref_l, beta=0.5)
    # margin = (-10 + 11) - (-12 + 11) = 2; -log sigmoid(.5 * 2) = log(1 + e^-1).
    assert float(loss.detach()) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-12)
    loss.sum().backward()
    g_w, g_l = dpo_loss_grad(*(x.detach() for x in (pi_w, ref_w, pi_l, ref_l)), beta=0.5)
    assert float(g_w) == pytest.approx(float(pi_w.grad)) and float(g_l) == pytest.approx(float(pi_l.grad))
    assert float(dpo_loss(pi_w, pi_w, pi_l, pi_l, beta=0.5).detach()) == pytest.approx(math.log(2))


def test_preference_pairs_rank_by_return_and_drop_ties():
    returns = torch.tensor([0.2, 1.2, 0.2, 0.0, 0.5, 0.5])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    win, lose = preference_pairs(returns, groups, "all")
    pairs = set(zip(win.tolist(), lose.tolist()))
    assert pairs == {(1, 0), (0, 3), (1, 2), (1, 3), (2, 3)}  # (0, 2) tie dropped, group 1 all tied
    win, lose = preference_pairs(returns, groups, "best_worst")
    assert list(zip(win.tolist(), lose.tolist())) == [(1, 3)]


def test_dynamic_sampling_keeps_only_mixed_groups():
    success = torch.tensor([True, True, False, True, False, False])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    assert informative_groups(success, groups).tolist() == [False, False, True, True, False, False]
