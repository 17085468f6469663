"""Trajectory-wise DPO (after GRAPE's TPO; the study ranks it last and never released it, so this arm is our
design; docs: ../shared/docs/study.md section 6).

One file, top to bottom: configuration, then `train`, whose loop per iteration is
  1. collect: groups of G rollouts of the current policy from the same initial state (same reset seed);
  2. pairs: within a group, every two rollouts with different returns make a (winner, loser) pair (ties are
     dropped); `pairs="best_worst"` keeps only the best against the worst;
  3. update, one optimizer step per iteration:
        loss = mean over pairs of -log sigmoid(beta * [(log pi(w) - log ref(w)) - (log pi(l) - log ref(l))])
     with log pi(trajectory) the sum over its steps of the joint 7-token log-prob, and ref a frozen copy of the
     starting (SFT) policy. The loss depends on the policy only through the summed log-probs, so the gradient is
     taken step by step: a no-grad pass gives each trajectory's d loss / d log pi, then micro-batches of steps
     backpropagate that coefficient times their log-prob (memory does not grow with the episode length);
  4. log, evaluate, checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..policies.base import LearnablePolicy
from . import common
from .buffer import RolloutBuffer
from .distributed import DistInfo, all_reduce, broadcast_parameters, init_distributed
from .losses import dpo_loss, dpo_loss_grad
from .runs import Run


@dataclass
class DPOConfig(common.RLConfig):
    """DPO's constants; shared ones on RLConfig.

    beta: the DPO temperature on the log-ratio margin (0.1, DPO's usual value; GRAPE's TPO uses the same form).
    group_size: rollouts per initial state (>= 2).
    pairs: "all" (every pair of a group with different returns) or "best_worst" (one pair per group).
    """

    algo: str = "dpo"
    beta: float = 0.1
    group_size: int = 2
    pairs: str = "all"
    lr_policy: float = 1e-5

    def check(self) -> None:
        super().check()
        if self.group_size < 2:
            raise common.ConfigError(f"DPO pairs rollouts of one initial state: group_size must be >= 2, "
                                     f"got {self.group_size}")
        if self.episodes() % self.group_size:
            raise common.ConfigError(f"episodes_per_iteration ({self.episodes()}) must be a multiple of "
                                     f"group_size ({self.group_size})")
        if self.pairs not in ("all", "best_worst"):
            raise common.ConfigError(f"pairs must be 'all' or 'best_worst', not {self.pairs!r}")
        if self.beta <= 0:
            raise common.ConfigError(f"beta must be > 0, got {self.beta}")


def train(cfg: DPOConfig, policy: LearnablePolicy | None = None,
          on_iteration: Callable[[int, dict], None] | None = None, env=None) -> Run:
    """Run (or resume) trajectory DPO into cfg.out; arguments as `ppo.train`."""
    cfg.check()
    info = init_distributed()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    common.check_training_env(cfg.env_id, cfg.env_kwargs)
    run = Run(cfg.out, cfg.to_dict(), info, resumable=cfg.RESUMABLE)
    run.keep = cfg.keep_checkpoints
    common.seed_everything(cfg.seed * 1000 + info.rank)
    device = common.pick_device(cfg, info)

    # ---- the policy and its frozen reference (the starting policy, also after a resume)
    policy = policy if policy is not None else common.load_initial_policy(cfg.init)
    policy.to(device)
    policy.temperature = cfg.temperature
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    optimizer = common.make_optimizer(policy, {"policy": cfg.lr_policy}, cfg)
    start, counters = run.resume(policy, optimizer)
    broadcast_parameters(policy, info)
    run.start_logging(start, cfg.tensorboard)
    env_steps = int(counters.get("env_steps", 0))

    own_env = env is None
    env = common.make_training_env(cfg, device) if own_env else env
    buffer = RolloutBuffer(cfg.episodes(), cfg.max_episode_steps, device)
    bar = tqdm(total=cfg.iterations, initial=start, desc="dpo", disable=not (cfg.progress and info.is_main))
    try:
        common.check_env_instance(env)
        common.evaluate_start(run, env, policy, cfg, info, start)
        for iteration in range(start, cfg.iterations):
            # ---- 1. groups of rollouts from shared initial states
            seeds, groups = common.train_seeds(cfg, iteration, info, group_size=cfg.group_size)
            timing = common.collect_iteration(env, policy, buffer, seeds, groups, cfg, bootstrap=False)
            steps_now = int(all_reduce(torch.tensor([timing["env_steps"]]), info)[0])
            env_steps += steps_now

            # ---- 2. (winner, loser) pairs ranked by return, ties dropped
            win, lose = preference_pairs(buffer.episode_returns, buffer.groups, cfg.pairs)

            # ---- 3. one optimizer step on the pairs' DPO loss
            t_update = time.perf_counter()
            stats = _dpo_update(policy, reference, optimizer, buffer, win, lose, cfg, info)
            update_time = time.perf_counter() - t_update

            # ---- 4. log, evaluate, checkpoint
            done = iteration + 1
            record = {"iteration": done, "env_steps": env_steps, **common.episode_stats(buffer, info), **stats,
                      "collect_time_s": timing["collect_time_s"], "update_time_s": update_time,
                      "env_steps_per_s": steps_now / max(timing["collect_time_s"], 1e-9)}
            if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.iterations):
                record.update(common.greedy_evaluation(env, policy, cfg, info))
            run.log(record)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                run.save(done, policy, optimizer, {"env_steps": env_steps})
            bar.update(1)
            bar.set_postfix(ret=f"{record['return']:.3f}", succ=f"{record['success']:.2f}",
                            pairs=int(record["pairs"]))
            if on_iteration is not None:
                on_iteration(done, record)
    finally:
        bar.close()
        if own_env:
            env.close()
        run.close()
    return run


def preference_pairs(returns: torch.Tensor, groups: torch.Tensor, mode: str = "all"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(winner rows, loser rows), each (P,) int64: pairs of episodes of one group with different returns, the
    higher return winning. mode "all": every such pair; "best_worst": the best against the worst of each group
    (none when they tie)."""
    win, lose = [], []
    r = returns.detach().cpu()
    g = groups.detach().cpu()
    for group in torch.unique(g):
        rows = torch.nonzero(g == group).flatten().tolist()
        if mode == "best_worst":
            best = max(rows, key=lambda i: float(r[i]))
            worst = min(rows, key=lambda i: float(r[i]))
            if float(r[best]) > float(r[worst]):
                win.append(best)
                lose.append(worst)
            continue
        for a_pos, a in enumerate(rows):
            for b in rows[a_pos + 1:]:
                if float(r[a]) != float(r[b]):
                    w, lo = (a, b) if float(r[a]) > float(r[b]) else (b, a)
                    win.append(w)
                    lose.append(lo)
    return torch.tensor(win, dtype=torch.int64), torch.tensor(lose, dtype=torch.int64)


