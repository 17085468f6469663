"""GRPO fine-tuning (Shao et al. 2024; the study ranks it below PPO; docs: ../shared/docs/study.md section 6).

One file, top to bottom: configuration, then `train`, whose loop per iteration is
  1. collect: groups of G rollouts from the same initial state (the same reset seed G times: equal seeds give
     equal episodes, so the group differs only by the policy's sampling);
  2. advantages: A_i = (R_i - mean(R)) / std(R) within each group, the same for every step of episode i
     (a group whose returns are all equal gets 0); with dynamic sampling the groups where every rollout succeeds
     or every one fails are dropped (RIPT-VLA, SimpleVLA-RL);
  3. update: no critic; the same clipped surrogate on the joint log-prob ratio as PPO, micro-batches with
     gradient accumulation, gradients averaged over ranks, norm clipped;
  4. log, evaluate, checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..policies.base import LearnablePolicy
from . import common
from .advantages import group_advantages
from .buffer import RolloutBuffer
from .distributed import DistInfo, all_reduce, broadcast_parameters, init_distributed
from .losses import clipped_surrogate
from .runs import Run


@dataclass
class GRPOConfig(common.RLConfig):
    """GRPO's constants; shared ones on RLConfig.

    group_size: rollouts per initial state (the paper's G = 8); episodes_per_iteration must be a multiple of it
        (a group may span several collects when num_envs < G).
    clip: surrogate clip range on the joint ratio (0.2).
    policy_weight: weight of the surrogate (1.0).
    entropy_coef: entropy bonus (0).
    dynamic_sampling: drop groups whose rollouts all succeed or all fail (False).
    epochs: passes over each iteration's data (1).
    """

    algo: str = "grpo"
    group_size: int = 8
    episodes_per_iteration: int | None = 8
    clip: float = 0.2
    policy_weight: float = 1.0
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    epochs: int = 1

    def check(self) -> None:
        super().check()
        if self.group_size < 2:
            raise common.ConfigError(f"GRPO compares rollouts within a group: group_size must be >= 2, "
                                     f"got {self.group_size}")
        if self.episodes() % self.group_size:
            raise common.ConfigError(f"episodes_per_iteration ({self.episodes()}) must be a multiple of "
                                     f"group_size ({self.group_size})")


def train(cfg: GRPOConfig, policy: LearnablePolicy | None = None,
          on_iteration: Callable[[int, dict], None] | None = None, env=None) -> Run:
    """Run (or resume) GRPO into cfg.out; arguments as `ppo.train`."""
    cfg.check()
    info = init_distributed()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    common.check_training_env(cfg.env_id, cfg.env_kwargs)
    run = Run(cfg.out, cfg.to_dict(), info, resumable=cfg.RESUMABLE)
    run.keep = cfg.keep_checkpoints
    common.seed_everything(cfg.seed * 1000 + info.rank)
    device = common.pick_device(cfg, info)

    # ---- the policy; the value head, if any, is not trained (no critic)
    policy = policy if policy is not None else common.load_initial_policy(cfg.init)
    policy.to(device)
    policy.temperature = cfg.temperature
    optimizer = common.make_optimizer(policy, {"policy": cfg.lr_policy}, cfg)
    start, counters = run.resume(policy, optimizer)
    broadcast_parameters(policy, info)
    run.start_logging(start, cfg.tensorboard)
    env_steps = int(counters.get("env_steps", 0))

    own_env = env is None
    env = common.make_training_env(cfg, device) if own_env else env
    buffer = RolloutBuffer(cfg.episodes(), cfg.max_episode_steps, device)
    bar = tqdm(total=cfg.iterations, initial=start, desc="grpo", disable=not (cfg.progress and info.is_main))
    try:
        common.check_env_instance(env)
        common.evaluate_start(run, env, policy, cfg, info, start)
        for iteration in range(start, cfg.iterations):
            # ---- 1. groups of rollouts from shared initial states
            seeds, groups = common.train_seeds(cfg, iteration, info, group_size=cfg.group_size)
            timing = common.collect_iteration(env, policy, buffer, seeds, groups, cfg, bootstrap=False)
            steps_now = int(all_reduce(torch.tensor([timing["env_steps"]]), info)[0])
            env_steps += steps_now

            # ---- 2. group-relative advantages, optionally dropping groups without signal
            episode_adv = group_advantages(buffer.episode_returns, buffer.groups)
            keep = torch.ones(buffer.E, dtype=torch.bool, device=buffer.device)
            if cfg.dynamic_sampling:
                keep = informative_groups(buffer.success, buffer.groups)
            advantages = episode_adv.to(buffer.device)[:, None].expand(-1, buffer.T)

            # ---- 3. update
            t_update = time.perf_counter()
            signal = all_reduce(torch.tensor([float(bool((episode_adv[keep.cpu()] != 0).any()))]), info, op="max")
            if float(signal[0]) == 0.0 and cfg.entropy_coef == 0.0:
                # Every advantage is 0 on every rank: the gradient would be exactly 0, so skip the passes (and
                # leave Adam's moments as they are).
                stats = {"policy_loss": 0.0, "entropy": float(buffer.entropies[buffer.valid].mean()),
                         "clip_fraction": 0.0, "approx_kl": 0.0, "grad_norm": 0.0, "optimizer_steps": 0}
            else:
                stats = _grpo_update(policy, optimizer, buffer, advantages, keep, cfg, info)
            update_time = time.perf_counter() - t_update

            # ---- 4. log, evaluate, checkpoint
            done = iteration + 1
            kept = all_reduce(torch.tensor([float(keep.sum()), float(buffer.E)]), info)
            record = {"iteration": done, "env_steps": env_steps, **common.episode_stats(buffer, info), **stats,
                      "kept_episode_fraction": float(kept[0] / kept[1]),
                      "collect_time_s": timing["collect_time_s"], "update_time_s": update_time,
                      "env_steps_per_s": steps_now / max(timing["collect_time_s"], 1e-9)}
            if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.iterations):
                record.update(common.greedy_evaluation(env, policy, cfg, info))
            run.log(record)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                run.save(done, policy, optimizer, {"env_steps": env_steps})
            bar.update(1)
            bar.set_postfix(ret=f"{record['return']:.3f}", succ=f"{record['success']:.2f}")
            if on_iteration is not None:
                on_iteration(done, record)
    finally:
        bar.close()
        if own_env:
            env.close()
        run.close()
    return run


def informative_groups(success: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """(E,) bool: episodes of groups with at least one success and one failure (dynamic sampling)."""
    keep = torch.zeros_like(success, dtype=torch.bool)
    for g in torch.unique(groups):
        idx = groups == g
        rate = success[idx].float().mean()
        keep[idx] = bool(0.0 < rate < 1.0)
    return keep


def _grpo_update(policy: LearnablePolicy, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
                 advantages: torch.Tensor, keep: torch.Tensor, cfg: GRPOConfig, info: DistInfo) -> dict:
    """Clipped-surrogate updates over the valid steps of the kept episodes; a rank with nothing to learn from
    still takes part in every all-reduce (its padded micro-batches weigh 0)."""
    policy.eval()
    sums = torch.zeros(6, dtype=torch.float64)  # policy loss, entropy, clipped, kl, samples, grad norm
    n_steps = 0
    index = buffer.step_indices(keep)
    for _ in range(cfg.epochs):
        for step in common.micro_batch_schedule(index, cfg, info):
            for idx, weight in step:
                images, instructions, tokens = buffer.batch(idx)
                e, t = idx[:, 0], idx[:, 1]
                scores = policy.evaluate(images, instructions, tokens)
                pg, pstats = clipped_surrogate(scores.log_prob, buffer.log_probs[e, t], advantages[e, t], cfg.clip)
                loss = (weight * (cfg.policy_weight * pg - cfg.entropy_coef * scores.entropy)).sum()
                loss.backward()
                real = (weight > 0).double().cpu()
                sums[:5] += torch.stack([(real * pg.detach().double().cpu()).sum(),
                                         (real * scores.entropy.detach().double().cpu()).sum(),
                                         (real * pstats["clipped"].double().cpu()).sum(),
                                         (real * pstats["approx_kl"].double().cpu()).sum(), real.sum()])
            sums[5] += common.optimizer_step(optimizer, cfg, info)
            n_steps += 1
    total = all_reduce(sums, info)
    n = max(float(total[4]), 1.0)
    return {"policy_loss": float(total[0]) / n, "entropy": float(total[1]) / n, "clip_fraction": float(total[2]) / n,
            "approx_kl": float(total[3]) / n, "grad_norm": float(total[5]) / max(n_steps * info.world_size, 1),
            "optimizer_steps": n_steps}
