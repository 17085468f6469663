"""Generate demonstration datasets with the scripted expert (`vla-ood generate`).

Seeds are tried in order from `seed`; the dataset is the first `episodes` seeds whose expert rollout succeeds.
Every finished episode is written atomically as soon as it is done and failed seeds are logged, so an interrupted
run loses at most the episodes in flight, and re-running the same command resumes it. Workers hold one env each:
spawned processes on one machine (backend "processes"), or Ray actors (backend "ray") on a local Ray started on
127.0.0.1 or on an existing cluster (`ray_address`; `out` must then be storage every node can write).
Training pools only: an env or pools that reach into held-out factors are refused.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .store import INDEX, DatasetError, Episode, episode_path, statistics, write_episode, write_json_atomic, \
    read_episode

SETTINGS = "settings.json"
FAILED = "failed.jsonl"


class SplitError(ValueError):
    """Demonstrations were asked for from held-out (test) pools."""


@dataclass
class GenerateConfig:
    out: str
    env_id: str = "VLAPick-v0"
    episodes: int = 100
    seed: int = 0
    image_height: int = 224
    image_width: int = 224
    workers: int = 1
    stop_after_success: int = 6  # end a rollout after this many consecutive success steps (0: full episode)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    backend: str = "processes"  # "processes" (one machine) or "ray"
    ray_address: str | None = None  # an existing Ray cluster ("auto", "ray://host:port"); None starts a local Ray

    def settings(self) -> dict:
        d = asdict(self)
        for key in ("out", "episodes", "workers", "backend", "ray_address"):  # may change when resuming
            d.pop(key)
        return d


# ---------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _check_split(env) -> None:
    task = env.unwrapped
    problems = task.pools.held_out(task.catalog)
    if problems:
        raise SplitError(f"refusing to generate demonstrations from held-out pools ({'; '.join(problems)}); "
                         f"demonstrations come from the training distribution only (e.g. {task.TASK_NAME}-v0)")


def _worker_init(cfg: GenerateConfig) -> None:
    import gymnasium as gym

    import vla_ood_envs  # noqa: F401
    from ..policies.base import ScriptedPolicy
    from ..runtime.device import env_worker_defaults

    env_worker_defaults()
    env = gym.make(cfg.env_id, camera_height=cfg.image_height, camera_width=cfg.image_width, include_proprio=True,
                   **cfg.env_kwargs)
    _check_split(env)
    _WORKER.update(env=env, policy=ScriptedPolicy(), cfg=cfg)


def _rollout(seed: int) -> tuple[int, bool, int]:
    from ..rollout import collect

    env, policy, cfg = _WORKER["env"], _WORKER["policy"], _WORKER["cfg"]
    # Rebuild the scene for every episode (about 0.3 s): PhysX carries float-level state from one episode to the
    # next in the same scene, so without it a seed's trajectory would depend on which seeds this worker ran before,
    # and a resumed or differently parallelised run would not reproduce the dataset bit for bit.
    traj = collect(env, policy, [seed], options={"reconfigure": True}, stop_after_success=cfg.stop_after_success)[0]
    if traj.success:
        write_episode(Path(cfg.out), Episode(
            seed=seed, env_id=cfg.env_id, instruction=traj.instruction, manifest=traj.manifest,
            images=traj.images, proprio=traj.proprio, actions=traj.actions, rewards=traj.rewards,
            success=traj.flags["success"],
        ))
    return seed, traj.success, len(traj)


class _RayWorker:
    """A Ray actor holding one env (the same worker code as the process pool)."""

    def __init__(self, cfg: GenerateConfig):
        _worker_init(cfg)

    def rollout(self, seed: int) -> tuple[int, bool, int]:
        return _rollout(seed)


class _Runner:
    """Runs rollouts of seeds on the configured workers and yields (seed, ok, steps) as they finish."""

    def __init__(self, cfg: GenerateConfig):
        self.cfg, self.pool, self.ray_pool, self.started_ray = cfg, None, None, False
        if cfg.backend == "ray":
            import ray
            from ray.util import ActorPool

            if not ray.is_initialized():
                if cfg.ray_address:
                    ray.init(address=cfg.ray_address, log_to_driver=False)
                else:
                    # A single-machine Ray listens on loopback only, with no dashboard.
                    ray.init(num_cpus=cfg.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                             log_to_driver=False)
                self.started_ray = True
            worker = ray.remote(num_cpus=1)(_RayWorker)
            self.ray_pool = ActorPool([worker.remote(cfg) for _ in range(cfg.workers)])
        elif cfg.backend != "processes":
            raise ValueError(f"backend must be 'processes' or 'ray', got {cfg.backend!r}")
        elif cfg.workers > 1:
            self.pool = mp.get_context("spawn").Pool(cfg.workers, initializer=_worker_init, initargs=(cfg,))
        else:
            _worker_init(cfg)

    def map(self, seeds: list[int]):
        if self.ray_pool is not None:
            return self.ray_pool.map_unordered(lambda actor, seed: actor.rollout.remote(seed), seeds)
        if self.pool is not None:
            return self.pool.imap_unordered(_rollout, seeds)
        return map(_rollout, seeds)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
        if self.ray_pool is not None and self.started_ray:
            import ray

            ray.shutdown()
        if "env" in _WORKER:
            _WORKER.pop("env").close()


# ---------------------------------------------------------------- driver side
def _check_split_before_start(cfg: GenerateConfig) -> None:
    """Refuse held-out pools before any worker starts (a worker that fails while starting would be restarted)."""
    from ..registry import declaration

    decl = declaration(cfg.env_id)
    if decl.wrappers:
        raise SplitError(f"{cfg.env_id} is an OOD condition ({decl.display_name}); demonstrations come from the "
                         f"training distribution only: use {decl.task}-v0")
    pools = cfg.env_kwargs.get("pools")
    if pools is not None and pools.held_out():
        raise SplitError(f"refusing to generate demonstrations from held-out pools: {pools.held_out()}")


def _prepare(cfg: GenerateConfig) -> Path:
    _check_split_before_start(cfg)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    settings_file = root / SETTINGS
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text())
        if previous != json.loads(json.dumps(cfg.settings())):
            raise DatasetError(f"{root} holds a dataset generated with other settings ({previous}); use another "
                               f"--out folder or the same settings to resume")
    else:
        write_json_atomic(settings_file, cfg.settings())
    (root / INDEX).unlink(missing_ok=True)  # the index is rewritten when the dataset is complete
    for tmp in (root / "episodes").glob("*.tmp") if (root / "episodes").is_dir() else []:
        tmp.unlink()  # a file the interrupted run was writing
    return root


def _done_and_failed(root: Path) -> tuple[set[int], set[int]]:
    done = {int(p.stem.split("_")[1]) for p in (root / "episodes").glob("episode_*.h5")} \
        if (root / "episodes").is_dir() else set()
    failed = set()
    if (root / FAILED).is_file():
        for line in (root / FAILED).read_text().splitlines():
            if line.strip():
                failed.add(int(json.loads(line)["seed"]))
    return done, failed


def generate(cfg: GenerateConfig, progress: bool = True,
             on_result: Callable[[int, bool], None] | None = None) -> dict:
    """Run (or resume) a generation; returns the dataset index written to `<out>/dataset.json`."""
    if cfg.episodes < 1:
        raise ValueError("episodes must be >= 1")
    root = _prepare(cfg)
    done, failed = _done_and_failed(root)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.episodes, desc=f"demos {cfg.env_id}", unit="ep")
    t0 = time.perf_counter()
    fresh = {"ok": 0, "fail": 0}

    def count_ok() -> int:
        return len([s for s in done if s >= cfg.seed])

    def record(seed: int, ok: bool) -> None:
        if ok:
            done.add(seed)
        else:
            failed.add(seed)
            with open(root / FAILED, "a") as f:
                f.write(json.dumps({"seed": seed}) + "\n")
                f.flush()
        fresh["ok" if ok else "fail"] += 1
        if bar is not None:
            bar.n = min(count_ok(), cfg.episodes)
            rate = fresh["ok"] / max(1, fresh["ok"] + fresh["fail"])
            bar.set_postfix(ok=fresh["ok"], failed=fresh["fail"], success_rate=f"{rate:.0%}")
            bar.refresh()
        if on_result is not None:
            on_result(seed, ok)

    runner = None
    try:
        runner = _Runner(cfg)
        next_seed = cfg.seed
        while count_ok() < cfg.episodes:
            needed = cfg.episodes - count_ok()
            batch = []
            while len(batch) < max(needed, cfg.workers):
                if next_seed not in done and next_seed not in failed:
                    batch.append(next_seed)
                next_seed += 1
            for seed, ok, _ in runner.map(batch):
                record(seed, ok)
    finally:
        if runner is not None:
            runner.close()
        if bar is not None:
            bar.close()

    seeds = sorted(s for s in done if s >= cfg.seed)[: cfg.episodes]
    for extra in sorted(done - set(seeds)):
        episode_path(root, extra).unlink(missing_ok=True)  # beyond the first N successes: not part of the dataset
    episodes = [read_episode(episode_path(root, s)) for s in seeds]
    attempted = [s for s in range(cfg.seed, seeds[-1] + 1)]
    index = {
        "format_version": 1,
        "env_id": cfg.env_id,
        "settings": cfg.settings(),
        "seeds": seeds,
        "attempted_seeds": len(attempted),
        "expert_success_rate": len(seeds) / len(attempted),
        "num_transitions": int(sum(len(e) for e in episodes)),
        "statistics": {cfg.env_id: statistics([e.actions for e in episodes], [e.proprio for e in episodes])},
        "generation_seconds_this_run": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(root / INDEX, index)
    return index