@torch.no_grad()
def trajectory_log_probs(model: LearnablePolicy, buffer: RolloutBuffer, rows: torch.Tensor,
                         batch_size: int) -> torch.Tensor:
    """(E,) float64: each episode's log-probability under `model` (sum over steps of the joint log-prob of the
    recorded tokens); only the rows listed are computed (others 0)."""
    out = torch.zeros(buffer.E, dtype=torch.float64)
    mask = torch.zeros(buffer.E, dtype=torch.bool, device=buffer.device)
    mask[rows.to(buffer.device)] = True
    index = buffer.step_indices(mask)
    for s in range(0, len(index), batch_size):
        idx = index[s:s + batch_size]
        images, instructions, tokens = buffer.batch(idx)
        lp = model.evaluate(images, instructions, tokens).log_prob.double().cpu()
        out.index_add_(0, idx[:, 0].cpu(), lp)
    return out


def _dpo_update(policy: LearnablePolicy, reference: LearnablePolicy, optimizer: torch.optim.Optimizer,
                buffer: RolloutBuffer, win: torch.Tensor, lose: torch.Tensor, cfg: DPOConfig,
                info: DistInfo) -> dict:
    """One optimizer step on the mean DPO loss over every rank's pairs (ranks without pairs contribute zero
    gradients; gradients are summed over ranks and divided by the global pair count)."""
    policy.eval()
    n_local = int(win.numel())
    n_global = float(all_reduce(torch.tensor([float(n_local)]), info)[0])
    rows = torch.unique(torch.cat([win, lose])) if n_local else torch.zeros(0, dtype=torch.int64)
    bs = cfg.micro_batch_size
    loss_sum = margin_sum = acc_sum = 0.0
    coef = torch.zeros(buffer.E, dtype=torch.float64)
    if n_local:
        pi = trajectory_log_probs(policy, buffer, rows, bs)
        ref = trajectory_log_probs(reference, buffer, rows, bs)
        losses = dpo_loss(pi[win], ref[win], pi[lose], ref[lose], cfg.beta)
        g_win, g_lose = dpo_loss_grad(pi[win], ref[win], pi[lose], ref[lose], cfg.beta)
        coef.index_add_(0, win, g_win)
        coef.index_add_(0, lose, g_lose)
        margin = (pi[win] - ref[win]) - (pi[lose] - ref[lose])
        loss_sum, margin_sum, acc_sum = float(losses.sum()), float(margin.sum()), float((margin > 0).sum())
    # Every rank runs the same number of micro-batches (padded), so the gradient all-reduce lines up.
    mask = torch.zeros(buffer.E, dtype=torch.bool, device=buffer.device)
    if n_local:
        mask[rows.to(buffer.device)] = True
    index = buffer.step_indices(mask)
    k_max = int(all_reduce(torch.tensor([float(len(index))]), info, op="max")[0])
    coef_dev = (coef / max(n_global, 1.0)).to(buffer.device, torch.float32)
    ent_sum = 0.0
    for s in range(0, k_max, bs):
        idx = index[s:s + bs]
        if len(idx) == 0:
            idx, w = torch.zeros(1, 2, dtype=torch.int64, device=buffer.device), torch.zeros(1, device=buffer.device)
        else:
            w = coef_dev[idx[:, 0]]
        images, instructions, tokens = buffer.batch(idx)
        scores = policy.evaluate(images, instructions, tokens)
        (w * scores.log_prob).sum().backward()
        ent_sum += float(scores.entropy.detach()[w != 0].sum()) if len(index) else 0.0
    grad_norm = common.optimizer_step(optimizer, cfg, info, grad_op="sum") if k_max else 0.0
    total = all_reduce(torch.tensor([loss_sum, margin_sum, acc_sum, ent_sum, float(len(index))],
                                    dtype=torch.float64), info)
    n = max(n_global, 1.0)
    return {"pairs": n_global, "dpo_loss": float(total[0]) / n, "reward_margin": cfg.beta * float(total[1]) / n,
            "preference_accuracy": float(total[2]) / n, "entropy": float(total[3]) / max(float(total[4]), 1.0),
            "grad_norm": grad_norm}
