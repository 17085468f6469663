"""Pieces the three RL trainers share: the common configuration, the training-split check, env construction,
seed streams, policy loading, one iteration's collection into the buffer, episode statistics, greedy evaluation,
optimisers and the micro-batch schedule.

Seeds (docs: ../shared/docs/training-design.md, "Honesty rules"): demonstrations start at seed 0, the evaluation
suite draws from 100000 upwards, in-training evaluation uses EVAL_SEED_BASE + k (k < eval_episodes), and RL
training seeds start at TRAIN_SEED_BASE + seed * TRAIN_SEED_STRIDE; the streams never meet.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..policies.base import LearnablePolicy
from ..rollout import collect, env_kind, num_envs_of, run_episodes
from .buffer import RolloutBuffer
from .distributed import DistInfo, all_reduce, all_reduce_grads

EVAL_SEED_BASE = 900_000
TRAIN_SEED_BASE = 1_000_000
TRAIN_SEED_STRIDE = 100_000_000  # seeds per training seed; at most 42 training seeds fit below 2**32


class SplitError(ValueError):
    """RL was asked to sample an OOD condition or held-out pools; training samples the training distribution."""


class ConfigError(ValueError):
    """An RL configuration that cannot run (sizes that do not divide, unknown fields)."""


@dataclass
class RLConfig:
    """What every RL trainer shares. Defaults follow the study where it states them (study.md section 6) and
    are sized for one CPU otherwise; the paper's run is `--num-envs 64 --image-size 224` on a GPU.

    env_id: a training ID (VLAPick-v0 / VLAOpen-v0); OOD IDs are refused.
    init: SFT checkpoint folder (`save_pretrained` layout) the policy starts from.
    num_envs: parallel envs per rank (make_vec worker processes on CPU, ManiSkill's batched env on CUDA).
    episodes_per_iteration: episodes per rank per iteration (a multiple of num_envs; None: num_envs).
    iterations: total iterations (a resumed run continues up to this count).
    image_size: square camera resolution in pixels (the study: 224).
    max_episode_steps: episode length (the study: 80, no early termination).
    reward_mode: "staged" (the study's potential-based reward) or ManiSkill's "dense"/"normalized_dense"/"sparse".
    temperature: sampling temperature of act and evaluate (RL4VLA trains at 1.0).
    lr_policy, lr_value: Adam learning rates of the policy (LoRA / backbone) and the value head (study: 1e-4,
        3e-3).
    micro_batch_size, grad_accum_steps: samples per forward/backward and micro-batches per optimizer step (the
        study: 8 x 20).
    max_grad_norm: global gradient-norm clip (study: 10).
    eval_every, eval_episodes: greedy evaluation on the training distribution every N iterations, on held-aside
        seeds EVAL_SEED_BASE..; 0 disables. eval_at_start: also evaluate the starting policy (logged as
        iteration 0).
    checkpoint_every, keep_checkpoints: checkpoint period (iterations) and how many to keep.
    vectorization: "auto" (batched on CUDA; worker processes for num_envs > 1 on CPU; an in-process env for
        num_envs = 1), "batched", "processes" or "single".
    device: "auto" (CUDA when present), "cpu" or "cuda".
    env_kwargs: extra task keyword arguments (robot_uids, pools, ...); held-out pools are refused.
    """

    env_id: str = "VLAPick-v0"
    out: str = "runs/rl"
    init: str | None = None
    num_envs: int = 2
    episodes_per_iteration: int | None = None
    iterations: int = 100
    seed: int = 0
    image_size: int = 128
    max_episode_steps: int = 80
    reward_mode: str = "staged"
    temperature: float = 1.0
    lr_policy: float = 1e-4
    lr_value: float = 3e-3
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    micro_batch_size: int = 8
    grad_accum_steps: int = 20
    max_grad_norm: float = 10.0
    eval_every: int = 10
    eval_episodes: int = 16
    eval_at_start: bool = True
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    vectorization: str = "auto"
    device: str = "auto"
    torch_threads: int = 0
    progress: bool = True
    tensorboard: bool = True
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    algo: str = "rl"
    # Settings a resumed run may change (the rest must match the run folder's config.json).
    RESUMABLE = ("iterations", "out", "eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints",
                 "progress", "tensorboard", "init", "torch_threads")

    def episodes(self) -> int:
        return self.episodes_per_iteration or self.num_envs

    def check(self) -> None:
        """Raise ConfigError for sizes that cannot run."""
        if self.num_envs < 1 or self.iterations < 1 or self.micro_batch_size < 1 or self.grad_accum_steps < 1:
            raise ConfigError("num_envs, iterations, micro_batch_size and grad_accum_steps must be >= 1")
        if self.episodes() % self.num_envs:
            raise ConfigError(f"episodes_per_iteration ({self.episodes()}) must be a multiple of num_envs "
                              f"({self.num_envs}): every collect plays one episode per env")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.vectorization not in ("auto", "batched", "processes", "single"):
            raise ConfigError(f"vectorization must be auto, batched, processes or single, not "
                              f"{self.vectorization!r}")
        if self.vectorization == "single" and self.num_envs != 1:
            raise ConfigError("vectorization='single' runs one in-process env: set num_envs=1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["env_kwargs"] = {k: (v if isinstance(v, (int, float, str, bool, type(None), list, dict)) else repr(v))
                           for k, v in d["env_kwargs"].items()}
        return d


def apply_overrides(cfg: RLConfig, items: Sequence[str]) -> RLConfig:
    """Apply "name=value" strings to a config (the CLI's --set), converting each value to the field's type.
    Raises ConfigError naming an unknown field or a value that does not convert."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set takes name=value, got {item!r}")
        name, raw = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in fields or name == "env_kwargs":
            raise ConfigError(f"{type(cfg).__name__} has no setting {name!r}; settings: "
                              f"{', '.join(sorted(n for n in fields if n != 'env_kwargs'))}")
        current = getattr(cfg, name)
        try:
            if isinstance(current, bool):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("1", "true", "yes")
            elif isinstance(current, int):
                value = int(raw)
            elif isinstance(current, float):
                value = float(raw)
            elif current is None and raw.lower() != "none":
                value = int(raw) if raw.lstrip("-").isdigit() else raw
            elif current is None:
                value = None
            else:
                value = raw
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a {type(current).__name__}") from None
        changes[name] = value
    return dataclasses.replace(cfg, **changes)


# ------------------------------------------------------------------ the training split
def check_training_env(env_id: str, env_kwargs: dict | None = None) -> None:
    """Refuse an OOD condition (an ID with perturbation wrappers) and pools that reach into held-out factors.
    Raises SplitError naming the problem and the training ID to use instead."""
    from ..registry import declaration

    decl = declaration(env_id)
    if decl.wrappers:
        raise SplitError(f"{env_id} is an OOD evaluation condition ({decl.display_name}); RL fine-tuning samples "
                         f"the training distribution only: use {decl.task}-v0 (evaluate on {env_id} afterwards)")
    pools = (env_kwargs or {}).get("pools")
    if pools is not None and pools.held_out():
        raise SplitError(f"refusing to train on held-out pools ({'; '.join(pools.held_out())}); RL samples the "
                         f"training pools only")


def check_env_instance(env) -> None:
    """Refuse an already-built env that carries an OOD perturbation wrapper or held-out pools (SplitError)."""
    import gymnasium as gym

    from ..registry import DECLARATIONS

    if isinstance(env, gym.vector.VectorEnv):
        return  # worker processes: built by make_training_env from a checked ID
    perturbations = {name for d in DECLARATIONS for name, _ in d.wrappers}
    e = env
    while isinstance(e, gym.Wrapper):
        if type(e).__name__ in perturbations:
            raise SplitError(f"this env carries the OOD perturbation {type(e).__name__}; RL samples the training "
                             f"distribution only")
        e = e.env
    task = env.unwrapped
    if hasattr(task, "pools") and task.pools.held_out(task.catalog):
        raise SplitError(f"refusing to train on held-out pools: {task.pools.held_out(task.catalog)}")


# ------------------------------------------------------------------ envs, devices, policies
def pick_device(cfg: RLConfig, info: DistInfo) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is visible; use --device cpu")
    return torch.device("cuda", info.local_rank % torch.cuda.device_count())


def make_training_env(cfg: RLConfig, device: torch.device):
    """The env one rank collects from: ManiSkill's batched env on CUDA (`gym.make(ID, num_envs=N)`), Gymnasium's
    spawned worker processes on CPU (`gym.make_vec(ID, num_envs=N)`), or one in-process env for num_envs=1."""
    from ..registry import make_env, make_vector_env

    check_training_env(cfg.env_id, cfg.env_kwargs)
    mode = cfg.vectorization
    if mode == "auto":
        mode = "batched" if device.type == "cuda" else ("processes" if cfg.num_envs > 1 else "single")
    kwargs = dict(camera_width=cfg.image_size, camera_height=cfg.image_size,
                  max_episode_steps=cfg.max_episode_steps, reward_mode=cfg.reward_mode, **cfg.env_kwargs)
    if mode == "processes":
        env = make_vector_env(cfg.env_id, cfg.num_envs, **kwargs)
    else:
        env = make_env(cfg.env_id, num_envs=cfg.num_envs, **kwargs)
        task = env.unwrapped
        if task.pools.held_out(task.catalog):  # pools the task kwargs built: checked where they live
            env.close()
            raise SplitError(f"refusing to train on held-out pools: {task.pools.held_out(task.catalog)}")
    return env


def load_initial_policy(path: str) -> LearnablePolicy:
    """An SFT checkpoint folder through the policies' factory (`vla_ood_envs.policies.load_policy`), or the tiny
    VLA's `from_pretrained` where the factory is absent. Raises FileNotFoundError for a missing folder."""
    import json
    from pathlib import Path

    if path is None:
        raise ConfigError("RL fine-tuning starts from an SFT checkpoint: pass --init CKPT (a save_pretrained folder)")
    if not Path(path).exists():
        raise FileNotFoundError(f"--init {path}: no such checkpoint folder (train one with `vla-ood sft`)")
    try:
        from ..policies import load_policy  # type: ignore[attr-defined]
    except ImportError:
        load_policy = None
    if load_policy is not None:
        return load_policy(path)
    # Without the factory: the checkpoint's config.json names its type.
    kind = json.loads((Path(path) / "config.json").read_text()).get("policy_type") \
        if (Path(path) / "config.json").exists() else None
    if kind == "openvla_adapter":
        from ..policies.openvla import OpenVLAAdapter

        return OpenVLAAdapter.from_pretrained(path)
    from ..policies.tiny_vla import TinyVLA  # type: ignore[import-not-found]

    return TinyVLA.from_pretrained(path)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------ seeds
def train_seeds(cfg: RLConfig, iteration: int, info: DistInfo, group_size: int = 1) -> tuple[list[int], list[int]]:
    """(seeds, group ids) of one rank's episodes of one iteration: episodes() // group_size distinct seeds, each
    repeated group_size times in a row (equal seeds give equal initial states). A pure function of (seed,
    iteration, rank), so a resumed run plays the same episodes."""
    n = cfg.episodes()
    if n % group_size:
        raise ConfigError(f"episodes per iteration ({n}) must be a multiple of the group size ({group_size})")
    distinct = n // group_size
    offset = (iteration * info.world_size + info.rank) * distinct
    if offset + distinct > TRAIN_SEED_STRIDE:
        raise ConfigError("this run has used up its training seed stream; start another with a new --seed")
    base = TRAIN_SEED_BASE + cfg.seed * TRAIN_SEED_STRIDE + offset
    seeds = [base + k for k in range(distinct) for _ in range(group_size)]
    groups = [offset + k for k in range(distinct) for _ in range(group_size)]
    return seeds, groups


def eval_seeds(cfg: RLConfig, info: DistInfo) -> list[int]:
    """This rank's share of the fixed held-aside evaluation seeds."""
    return [EVAL_SEED_BASE + k for k in range(cfg.eval_episodes)][info.rank::info.world_size]


# ------------------------------------------------------------------ collection and statistics
@torch.no_grad()
def collect_iteration(env, policy: LearnablePolicy, buffer: RolloutBuffer, seeds: Sequence[int],
                      groups: Sequence[int], cfg: RLConfig, bootstrap: bool) -> dict[str, float]:
    """Fill the buffer with one episode per seed, `num_envs` at a time, through `rollout.collect` (sampling at
    the policy's temperature); with bootstrap=True also the value of every non-terminated episode's final
    observation. Returns {"env_steps", "collect_time_s"} for this rank."""
    policy.eval()
    t0 = time.perf_counter()
    n = num_envs_of(env)
    steps = 0
    for start in range(0, len(seeds), n):
        trajs = collect(env, policy, list(seeds[start:start + n]), max_steps=cfg.max_episode_steps,
                        record_final_obs=True)
        buffer.fill(start, trajs, groups[start:start + n])
        steps += sum(len(t) for t in trajs)
    if bootstrap:
        buffer.compute_bootstrap(policy, batch_size=max(cfg.micro_batch_size, 8))
    return {"env_steps": float(steps), "collect_time_s": time.perf_counter() - t0}


def episode_stats(buffer: RolloutBuffer, info: DistInfo) -> dict[str, float]:
    """Means over every rank's episodes: return, success (at the last step), grasp / hold ever, length."""
    stats = torch.stack([buffer.episode_returns.sum(), buffer.success.float().sum(), buffer.grasped.float().sum(),
                         buffer.held.float().sum(), buffer.lengths.float().sum(),
                         torch.tensor(float(buffer.E), device=buffer.device)]).double().cpu()
    total = all_reduce(stats, info)
    n = float(total[5])
    return {"return": float(total[0]) / n, "success": float(total[1]) / n, "grasp": float(total[2]) / n,
            "held": float(total[3]) / n, "episode_length": float(total[4]) / n, "episodes": n}


@torch.no_grad()
def greedy_evaluation(env, policy: LearnablePolicy, cfg: RLConfig, info: DistInfo) -> dict[str, float]:
    """Greedy episodes on the held-aside seeds (split over ranks): success at the last step, return, grasp."""
    policy.eval()
    seeds = eval_seeds(cfg, info)
    sums = torch.zeros(4, dtype=torch.float64)
    if seeds:
        trajs = run_episodes(env, policy, seeds, greedy=True, record_images=False,
                             max_steps=cfg.max_episode_steps)
        for t in trajs:
            g = t.flags.get("grasped_ever")
            sums += torch.tensor([t.success, t.episode_return, bool(g[-1]) if g is not None else False, 1.0],
                                 dtype=torch.float64)
    total = all_reduce(sums, info)
    n = max(float(total[3]), 1.0)
    return {"eval_success": float(total[0]) / n, "eval_return": float(total[1]) / n,
            "eval_grasp": float(total[2]) / n, "eval_episodes": float(total[3])}


def evaluate_start(run, env, policy: LearnablePolicy, cfg: RLConfig, info: DistInfo, start: int) -> None:
    """Log the starting policy's greedy evaluation as iteration 0 (fresh runs with evaluation on)."""
    if start == 0 and cfg.eval_every and cfg.eval_at_start:
        run.log({"iteration": 0, "env_steps": 0, **greedy_evaluation(env, policy, cfg, info)})


# ------------------------------------------------------------------ optimisation
def make_optimizer(policy: LearnablePolicy, lrs: dict[str, float], cfg: RLConfig) -> torch.optim.Optimizer:
    """Adam(W) with one parameter group per named group of `policy.parameter_groups()` listed in `lrs` (groups
    not listed, e.g. the value head for GRPO/DPO, are not optimised). Raises ConfigError for a missing group."""
    groups = policy.parameter_groups()
    param_groups = []
    for name, lr in lrs.items():
        if name not in groups:
            raise ConfigError(f"{type(policy).__name__}.parameter_groups() has no {name!r} group "
                              f"(it has {sorted(groups)})")
        params = [p for p in groups[name] if p.requires_grad]
        if params:
            param_groups.append({"params": params, "lr": lr, "name": name})
    return torch.optim.AdamW(param_groups, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def optimizer_step(optimizer: torch.optim.Optimizer, cfg: RLConfig, info: DistInfo, grad_op: str = "mean") -> float:
    """All-reduce the gradients over ranks, clip their global norm to cfg.max_grad_norm, step, zero. Returns the
    norm before clipping."""
    params = optimizer_params(optimizer)
    all_reduce_grads(params, info, op=grad_op)
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def micro_batch_schedule(index: torch.Tensor, cfg: RLConfig, info: DistInfo
                         ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Shuffle the (K, 2) (episode, step) indices and cut them into optimizer steps of `grad_accum_steps`
    micro-batches of `micro_batch_size` samples. Returns [[(index (B, 2), weight (B,)), ...], ...] where the
    weights of one optimizer step sum to 1 over its real samples (so summed weighted losses are means).

    Every rank gets the same number of micro-batches: shorter index lists are padded (with weight 0) to the
    longest rank's, so the gradient all-reduce never waits for a rank that has finished."""
    k = int(index.shape[0])
    k_max = int(all_reduce(torch.tensor([k], dtype=torch.float64), info, op="max")[0])
    perm = index[torch.randperm(k, device=index.device)] if k else index
    pad = k_max - k
    if pad:
        filler = torch.zeros(pad, 2, dtype=torch.int64, device=index.device)
        perm = torch.cat([perm, filler])
    real = torch.cat([torch.ones(k), torch.zeros(pad)]).to(index.device)
    per_step = cfg.micro_batch_size * cfg.grad_accum_steps
    steps = []
    for s in range(0, k_max, per_step):
        idx, w = perm[s:s + per_step], real[s:s + per_step]
        w = w / w.sum() if float(w.sum()) > 0 else w
        steps.append([(idx[m:m + cfg.micro_batch_size], w[m:m + cfg.micro_batch_size])
                      for m in range(0, len(idx), cfg.micro_batch_size)])
    return steps


def describe_env(env) -> str:
    return f"{env_kind(env)} x{num_envs_of(env)}"
