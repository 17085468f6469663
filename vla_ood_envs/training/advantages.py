"""Advantage estimators: GAE over padded episode batches, group-relative (GRPO) advantages, batch normalisation.

All functions take and return torch tensors; episodes are rows of (N, T) arrays, valid for t < lengths[n]
(positions past an episode's length are ignored and come back as 0).
"""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor, bootstrap: torch.Tensor, *,
        gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) per episode row.

    rewards, values: (N, T) float; values[n, t] = V(s_t) as recorded at rollout.
    lengths: (N,) int, steps recorded per episode (1..T).
    bootstrap: (N,) float, the value of the observation after the last recorded step: V(s_T) for an episode
        cut by truncation (time limit, or the loop stopping it), 0 for one that terminated.
    gamma, lam: the study's defaults (0.99, 0.95); gamma = lam = 1 is the ORZ variant (undiscounted
        Monte-Carlo return minus the value).

    Returns (advantages, returns), both (N, T), zero past each length; returns = advantages + values.
    """
    if rewards.shape != values.shape or rewards.dim() != 2:
        raise ValueError(f"rewards and values must both be (N, T); got {tuple(rewards.shape)} and "
                         f"{tuple(values.shape)}")
    n, t_max = rewards.shape
    lengths = lengths.to(rewards.device).long()
    if lengths.shape != (n,) or bool((lengths < 1).any()) or bool((lengths > t_max).any()):
        raise ValueError(f"lengths must be (N,) in 1..{t_max}, got {lengths.tolist()}")
    steps = torch.arange(t_max, device=rewards.device)
    valid = steps[None] < lengths[:, None]
    last = steps[None] == (lengths - 1)[:, None]
    next_values = torch.zeros_like(values)
    next_values[:, :-1] = values[:, 1:]
    next_values = torch.where(last, bootstrap.to(values)[:, None].expand_as(values), next_values)
    deltas = torch.where(valid, rewards + gamma * next_values - values, torch.zeros_like(values))
    advantages = torch.zeros_like(values)
    running = torch.zeros(n, dtype=values.dtype, device=values.device)
    # Past an episode's end every delta is 0, so the running sum is 0 when it reaches the last valid step.
    for t in range(t_max - 1, -1, -1):
        running = deltas[:, t] + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * valid
    returns = (advantages + values) * valid
    return advantages, returns


def group_advantages(returns: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's group-relative advantage A_i = (R_i - mean_g(R)) / std_g(R) (Shao et al. 2024, DeepSeekMath).

    returns: (M,) episode returns; groups: (M,) int group ids (rollouts from the same initial state).
    std is the sample standard deviation (Bessel-corrected, as TRL's GRPO); a group whose returns are all equal
    (std 0, or a group of one) gets advantage 0, never NaN. Returns (M,) float.
    """
    returns = returns.to(torch.float64)
    out = torch.zeros_like(returns)
    for g in torch.unique(groups):
        idx = groups == g
        r = returns[idx]
        if r.numel() < 2:
            continue
        std = r.std()
        if float(std) > eps:
            out[idx] = (r - r.mean()) / std
    return out.to(torch.float32)


def normalize(x: torch.Tensor, mask: torch.Tensor, reduce_sum=None, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / (std + eps) over the entries where mask is True (once over the whole batch); entries outside
    the mask come back 0. reduce_sum: an optional callable that sums a tensor across data-parallel ranks, so every
    rank normalises with the global statistics."""
    m = mask.to(x.dtype)
    stats = torch.stack([(x * m).sum(), (x * x * m).sum(), m.sum()]).to(torch.float64)
    if reduce_sum is not None:
        stats = reduce_sum(stats)
    total, total_sq, count = stats.tolist()
    if count < 1:
        return torch.zeros_like(x)
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return ((x - mean) / (var ** 0.5 + eps)) * m
