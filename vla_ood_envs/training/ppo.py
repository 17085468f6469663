"""PPO fine-tuning of a learnable VLA (the study's best RL method; docs: ../shared/docs/study.md section 6).

One file, top to bottom (after CleanRL's ppo.py): configuration, then `train`, whose loop per iteration is
  1. collect: every env plays one episode per seed through `rollout.collect` (sampling at temperature 1.0);
     the value of the observation after the last step bootstraps a truncated return;
  2. advantages: GAE (gamma 0.99, lambda 0.95; gamma = lambda = 1 is the ORZ variant), normalised once over
     the whole batch (every rank's steps);
  3. update: 1 epoch over the shuffled steps in micro-batches with gradient accumulation: clipped surrogate on
     the joint 7-token log-prob ratio + clipped Huber value loss through the shared backbone, gradients averaged
     over ranks, global norm clipped to 10, separate learning rates for the policy and the value head;
  4. log, evaluate greedily on held-aside seeds, checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..policies.base import LearnablePolicy
from . import common
from .advantages import gae, normalize
from .buffer import RolloutBuffer
from .distributed import DistInfo, all_reduce, broadcast_parameters, init_distributed
from .losses import clipped_surrogate, clipped_value_loss
from .runs import Run


@dataclass
class PPOConfig(common.RLConfig):
    """PPO's constants (study defaults); the shared ones are documented on RLConfig.

    gamma, gae_lambda: GAE discount and trace (0.99, 0.95; 1, 1 for the ORZ variant).
    clip: surrogate clip range on the joint ratio (0.2).
    value_clip: how far a new value may move from the rollout's value in the clipped value loss (0.2).
    huber_delta: Huber threshold of the value loss (10).
    value_coef: weight of the value loss in the shared loss (RL4VLA adds the two losses: 1.0).
    policy_weight: weight of the surrogate (1.0; RL4VLA's 7-column broadcast amounts to about 7).
    entropy_coef: entropy bonus (0: the study uses none).
    epochs: passes over each iteration's data (the study: 1 is as sample-efficient and faster).
    normalize_advantages: normalise over the whole batch once per iteration (True).
    """

    algo: str = "ppo"
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_clip: float = 0.2
    huber_delta: float = 10.0
    value_coef: float = 1.0
    policy_weight: float = 1.0
    entropy_coef: float = 0.0
    epochs: int = 1
    normalize_advantages: bool = True


def train(cfg: PPOConfig, policy: LearnablePolicy | None = None,
          on_iteration: Callable[[int, dict], None] | None = None, env=None) -> Run:
    """Run (or resume) PPO into cfg.out. policy: a LearnablePolicy to train instead of loading cfg.init.
    on_iteration(iteration, record) is called after each logged iteration (tests, notebooks).
    env: an env to collect from instead of building one (it must match cfg: a training ID, cfg.image_size,
    cfg.max_episode_steps; the caller closes it).
    Returns the Run (its folder holds config.json, metrics.jsonl and checkpoints/)."""
    cfg.check()
    info = init_distributed()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    common.check_training_env(cfg.env_id, cfg.env_kwargs)
    run = Run(cfg.out, cfg.to_dict(), info, resumable=cfg.RESUMABLE)
    run.keep = cfg.keep_checkpoints
    common.seed_everything(cfg.seed * 1000 + info.rank)
    device = common.pick_device(cfg, info)

    # ---- the policy (shared actor-critic: its value head reads the backbone), optimiser with two learning rates
    policy = policy if policy is not None else common.load_initial_policy(cfg.init)
    policy.to(device)
    policy.temperature = cfg.temperature
    optimizer = common.make_optimizer(policy, {"policy": cfg.lr_policy, "value_head": cfg.lr_value}, cfg)
    start, counters = run.resume(policy, optimizer)
    broadcast_parameters(policy, info)
    run.start_logging(start, cfg.tensorboard)
    env_steps = int(counters.get("env_steps", 0))

    own_env = env is None
    env = common.make_training_env(cfg, device) if own_env else env
    buffer = RolloutBuffer(cfg.episodes(), cfg.max_episode_steps, device)
    bar = tqdm(total=cfg.iterations, initial=start, desc="ppo", disable=not (cfg.progress and info.is_main))
    try:
        common.check_env_instance(env)
        common.evaluate_start(run, env, policy, cfg, info, start)
        for iteration in range(start, cfg.iterations):
            # ---- 1. rollouts (truncated episodes bootstrap from the value of their final observation)
            seeds, groups = common.train_seeds(cfg, iteration, info)
            timing = common.collect_iteration(env, policy, buffer, seeds, groups, cfg, bootstrap=True)
            steps_now = int(all_reduce(torch.tensor([timing["env_steps"]]), info)[0])
            env_steps += steps_now

            # ---- 2. advantages and returns
            advantages, returns = gae(buffer.rewards, buffer.values, buffer.lengths, buffer.bootstrap,
                                      gamma=cfg.gamma, lam=cfg.gae_lambda)
            if cfg.normalize_advantages:
                advantages = normalize(advantages, buffer.valid, lambda x: all_reduce(x, info))

            # ---- 3. update
            t_update = time.perf_counter()
            stats = _ppo_update(policy, optimizer, buffer, advantages, returns, cfg, info)
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
            bar.set_postfix(ret=f"{record['return']:.3f}", succ=f"{record['success']:.2f}")
            if on_iteration is not None:
                on_iteration(done, record)
    finally:
        bar.close()
        if own_env:
            env.close()
        run.close()
    return run


def _ppo_update(policy: LearnablePolicy, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
                advantages: torch.Tensor, returns: torch.Tensor, cfg: PPOConfig, info: DistInfo) -> dict:
    """cfg.epochs passes of clipped-surrogate + clipped-value updates over every valid step of the buffer."""
    policy.eval()  # no dropout: evaluate must reproduce the rollout's log-probs
    sums = torch.zeros(7, dtype=torch.float64)  # policy loss, value loss, entropy, clipped, kl, samples, norm
    n_steps = 0
    for _ in range(cfg.epochs):
        for step in common.micro_batch_schedule(buffer.step_indices(), cfg, info):
            for index, weight in step:
                images, instructions, tokens = buffer.batch(index)
                e, t = index[:, 0], index[:, 1]
                scores = policy.evaluate(images, instructions, tokens)
                if scores.value is None:
                    raise ValueError(f"PPO needs a value head: {type(policy).__name__}.evaluate returned no value")
                pg, pstats = clipped_surrogate(scores.log_prob, buffer.log_probs[e, t], advantages[e, t], cfg.clip)
                vl = clipped_value_loss(scores.value, buffer.values[e, t], returns[e, t], clip=cfg.value_clip,
                                        huber_delta=cfg.huber_delta)
                loss = (weight * (cfg.policy_weight * pg + cfg.value_coef * vl
                                  - cfg.entropy_coef * scores.entropy)).sum()
                loss.backward()
                real = (weight > 0).double().cpu()
                sums[:6] += torch.stack([(real * pg.detach().double().cpu()).sum(),
                                         (real * vl.detach().double().cpu()).sum(),
                                         (real * scores.entropy.detach().double().cpu()).sum(),
                                         (real * pstats["clipped"].double().cpu()).sum(),
                                         (real * pstats["approx_kl"].double().cpu()).sum(), real.sum()])
            sums[6] += common.optimizer_step(optimizer, cfg, info)
            n_steps += 1
    total = all_reduce(sums, info)
    n = max(float(total[5]), 1.0)
    return {"policy_loss": float(total[0]) / n, "value_loss": float(total[1]) / n, "entropy": float(total[2]) / n,
            "clip_fraction": float(total[3]) / n, "approx_kl": float(total[4]) / n,
            "grad_norm": float(total[6]) / max(n_steps * info.world_size, 1), "optimizer_steps": n_steps}
