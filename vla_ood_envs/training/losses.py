"""The losses of the RL trainers, per sample (the trainers weight and sum them).

Log-probabilities are JOINT over the 7 action dimensions (the protocol's log_prob is the sum of the 7
per-dimension log-softmaxes), so a PPO/GRPO ratio is one number per step. RL4VLA's buffer instead broadcasts the
joint log-prob into 7 columns and sums the 7 clipped terms, which weights the policy term about 7x against the value
term; here that weighting is an explicit constant (`policy_weight`), 1.0 by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clipped_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                      clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017) on the joint log-prob ratio, as a loss to minimise.

    log_prob: (B,) with gradients; old_log_prob, advantages: (B,) from the rollout. Returns (loss (B,), stats)
    where stats holds per-sample `clipped` (0/1: the ratio left [1 - clip, 1 + clip]), `approx_kl`
    ((ratio - 1) - log ratio, an unbiased estimator of KL(old || new); Schulman's k3) and `ratio`, all detached.
    """
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    loss = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip))
    with torch.no_grad():
        stats = {"clipped": ((ratio - 1.0).abs() > clip).float(), "approx_kl": (ratio - 1.0) - log_ratio,
                 "ratio": ratio}
    return loss, stats


def clipped_value_loss(value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor, *,
                       clip: float = 0.2, huber_delta: float = 10.0) -> torch.Tensor:
    """RL4VLA's value loss: max(Huber(V, R), Huber(V_old + clamp(V - V_old, -clip, clip), R)), Huber delta 10
    (docs: ../shared/docs/study.md section 6). value: (B,) with gradients; old_value, returns: (B,). Returns (B,)."""
    clipped = old_value + torch.clamp(value - old_value, -clip, clip)
    plain = F.huber_loss(value, returns, reduction="none", delta=huber_delta)
    limited = F.huber_loss(clipped, returns, reduction="none", delta=huber_delta)
    return torch.max(plain, limited)


def dpo_loss(pi_win: torch.Tensor, ref_win: torch.Tensor, pi_lose: torch.Tensor, ref_lose: torch.Tensor,
             beta: float) -> torch.Tensor:
    """Trajectory DPO (Rafailov et al. 2023; GRAPE's TPO applies it to whole trajectories):
    -log sigmoid(beta * [(log pi(w) - log ref(w)) - (log pi(l) - log ref(l))]).

    Every argument is (P,): a trajectory's log-probability summed over its steps, for the P (winner, loser) pairs.
    Returns (P,) losses (log 2 when the policy equals the reference)."""
    margin = (pi_win - ref_win) - (pi_lose - ref_lose)
    return -F.logsigmoid(beta * margin)


def dpo_loss_grad(pi_win: torch.Tensor, ref_win: torch.Tensor, pi_lose: torch.Tensor, ref_lose: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """d dpo_loss / d log pi(w) and d dpo_loss / d log pi(l), each (P,): -beta * sigmoid(-beta * margin) and its
    negative. The trainer uses them to backpropagate a trajectory's loss step by step (the loss depends on the
    policy only through the two summed log-probs), so memory does not grow with the episode length."""
    margin = (pi_win - ref_win) - (pi_lose - ref_lose)
    g = -beta * torch.sigmoid(-beta * margin)
    return g, -g
