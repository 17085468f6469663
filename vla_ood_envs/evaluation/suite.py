"""The evaluation suite: a policy on every condition of a task family x seeds x episodes, resumable.

    results = run_suite("scripted", task="VLAPick", episodes=16, seeds=3, out_dir="out/eval", workers=2)

Every condition plays the same episode seeds (`conditions.episode_seed`), so every policy evaluated sees the same
factor records (recorded per episode in the results file; the report checks them before pairing two policies).
Each episode starts from a freshly built scene (`reconfigure`, about 0.3 s), because PhysX otherwise carries
float-level state from one episode to the next: with it an episode's result does not depend on which worker
played it or what that worker played before, so any number of workers, an interrupted-and-resumed run and a run
in one go give the same results file. Episodes run to the task's episode length (80 steps; no early stop) and
success is read at the last step, the study's rule.

Workers each build their envs in-process (so the privileged scripted expert works too) and run the one rollout
loop (`vla_ood_envs.rollout`): spawned processes on one machine, or Ray actors on a local Ray bound to 127.0.0.1
or an existing cluster (`ray_address`); the driver alone writes the results, so with Ray only the driver needs the
output folder. Learnable policies act greedily unless a temperature is given; sampling is seeded per episode
(torch's generator gets the episode seed), so sampled evaluations are reproducible as well.

Layout of `out_dir`: one folder per policy label, holding `results.jsonl` (one line per episode: condition, env
ID, seed, factor record, success at the last step, ever succeeded, grasp flags, return, steps, failure class,
policy name and checkpoint sha256), `run.json` (the settings and every session's wall-clock) and `strips/` (frames
of the first `strips` episodes of seed 0 in every condition). `evaluation.report` reads all of them.
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing as mp
import os
import random
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .conditions import BASE_SEED, Condition, condition_order, episode_seed, select_conditions
from .failures import classify, outcome_of
from .policy_spec import PolicySpec
from .results import RESULTS, RUN, ResultsWriter, episode_key, read_records, rewrite_sorted, write_json_atomic

FORMAT_VERSION = 1
DEFAULT_CAMERA = 224
STRIP_FRAMES = 6  # frames in a strip: evenly spaced steps plus the observation after the last action


class EvaluationError(RuntimeError):
    """An evaluation cannot start or continue (settings that differ from the folder's run, too many abandoned
    episodes)."""


@dataclass
class SuiteConfig:
    """Settings of one policy's evaluation run. `identity()` holds the ones that decide episode outcomes: a
    folder holding a run with another identity is refused; episodes, seeds and conditions may grow between
    sessions (a rerun plays only what is missing)."""

    policy: PolicySpec
    task: str = "VLAPick"
    conditions: list[Condition] = field(default_factory=list)
    episodes: int = 16
    seeds: int = 3
    base_seed: int = BASE_SEED
    camera_size: int = DEFAULT_CAMERA
    max_steps: int | None = None  # None: the task's episode length (80), the study's rule
    strips: int = 2
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    backend: str = "processes"
    ray_address: str | None = None
    max_abandoned: int = 10

    def identity(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "policy": self.policy.source,
            "checkpoint_sha256": self.policy.checkpoint_sha256(),
            "temperature": self.policy.temperature,
            "camera_size": self.camera_size,
            "max_steps": self.max_steps,
            "base_seed": self.base_seed,
            "env_kwargs": self.env_kwargs,
        }


@dataclass(frozen=True)
class Job:
    condition: Condition
    seed_index: int
    episode_index: int
    seed: int
    strip: bool

    @property
    def key(self) -> str:
        return episode_key(self.condition.key, self.seed_index, self.episode_index)


def plan(cfg: SuiteConfig) -> list[Job]:
    """Every episode of the run, condition by condition (a worker then builds each condition's env once)."""
    if cfg.episodes < 1 or cfg.seeds < 1:
        raise ValueError(f"episodes and seeds must be >= 1, got episodes={cfg.episodes}, seeds={cfg.seeds}")
    return [Job(c, k, j, episode_seed(k, j, cfg.base_seed), k == 0 and j < cfg.strips)
            for c in cfg.conditions for k in range(cfg.seeds) for j in range(cfg.episodes)]


# ---------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


@dataclass(frozen=True)
class _WorkerConfig:
    policy: PolicySpec
    label: str
    sha256: str | None
    camera_size: int
    max_steps: int | None
    env_kwargs: dict
    spawned: bool


def _worker_init(wcfg: _WorkerConfig) -> None:
    import vla_ood_envs  # noqa: F401  (registers the IDs in a spawned process)
    from ..runtime.device import env_worker_defaults

    if wcfg.spawned:
        env_worker_defaults()
    _WORKER.update(cfg=wcfg, policy=wcfg.policy.load(), env=None, env_key=None)


def _env_for(condition: Condition):
    """The worker's env of `condition` (one kept at a time: jobs arrive condition by condition)."""
    import gymnasium as gym

    if _WORKER["env_key"] != condition.key:
        if _WORKER["env"] is not None:
            _WORKER["env"].close()
            _WORKER["env"] = None
        wcfg, policy = _WORKER["cfg"], _WORKER["policy"]
        _WORKER["env"] = gym.make(condition.env_id, obs_mode="rgb", camera_width=wcfg.camera_size,
                                  camera_height=wcfg.camera_size,
                                  include_proprio=bool(getattr(policy, "needs_proprio", False)),
                                  **condition.make_kwargs(), **wcfg.env_kwargs)
        _WORKER["env_key"] = condition.key
    return _WORKER["env"]


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _run_job(job: Job) -> dict:
    """Play one episode; returns {"record": ..., "frames": (F, H, W, 3) uint8 or None, "steps": [...]}. An
    exception while playing is reported as an abandoned episode; one while building the env ends the run."""
    from ..rollout import collect

    wcfg, policy = _WORKER["cfg"], _WORKER["policy"]
    env = _env_for(job.condition)
    base = {
        "key": job.key, "condition": job.condition.key, "env_id": job.condition.env_id, "axis": job.condition.axis,
        "display_name": job.condition.display_name, "severity": job.condition.severity,
        "sweep": job.condition.sweep, "seed_index": job.seed_index, "episode_index": job.episode_index,
        "seed": job.seed, "policy": wcfg.label, "checkpoint_sha256": wcfg.sha256,
    }
    try:
        _seed_everything(job.seed)
        traj = collect(env, policy, [job.seed], options={"reconfigure": True}, max_steps=wcfg.max_steps,
                       greedy=wcfg.policy.greedy, record_images=job.strip, record_final_obs=job.strip)[0]
    except Exception as exc:  # noqa: BLE001 - reported as an abandoned episode, never dropped
        # The env may be left mid-episode; the next job rebuilds it.
        _WORKER["env_key"] = None
        return {"record": {**base, "policy_name": _policy_name(policy), "status": "abandoned",
                           "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)},
                "frames": None, "steps": None}
    # The name is read after the episode: a scripted policy names itself after the task at its first reset.
    return {"record": {**base, "policy_name": _policy_name(policy), "status": "done", **episode_summary(traj)},
            **_strip(traj, job.strip)}


def _policy_name(policy: Any) -> str:
    return str(getattr(policy, "name", type(policy).__name__))


def episode_summary(traj: Any) -> dict:
    """The per-episode fields of a results line, from a `rollout.Trajectory`."""
    outcome = outcome_of(traj)
    success = traj.flags.get("success")
    first = int(np.argmax(success)) if success is not None and success.any() else None
    held = traj.flags.get("held_ever")
    return {
        "success": outcome.success,
        "ever_succeeded": outcome.ever_succeeded,
        "first_success_step": first,
        "grasped_ever": outcome.grasped_ever,
        "held_ever": bool(held[-1]) if held is not None and len(held) else False,
        "grasped_at_end": outcome.grasped_at_end,
        "return": round(float(traj.episode_return), 6),
        "steps": len(traj),
        "terminated": bool(traj.terminated),
        "truncated": bool(traj.truncated),
        "failure": classify(outcome),
        "outcome": outcome.to_dict(),
        "instruction": traj.instruction,
        "manifest": _jsonable(traj.manifest),
    }


def _strip(traj: Any, wanted: bool) -> dict:
    if not wanted or traj.images is None:
        return {"frames": None, "steps": None}
    t = len(traj)
    steps = sorted(set(np.linspace(0, t - 1, STRIP_FRAMES - 1).round().astype(int).tolist()))
    frames = [traj.images[s] for s in steps]
    labels = [f"t={s}" for s in steps]
    if traj.final_image is not None:
        frames.append(traj.final_image)
        labels.append(f"t={t} end")
    return {"frames": np.stack(frames), "steps": labels}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class _RayWorker:
    """A Ray actor holding one policy and one env at a time (the same worker code as the process pool)."""

    def __init__(self, wcfg: _WorkerConfig):
        _worker_init(wcfg)

    def run(self, job: Job) -> dict:
        return _run_job(job)


class _Runner:
    """Runs jobs on the configured workers and yields their results as they finish."""

    def __init__(self, cfg: SuiteConfig, wcfg: _WorkerConfig):
        self.pool, self.ray_pool, self.started_ray, self.local = None, None, False, False
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
            actor = ray.remote(num_cpus=1)(_RayWorker)
            self.ray_pool = ActorPool([actor.remote(wcfg) for _ in range(cfg.workers)])
        elif cfg.backend != "processes":
            raise ValueError(f"backend must be 'processes' or 'ray', got {cfg.backend!r}")
        elif cfg.workers > 1:
            self.pool = mp.get_context("spawn").Pool(cfg.workers, initializer=_worker_init, initargs=(wcfg,))
        else:
            _worker_init(wcfg)
            self.local = True

    def map(self, jobs: list[Job]):
        if self.ray_pool is not None:
            return self.ray_pool.map_unordered(lambda actor, job: actor.run.remote(job), jobs)
        if self.pool is not None:
            return self.pool.imap_unordered(_run_job, jobs, chunksize=1)
        return map(_run_job, jobs)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        if self.ray_pool is not None and self.started_ray:
            import ray

            ray.shutdown()
        if self.local and _WORKER.get("env") is not None:
            _WORKER.pop("env").close()
            _WORKER.clear()


# ---------------------------------------------------------------- driver side
def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _load_run(run_dir: Path, cfg: SuiteConfig) -> dict:
    import json

    path = run_dir / RUN
    identity = cfg.identity()
    if path.is_file():
        run = json.loads(path.read_text())
        if run.get("identity") != json.loads(json.dumps(identity)):
            raise EvaluationError(
                f"{run_dir} holds an evaluation with other settings ({run.get('identity')}); these settings are "
                f"{identity}. Use another --out folder or --label, or the same settings to resume.")
        return run
    return {"identity": identity, "sessions": []}


def _sort_key(order: dict[str, int]) -> Callable[[dict], tuple]:
    return lambda r: (order.get(r["condition"], len(order)), r["condition"], r["seed_index"], r["episode_index"])


def run_suite(policy: str | PolicySpec, task: str = "VLAPick", episodes: int = 16, seeds: int = 3,
              out_dir: str | Path = "out/eval", workers: int = 1, *, conditions: Sequence[str] | None = None,
              sweep: Sequence[float] | None = None, camera_size: int | None = None,
              temperature: float | None = None, max_steps: int | None = None, backend: str = "processes",
              ray_address: str | None = None, base_seed: int = BASE_SEED, strips: int = 2,
              env_kwargs: dict | None = None, label: str | None = None, device: str | None = None,
              max_abandoned: int = 10, progress: bool = True,
              on_result: Callable[[dict], None] | None = None) -> Path:
    """Evaluate `policy` ("scripted", "random", a checkpoint path, or a PolicySpec) on the conditions of `task`
    (all declared ones, or `conditions` by name; `sweep`: also the image conditions at these alphas), `seeds` x
    `episodes` each, with `workers` processes (backend "processes") or Ray actors (backend "ray"). Resumes the run
    in `out_dir/<label>` if there is one. Returns the path of its results.jsonl.

    camera_size: the square camera side; None takes the policy's declared `image_size`, else 224.
    temperature: None evaluates learnable policies greedily; a float samples (the study used 0.6).
    max_steps: None plays the task's full episode (the study's rule); fewer only for smoke tests.
    on_result: called with each finished record (progress hooks, tests).

    Raises PolicySpecError for an unknown policy, ValueError for unknown conditions or bad counts,
    EvaluationError for a folder holding other settings or more than `max_abandoned` abandoned episodes.
    """
    spec = policy if isinstance(policy, PolicySpec) else PolicySpec(policy, temperature, device, label)
    spec.check()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cfg = SuiteConfig(policy=spec, task=task, conditions=select_conditions(task, conditions, sweep),
                      episodes=episodes, seeds=seeds, base_seed=base_seed,
                      camera_size=int(camera_size or spec.preferred_image_size() or DEFAULT_CAMERA),
                      max_steps=max_steps, strips=strips, env_kwargs=dict(env_kwargs or {}), workers=workers,
                      backend=backend, ray_address=ray_address, max_abandoned=max_abandoned)
    if cfg.camera_size < 16:
        raise ValueError(f"camera_size must be >= 16 pixels, got {cfg.camera_size}")
    label = spec.display_label()
    run_dir = Path(out_dir) / label
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _load_run(run_dir, cfg)
    results_path = run_dir / RESULTS
    jobs = plan(cfg)
    done = {r["key"] for r in read_records(results_path) if r.get("status") == "done"}
    pending = [j for j in jobs if j.key not in done]
    order = condition_order(cfg.conditions + [Condition(**c) for c in run.get("conditions", [])
                                              if c["key"] not in {x.key for x in cfg.conditions}])
    known = {c["key"]: c for c in run.get("conditions", [])}
    known.update({c.key: c.to_dict() for c in cfg.conditions})
    session = {"started": _now(), "workers": workers, "backend": backend, "commit": _commit(),
               "planned": len(jobs), "already_done": len(jobs) - len(pending), "episodes_run": 0,
               "abandoned": 0, "wall_s": None, "completed": False, "cpu_count": os.cpu_count()}
    run.update(label=label, policy=spec.to_dict(), conditions=[known[k] for k in sorted(known, key=order.get)],
               plan={"episodes": episodes, "seeds": seeds, "conditions": [c.key for c in cfg.conditions],
                     "strips": strips})
    run["sessions"].append(session)
    write_json_atomic(run_dir / RUN, run)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=f"eval {label} {task}", unit="ep")
    t0 = time.perf_counter()
    counts = {"done": 0, "success": 0, "abandoned": 0}
    first_error = None
    writer = runner = None
    try:
        writer = ResultsWriter(results_path)
        if pending:
            runner = _Runner(cfg, _WorkerConfig(spec, label, spec.checkpoint_sha256(), cfg.camera_size,
                                                cfg.max_steps, cfg.env_kwargs, spawned=workers > 1 or backend == "ray"))
            for result in runner.map(pending):
                rec = result["record"]
                writer.append(rec)
                if result.get("frames") is not None:
                    _save_strip(run_dir, rec, result["frames"], result["steps"])
                if rec["status"] == "done":
                    counts["done"] += 1
                    counts["success"] += int(rec["success"])
                else:
                    counts["abandoned"] += 1
                    first_error = first_error or rec.get("error")
                session.update(episodes_run=counts["done"], abandoned=counts["abandoned"],
                               wall_s=round(time.perf_counter() - t0, 1))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(condition=rec["condition"][:28], success=f"{counts['success']}/{counts['done']}",
                                    abandoned=counts["abandoned"])
                if on_result is not None:
                    on_result(rec)
                if counts["abandoned"] > cfg.max_abandoned:
                    raise EvaluationError(f"more than {cfg.max_abandoned} episodes abandoned (first error: "
                                          f"{first_error}); see {results_path}")
        records = rewrite_sorted(results_path, _sort_key(order))
        finished = {r["key"] for r in records if r.get("status") == "done"}
        session["completed"] = all(j.key in finished for j in jobs)
    finally:
        if writer is not None:
            writer.close()
        if runner is not None:
            runner.close()
        if bar is not None:
            bar.close()
        session.update(wall_s=round(time.perf_counter() - t0, 1), finished=_now())
        write_json_atomic(run_dir / RUN, run)
    return results_path


def _save_strip(run_dir: Path, rec: dict, frames: np.ndarray, labels: list[str]) -> Path:
    from ..sheets import grid

    out = run_dir / "strips" / f"{strip_name(rec['condition'], rec['seed_index'], rec['episode_index'])}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    grid(list(frames), len(frames), labels).save(tmp)
    os.replace(tmp, out)
    return out


def strip_name(condition: str, seed_index: int, episode_index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in condition)
    return f"{safe}__s{seed_index}e{episode_index}"
