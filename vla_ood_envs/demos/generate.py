"""Generate demonstration datasets with the scripted expert (`vla-ood generate`).

Seeds are tried in order from `seed`; the dataset is the first `episodes` seeds whose expert rollout succeeds.
Every finished episode is written atomically as soon as it is done and failed seeds are logged, so an interrupted
run loses at most the episodes in flight, and re-running the same command resumes it. No episode file is ever
deleted, and the arguments, folder, settings and free space are checked before a worker starts. Workers hold one
env each: spawned processes on one machine (backend "processes"), or Ray actors (backend "ray") on a local Ray
started on 127.0.0.1 or on an existing cluster (`ray_address`; `out` must then be storage every node can write).
Training pools only: an env or pools that reach into held-out factors are refused.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import numbers
import os
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .store import INDEX, DatasetError, Episode, episode_path, read_episode, read_json, statistics, write_episode, \
    write_json_atomic
from ..errors import ConfigError, SplitError, WorkerError
from ..tasks.arguments import choice, positive_int

SETTINGS = "settings.json"
FAILED = "failed.jsonl"


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
    shrink: bool = False  # allow fewer episodes than the folder's finished dataset lists (no file is deleted)

    def settings(self) -> dict:
        d = asdict(self)
        for key in ("out", "episodes", "workers", "backend", "ray_address", "shrink"):  # may change when resuming
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


def _process_worker_init(cfg: GenerateConfig) -> None:
    """A pool process: Ctrl-C is the driver's to handle (it stops the workers), so the worker ignores SIGINT
    instead of printing its own KeyboardInterrupt traceback (it was started with SIGINT blocked, see
    _sigint_blocked, which covers the imports before this runs)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_init(cfg)


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT while worker processes are started: they inherit the blocked mask, so a Ctrl-C (sent to the
    whole process group) during their start-up never reaches them, while the driver gets it as soon as the block
    ends. multiprocessing starts its resource tracker the same way."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Runner:
    """Runs rollouts of seeds on the configured workers and yields (seed, ok, steps) as they finish.

    A worker process or Ray actor that dies raises WorkerError (the process pool is a ProcessPoolExecutor,
    which notices a dead worker; multiprocessing.Pool would replace it and wait forever for its lost task).
    """

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
        elif cfg.workers > 1:
            self.pool = ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn"),
                                            initializer=_process_worker_init, initargs=(cfg,))
        else:
            _worker_init(cfg)

    def map(self, seeds: list[int]):
        if self.ray_pool is not None:
            from ray.exceptions import RayActorError

            try:
                yield from self.ray_pool.map_unordered(lambda actor, seed: actor.rollout.remote(seed), seeds)
            except RayActorError as exc:
                raise WorkerError(f"a Ray worker died: {str(exc).splitlines()[0]}") from None
        elif self.pool is not None:
            with _sigint_blocked():  # submit() starts the worker processes
                futures = [self.pool.submit(_rollout, seed) for seed in seeds]
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BrokenProcessPool as exc:
                raise WorkerError(f"a worker process died ({exc})") from None
        else:
            yield from map(_rollout, seeds)

    def close(self) -> None:
        if self.pool is not None:
            # Stop the workers now rather than after their current episode (a finished episode file is complete
            # or absent: they are written to a temporary name and renamed). Python 3.14 has terminate_workers();
            # before it the processes are only reachable through the executor's _processes.
            processes = list((getattr(self.pool, "_processes", None) or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(10)
            self.pool = None
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


# The free-space check's estimate of an episode file before any exists: gzip level 1 keeps 0.2-0.3 of the raw
# frames at 224x224 (1.0-1.8 MB for 35-38 steps) and 0.4-0.5 at 32x32, measured on this project's datasets (the
# estimate takes the upper end); a rollout that stops 6 steps after its success is 30-45 steps long.
COMPRESSED_FRACTION = 0.5
TYPICAL_STEPS = 40


def _check_config(cfg: GenerateConfig) -> None:
    from ..tasks.arguments import CAMERA_MAX_SIDE

    positive_int("episodes", cfg.episodes)
    positive_int("workers", cfg.workers)
    positive_int("image_height", cfg.image_height, CAMERA_MAX_SIDE)
    positive_int("image_width", cfg.image_width, CAMERA_MAX_SIDE)
    for name in ("seed", "stop_after_success"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ConfigError(f"{name}={value!r}: {name} must be an integer >= 0")
    choice("backend", cfg.backend, ("processes", "ray"))


def _check_writable(folder: Path) -> None:
    """Create and delete a file in `folder`: permission bits do not stop root, a read-only mount does."""
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"0")
        probe.unlink()
    except OSError as exc:
        raise DatasetError(f"cannot write to {folder} ({exc.strerror or exc}); choose another --out folder or make "
                           f"this one writable") from None


def _episode_bytes(cfg: GenerateConfig, root: Path, done: set[int]) -> float:
    """Expected size of one more episode file: the mean of those already written, else an estimate."""
    sizes = [episode_path(root, s).stat().st_size for s in sorted(done)[:50]]
    if sizes:
        return float(np.mean(sizes))
    steps = TYPICAL_STEPS if cfg.stop_after_success else int(cfg.env_kwargs.get("max_episode_steps", 80))
    return steps * (cfg.image_height * cfg.image_width * 3 * COMPRESSED_FRACTION + 128) + 16_384


def _check_free_space(cfg: GenerateConfig, root: Path, done: set[int]) -> None:
    remaining = max(0, cfg.episodes - len(done))
    each = _episode_bytes(cfg, root, done)
    need, free = remaining * each, shutil.disk_usage(root).free
    if need > free:
        raise DatasetError(f"{root} has {free / 1e9:.2f} GB free, and {remaining} more episodes need about "
                           f"{need / 1e9:.2f} GB ({each / 1e6:.2f} MB each at {cfg.image_height}x{cfg.image_width}); "
                           f"free some space, choose another --out folder or ask for fewer --episodes")


def _listed_seeds(root: Path) -> list[int]:
    """The seeds of the finished dataset in `root` ([] if there is none or its index is unreadable: it is rewritten
    at the end of this run anyway)."""
    try:
        return [int(s) for s in read_json(root / INDEX, "dataset index")["seeds"]]
    except (DatasetError, KeyError, TypeError, ValueError):
        return []


def _prepare(cfg: GenerateConfig) -> tuple[Path, set[int], set[int]]:
    """Every check that can fail before a worker starts: arguments, split, folder writable, settings, the size of
    an existing dataset, free space. Returns the folder and the seeds already done and failed."""
    _check_config(cfg)
    _check_split_before_start(cfg)
    root = Path(cfg.out)
    try:
        (root / "episodes").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the dataset folder {root} ({exc.strerror or exc}); choose another --out "
                           f"folder") from None
    _check_writable(root)
    _check_writable(root / "episodes")
    settings_file = root / SETTINGS
    if settings_file.is_file():
        previous = read_json(settings_file, "generation settings",
                             "restore it, or delete it to resume with the settings you pass now")
        if previous != json.loads(json.dumps(cfg.settings())):
            raise DatasetError(f"{root} holds a dataset generated with other settings ({previous}); use another "
                               f"--out folder or the same settings to resume")
    done, failed = _done_and_failed(root)
    listed = _listed_seeds(root)
    if len(listed) > cfg.episodes and not cfg.shrink:
        raise DatasetError(
            f"{root} holds a finished dataset of {len(listed)} episodes and --episodes {cfg.episodes} asks for fewer; "
            f"nothing was changed. Ask for --episodes {len(listed)} or more to keep (or extend) it, or add --shrink "
            f"(shrink=True) to make the dataset its first {cfg.episodes} episodes (the other episode files stay in "
            f"{root / 'episodes'}, and a later run with more --episodes reuses them)")
    _check_free_space(cfg, root, done)
    if not settings_file.is_file():
        write_json_atomic(settings_file, cfg.settings())
    for tmp in (root / "episodes").glob("*.tmp"):
        tmp.unlink()  # a file the interrupted run was writing
    return root, done, failed


def _done_and_failed(root: Path) -> tuple[set[int], set[int]]:
    done = {int(p.stem.split("_")[1]) for p in (root / "episodes").glob("episode_*.h5")}
    failed = set()
    if (root / FAILED).is_file():
        for n, line in enumerate((root / FAILED).read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                failed.add(int(json.loads(line)["seed"]))
            except (ValueError, KeyError, TypeError):
                # A line cut short by a crash: the seed is simply tried again.
                continue
    return done, failed


def _seeds_to_try(cfg: GenerateConfig, done: set[int], failed: set[int]) -> list[int]:
    """Untried seeds that may still be among the first `cfg.episodes` successes from `cfg.seed`, in order, plus
    untried seeds after them up to one per worker. Empty when the first `cfg.episodes` successes are known.

    Seeds below the last success of the dataset are always all tried, so an interrupted run of several workers
    (which finish out of order) resumes to the same dataset as an uninterrupted one-worker run.
    """
    todo, have, seed = [], 0, cfg.seed
    while have + len(todo) < cfg.episodes:
        if seed in done:
            have += 1
        elif seed not in failed:
            todo.append(seed)
        seed += 1
    while todo and len(todo) < cfg.workers:
        if seed not in done and seed not in failed:
            todo.append(seed)
        seed += 1
    return todo


def dataset_seeds(cfg: GenerateConfig, done: set[int]) -> list[int]:
    return sorted(s for s in done if s >= cfg.seed)[: cfg.episodes]


def generate(cfg: GenerateConfig, progress: bool = True,
             on_result: Callable[[int, bool], None] | None = None) -> dict:
    """Run (or resume) a generation; returns the dataset index written to `<out>/dataset.json`.

    Everything that can be checked is checked before a worker starts (ConfigError, SplitError, DatasetError:
    folder not writable, other settings, too little free space, fewer episodes than a finished dataset holds
    without `shrink`). Episode files are never deleted: those beyond the dataset's first `episodes` successes
    (workers run ahead) stay in `episodes/`, unlisted, for a later longer run. KeyboardInterrupt propagates after
    the workers are stopped; a dead worker raises WorkerError. Either way every finished episode is kept, and
    re-running the same configuration resumes.
    """
    root, done, failed = _prepare(cfg)
    bar = None
    t0 = time.perf_counter()
    fresh = {"ok": 0, "fail": 0}

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
            bar.n = len(dataset_seeds(cfg, done))
            rate = fresh["ok"] / max(1, fresh["ok"] + fresh["fail"])
            bar.set_postfix(ok=fresh["ok"], failed=fresh["fail"], success_rate=f"{rate:.0%}")
            bar.refresh()
        if on_result is not None:
            on_result(seed, ok)

    runner = None
    todo = _seeds_to_try(cfg, done, failed)
    if todo:
        (root / INDEX).unlink(missing_ok=True)  # the folder is an unfinished run until the index is rewritten
    try:
        if todo and progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.episodes, initial=len(dataset_seeds(cfg, done)), desc=f"demos {cfg.env_id}",
                       unit="ep")
        if todo:
            runner = _Runner(cfg)
        while todo:
            for seed, ok, _ in runner.map(todo):
                record(seed, ok)
            todo = _seeds_to_try(cfg, done, failed)
    finally:
        if runner is not None:
            runner.close()
        if bar is not None:
            bar.close()

    seeds = dataset_seeds(cfg, done)
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
