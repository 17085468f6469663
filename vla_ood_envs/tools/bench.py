"""`vla-ood bench`: env steps/s next to ManiSkill's PickCube-v1, the cost of image conditions, and memory.

How it measures, so that a ratio compares envs and not process histories or machine drift:

- **One fresh process per env.** Each env of a table is built in its own spawned worker process (`_serve`) and
  nothing else is built there: an env built after another one in the same process can run at a different speed
  (PickCube-v1 rendered 47-62 ms per frame instead of 30-35 ms when built after VLAPick-v0; issue 19).
- **Alternating rounds.** The workers of a table take turns: round r steps every env once, one at a time, the
  order reversed every other round, so drift of a shared machine hits every env alike. Each round resets the env
  with the same seed and plays the same actions, so rounds differ only by the machine.
- **Enough steps.** The full mode plays `ROUNDS` rounds of `STEPS` steps per env and prints min / median / max
  steps/s over rounds; `--quick` plays `QUICK_ROUNDS` rounds of `QUICK_STEPS` steps and is labelled noisy.
- **CPU time too.** Each round also reports the worker's process CPU time per step (all its threads, lavapipe's
  rasterisers included), which a loaded machine disturbs far less than wall-clock time.
- **The load average** (1 minute) is printed at the start and end of every table.
- **No policy in the loop.** The timing loops step precomputed actions straight into the envs, not through
  `rollout.collect`: its policy call and per-step recording would be timed with the env.

References: PickCube-v1 at its defaults (100 Hz physics / 20 Hz control, `pd_joint_delta_pos`) and at the
rates of our tasks (500 Hz / 5 Hz, `pd_ee_delta_pose`, which moves the end effector as ours does); both with our
observation mode and camera size. Tables: one env per observation mode; the image conditions (total step cost
of each condition ID, whose segmentation pass is part of it, next to the bare task's rgb step); N envs as N
processes (`gymnasium.make_vec` next to an AsyncVectorEnv of PickCube-v1); torch's thread setting; ManiSkill's
batched GPU simulation when torch sees CUDA (else skipped with a note). The render device (lavapipe on CPU, or
a GPU) is printed with the tables: on a GPU machine every rendering row is a GPU-rendering row.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

REFERENCE = "PickCube-v1"
ROUNDS, STEPS = 7, 60
QUICK_ROUNDS, QUICK_STEPS = 3, 12
WARMUP_STEPS = 3
ENV_IDS: tuple[str, ...] = ("VLAPick-v0",)
"""Envs measured next to the reference; one line per task. IDs of OPTIONAL_ENV_IDS join when registered."""
OPTIONAL_ENV_IDS: tuple[str, ...] = ("VLAOpen-v0",)
VEC_NUM_ENVS = 2
GPU_NUM_ENVS = 64
# PickCube-v1's own settings (mani_skill/envs/tasks/tabletop/pick_cube.py, ManiSkill 3.0.1: SimConfig defaults
# and the first of its SUPPORTED control modes) and the ones that match our tasks.
REFERENCE_SETTINGS = {
    "defaults": dict(sim_freq=100, control_freq=20, control_mode="pd_joint_delta_pos"),
    "500/5 Hz": dict(sim_freq=500, control_freq=5, control_mode="pd_ee_delta_pose"),
}


@dataclass(frozen=True)
class Mode:
    label: str
    obs_mode: str
    width: int = 224
    height: int = 224
    quick: bool = True  # measured in --quick mode too


def modes(size: int = 224) -> tuple[Mode, ...]:
    """The single-env tables: state, rgb and rgb+segmentation at size x size, and rgb at 640x480."""
    return (
        Mode("state", "state", size, size),
        Mode(f"rgb {size}", "rgb", size, size),
        Mode(f"rgb+seg {size}", "rgb+segmentation", size, size, quick=False),
        Mode("rgb 640x480", "rgb", 640, 480, quick=False),
    )


MODES = modes()


def env_ids() -> tuple[str, ...]:
    """The envs to measure: ENV_IDS plus every OPTIONAL_ENV_IDS entry registered in gymnasium right now."""
    from .. import registry  # noqa: F401  (registers the IDs)

    return ENV_IDS + tuple(i for i in OPTIONAL_ENV_IDS if i in gym.registry and i not in ENV_IDS)


@dataclass(frozen=True)
class EnvSpec:
    """One env a worker process builds: ours (`reference=None`) or PickCube-v1 with REFERENCE_SETTINGS[reference].

    torch_threads: the worker's VLA_OOD_TORCH_THREADS ("1": one intra-op thread while rendering on the CPU, the
    package's env-worker default; "keep": torch's own default, as in a user's process).
    """

    env_id: str
    obs_mode: str
    width: int = 224
    height: int = 224
    reference: str | None = None
    num_envs: int = 1
    sim_backend: str = "auto"
    torch_threads: str = "1"
    tree: str | None = None
    """Another checkout of the package to build `env_id` from (before/after comparisons), None: this one."""

    @property
    def label(self) -> str:
        name = self.env_id if self.reference is None else f"{REFERENCE} {self.reference}"
        name += "" if self.torch_threads == "1" else f" (torch threads: {self.torch_threads})"
        return name + ("" if self.tree is None else f" @ {Path(self.tree).name}")


def _use_tree(tree: str) -> None:
    """Make this fresh worker process import vla_ood_envs from the checkout `tree` from now on: the modules loaded
    so far (this one excepted, whose helpers import lazily) are dropped and the package is imported again."""
    root = Path(tree).resolve()
    if not (root / "vla_ood_envs" / "__init__.py").is_file():
        raise BenchError(f"{tree} is not a checkout of vla_ood_envs (no vla_ood_envs/__init__.py there)")
    for name in [m for m in sys.modules if m.split(".")[0] == "vla_ood_envs" and m != __name__]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    importlib.import_module("vla_ood_envs")


# ---------------------------------------------------------------------------------------------- env factories
def _render_choice():
    from ..runtime.device import claim_renderer, select_render_backend

    choice = select_render_backend()
    claim_renderer(choice)
    return choice


def make_reference(obs_mode: str, width: int, height: int, num_envs: int = 1, sim_backend: str = "auto",
                   cpu_gym: bool = False, settings: str = "500/5 Hz"):
    """PickCube-v1 with our observation mode and camera size, at REFERENCE_SETTINGS[settings]."""
    import mani_skill.envs  # noqa: F401  (registers PickCube-v1)

    choice = _render_choice()
    s = REFERENCE_SETTINGS[settings]
    backend = "none" if obs_mode == "state" else choice.backend
    env = gym.make(REFERENCE, num_envs=num_envs, obs_mode=obs_mode, render_backend=backend, sim_backend=sim_backend,
                   sim_config=dict(sim_freq=s["sim_freq"], control_freq=s["control_freq"]),
                   sensor_configs=dict(width=width, height=height), control_mode=s["control_mode"])
    if cpu_gym:
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

        env = CPUGymWrapper(env)
    return env


def make_ours(env_id: str, obs_mode: str, width: int, height: int, **kwargs):
    _render_choice()
    return gym.make(env_id, obs_mode=obs_mode, camera_width=width, camera_height=height, **kwargs)


def _build(spec: EnvSpec):
    if spec.reference is None:
        kwargs = dict(num_envs=spec.num_envs) if spec.num_envs > 1 else {}
        return make_ours(spec.env_id, spec.obs_mode, spec.width, spec.height, **kwargs)
    return make_reference(spec.obs_mode, spec.width, spec.height, num_envs=spec.num_envs,
                          sim_backend="gpu" if spec.num_envs > 1 else spec.sim_backend, settings=spec.reference)


# ---------------------------------------------------------------------------------------------- timing helpers
def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _action_source(env, batched_cuda: bool) -> Callable[[int], list]:
    """`actions(n)`: the same n actions every call (uniform over the action space, scaled by 0.3)."""
    space = env.action_space
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)

    def actions(n: int) -> list:
        rng = np.random.default_rng(0)
        out = [(rng.uniform(low, high) * 0.3).astype(np.float32) for _ in range(n)]
        if batched_cuda:
            import torch

            out = [torch.as_tensor(a, device="cuda") for a in out]
        return out

    return actions


def timed_round(env, actions: Sequence, seed: int = 0, sync: Callable[[], None] = lambda: None) -> dict:
    """Reset `env` with `seed` (not timed), then step it through `actions`: steps/s (wall clock), process CPU ms
    per step (every thread of this process) and main-thread CPU ms per step."""
    env.reset(seed=seed)
    sync()
    cpu, thread, wall = _cpu_seconds(), time.thread_time(), time.perf_counter()
    for a in actions:
        env.step(a)
    sync()
    wall, thread, cpu = time.perf_counter() - wall, time.thread_time() - thread, _cpu_seconds() - cpu
    n = max(1, len(actions))
    return {"steps_per_s": n / wall, "cpu_ms": 1000 * cpu / n, "main_thread_ms": 1000 * thread / n}


def _peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory of a live process (Linux VmHWM), None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _serve(conn, spec_dict: dict) -> None:
    """Worker process: build one env, then answer ("round", steps) with `timed_round`'s numbers until "close"."""
    try:
        spec = EnvSpec(**spec_dict)
        os.environ["VLA_OOD_TORCH_THREADS"] = spec.torch_threads
        if spec.tree:
            _use_tree(spec.tree)
        t = time.perf_counter()
        env = _build(spec)
        build_s = time.perf_counter() - t
        gpu = spec.num_envs > 1
        sync = (lambda: __import__("torch").cuda.synchronize()) if gpu else (lambda: None)
        actions = _action_source(env, batched_cuda=gpu)
        timed_round(env, actions(WARMUP_STEPS), sync=sync)
        import torch

        conn.send(("ready", {"build_s": build_s, "torch_threads": torch.get_num_threads(),
                             "package": str(Path(sys.modules["vla_ood_envs"].__file__).parent)}))
        while True:
            cmd, arg = conn.recv()
            if cmd == "close":
                env.close()
                conn.send(("closed", {"peak_rss_mb": _peak_rss_mb()}))
                return
            conn.send(("round", timed_round(env, actions(arg), sync=sync)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises with the env's name
        conn.send(("error", traceback.format_exc()))


class BenchError(RuntimeError):
    """A worker failed to build or step its env; the message names the env and carries the worker's traceback."""


class _Worker:
    def __init__(self, ctx, spec: EnvSpec):
        self.spec = spec
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, asdict(spec)), daemon=True)
        self.proc.start()
        child.close()

    def ask(self, cmd: str, arg: Any = None, expect: str = "") -> dict:
        if cmd:
            self.conn.send((cmd, arg))
        try:
            kind, value = self.conn.recv()
        except EOFError:
            raise BenchError(f"the worker for {self.spec.label} ({self.spec.obs_mode}) exited "
                             f"(exit code {self.proc.exitcode})") from None
        if kind == "error":
            raise BenchError(f"{self.spec.label} ({self.spec.obs_mode}) failed in its worker:\n{value}")
        assert kind == expect, (kind, expect)
        return value

    def stop(self) -> float | None:
        """Close the env and end the process; its peak memory (MB), None when it had already failed or exited."""
        try:
            return self.ask("close", expect="closed")["peak_rss_mb"] if self.proc.is_alive() else None
        except (BenchError, OSError):
            return None
        finally:
            self.proc.join(timeout=60)
            if self.proc.is_alive():
                self.proc.kill()


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def compare(specs: Sequence[EnvSpec], rounds: int, steps: int, progress: Callable[[str], None] = lambda s: None
            ) -> dict:
    """Every spec in its own fresh worker process, stepped in alternating rounds (order reversed every other
    round). Returns {"rows": [...] per spec (steps/s and CPU ms per step: median/min/max over rounds, every
    round's numbers, build time, peak memory), "load": {"start", "end"}, "rounds", "steps"}.

    Raises BenchError when a worker fails."""
    ctx = mp.get_context("spawn")
    load_start = _load()
    workers: list[_Worker] = []
    packages: list[str] = []
    try:
        for spec in specs:  # built one at a time: builds do not compete with each other
            workers.append(_Worker(ctx, spec))
            ready = workers[-1].ask("", expect="ready")
            packages.append(ready["package"])
            progress(f"built {spec.label} ({spec.obs_mode}, {spec.width}x{spec.height}) in {ready['build_s']:.1f} s")
        per = [[] for _ in workers]
        for r in range(rounds):
            order = list(range(len(workers)))
            for i in order if r % 2 == 0 else order[::-1]:
                per[i].append(workers[i].ask("round", steps, expect="round"))
            progress(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{w.spec.label} {per[i][-1]['steps_per_s']:.1f}/s" for i, w in enumerate(workers)))
        load_end = _load()
        rows = []
        for w, rs, package in zip(workers, per, packages):
            rows.append({
                "env": w.spec.label, "env_id": w.spec.env_id, "reference": w.spec.reference, "package": package,
                "obs_mode": w.spec.obs_mode, "width": w.spec.width, "height": w.spec.height,
                "num_envs": w.spec.num_envs, "torch_threads": w.spec.torch_threads,
                "steps_per_s": _summary([x["steps_per_s"] for x in rs]),
                "cpu_ms": _summary([x["cpu_ms"] for x in rs]),
                "main_thread_ms": _summary([x["main_thread_ms"] for x in rs]),
                "rounds": rs,
            })
    finally:
        peaks = [w.stop() for w in workers]
    for row, peak in zip(rows, peaks):
        row["peak_rss_mb"] = peak
    return {"rows": rows, "load": {"start": load_start, "end": load_end}, "rounds": rounds, "steps": steps}


def ratio(a: dict, b: dict) -> dict:
    """Speed of row a over row b: ratio of median steps/s, and the min/max of the per-round ratios (rounds are
    paired: round r of a and of b ran back to back)."""
    per = [x["steps_per_s"] / y["steps_per_s"] for x, y in zip(a["rounds"], b["rounds"])]
    return {"median": a["steps_per_s"]["median"] / b["steps_per_s"]["median"], "min": min(per), "max": max(per)}


def measure_pair(a, a_action: Callable, b, b_action: Callable, steps: int, rounds: int = ROUNDS,
                 warmup: int = 3) -> tuple[float, float]:
    """Median steps/s of two envs already built in this process (or vector envs: calls of step), in alternating
    rounds. Only for envs that live in other processes anyway (vector envs): two envs built in one process can
    disturb each other's speed, which is what `compare` avoids."""
    for env, act in ((a, a_action), (b, b_action)):
        env.reset(seed=0)
        for _ in range(warmup):
            env.step(act())
    per = max(1, steps // rounds)
    ra, rb = [], []
    for r in range(rounds):
        pair = [(a, a_action, ra), (b, b_action, rb)]
        for env, act, out in pair if r % 2 == 0 else pair[::-1]:
            t = time.perf_counter()
            for _ in range(per):
                env.step(act())
            out.append(per / (time.perf_counter() - t))
    return float(np.median(ra)), float(np.median(rb))


def _uniform_actions(space, scale: float = 0.3, seed: int = 0) -> Callable[[], np.ndarray]:
    rng = np.random.default_rng(seed)
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    return lambda: (rng.uniform(low, high) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------- tables
def env_tables(ids: Sequence[str], mode_list: Sequence[Mode], rounds: int, steps: int,
               progress: Callable[[str], None] = print, compare_tree: str | None = None) -> list[dict]:
    """Per observation mode: every env of `ids` (and of `ids` built from the checkout `compare_tree`) and
    PickCube-v1 at both settings, each in its own process."""
    tables = []
    for m in mode_list:
        specs = [EnvSpec(i, m.obs_mode, m.width, m.height) for i in ids]
        if compare_tree:
            specs += [EnvSpec(i, m.obs_mode, m.width, m.height, tree=compare_tree) for i in ids]
        specs += [EnvSpec(REFERENCE, m.obs_mode, m.width, m.height, reference=s) for s in REFERENCE_SETTINGS]
        n = steps if m.width * m.height <= 224 * 224 else max(5, steps // 2)
        progress(f"[{m.label}] {len(specs)} envs, {rounds} rounds of {n} steps")
        tables.append({"mode": m.label, **compare(specs, rounds, n, progress)})
    return tables


def condition_ids(quick: bool = False) -> list[tuple[str, list[str]]]:
    """Per task: its bare ID and its image-condition IDs (those whose wrappers need the segmentation pass).
    Quick mode keeps one condition per task."""
    from ..registry import DECLARATIONS, wrapper_class

    out: dict[str, list[str]] = {}
    for d in DECLARATIONS:
        if any(wrapper_class(n).requires_segmentation(**kw) for n, kw in d.wrappers):
            out.setdefault(d.task, [])
            if not (quick and out[d.task]):
                out[d.task].append(d.env_id)
    return [(f"{task}-v0", ids) for task, ids in out.items() if f"{task}-v0" in gym.registry]


def condition_tables(size: int, rounds: int, steps: int, quick: bool = False,
                     progress: Callable[[str], None] = print) -> list[dict]:
    """Total step cost of each image condition (its segmentation pass included) next to the bare task's rgb
    step, each env in its own process, plus the direct per-frame cost of the perturbation itself."""
    tables = []
    for bare, ids in condition_ids(quick):
        specs = [EnvSpec(bare, "rgb", size, size)] + [EnvSpec(i, "rgb", size, size) for i in ids]
        progress(f"[image conditions, {bare}] {len(specs)} envs, {rounds} rounds of {steps} steps")
        table = compare(specs, rounds, steps, progress)
        for env_id, row in zip(ids, table["rows"][1:]):
            env = gym.make(env_id, camera_width=size, camera_height=size)
            row["perturbation_ms"] = perturbation_ms(env)
            env.close()
        tables.append({"bare": bare, **table})
    return tables


def thread_table(env_id: str, size: int, rounds: int, steps: int, progress: Callable[[str], None] = print) -> dict:
    """One rgb env with torch on one intra-op thread (env workers) and on torch's default (a user's process)."""
    specs = [EnvSpec(env_id, "rgb", size, size, torch_threads=t) for t in ("1", "keep")]
    progress(f"[torch threads] {env_id} rgb {size}: 1 thread vs torch's default")
    return compare(specs, rounds, steps, progress)


def vector_throughput(steps: int, num_envs: int = VEC_NUM_ENVS, ids: tuple[str, ...] | None = None,
                      mode: Mode = MODES[1], rounds: int = ROUNDS) -> list[dict]:
    """N envs as N spawned processes (Gymnasium's vector API), total env steps/s and per-worker peak memory."""
    rows = []
    for env_id in ids or env_ids():
        load_start = _load()
        ours = gym.make_vec(env_id, num_envs=num_envs, obs_mode=mode.obs_mode, camera_width=mode.width,
                            camera_height=mode.height)
        factory = functools.partial(make_reference, mode.obs_mode, mode.width, mode.height, cpu_gym=True)
        ref = gym.vector.AsyncVectorEnv([factory] * num_envs, context="spawn", shared_memory=False)
        try:
            ours_sps, ref_sps = measure_pair(ours, _uniform_actions(ours.action_space), ref,
                                             _uniform_actions(ref.action_space, seed=1), steps, rounds=rounds,
                                             warmup=2)
            ours_mb = max((_peak_rss_mb(p.pid) or 0.0) for p in ours.processes) or None
            ref_mb = max((_peak_rss_mb(p.pid) or 0.0) for p in ref.processes) or None
        finally:
            ours.close()
            ref.close()
        rows.append({"env": env_id, "mode": mode.label, "num_envs": num_envs, "steps": steps,
                     "ours": ours_sps * num_envs, "reference": ref_sps * num_envs, "ratio": ours_sps / ref_sps,
                     "ours_worker_peak_mb": ours_mb, "reference_worker_peak_mb": ref_mb,
                     "load": {"start": load_start, "end": _load()}})
    return rows


def gpu_throughput(steps: int, num_envs: int = GPU_NUM_ENVS, ids: tuple[str, ...] | None = None,
                   mode: Mode = MODES[1], rounds: int = ROUNDS, progress: Callable[[str], None] = print) -> dict:
    """N envs in one process on ManiSkill's GPU simulation and renderer (each env kind in its own process), or a
    note saying why it was skipped."""
    from ..runtime.device import gpu_simulation_available

    if not gpu_simulation_available():
        return {"skipped": "no CUDA device visible to torch: ManiSkill's batched GPU simulation (num_envs > 1 in "
                           "one process) was not measured"}
    import torch

    specs = [EnvSpec(i, mode.obs_mode, mode.width, mode.height, num_envs=num_envs) for i in ids or env_ids()]
    specs.append(EnvSpec(REFERENCE, mode.obs_mode, mode.width, mode.height, reference="500/5 Hz",
                         num_envs=num_envs))
    return {**compare(specs, rounds, steps, progress), "device": torch.cuda.get_device_name(0)}


def perturbation_ms(env, repeats: int = 50) -> float | None:
    """Milliseconds per frame spent inside the image perturbations of a wrapper stack (None if it has none)."""
    from ..wrappers.vision import ImagePerturbation

    total, found, layer = 0.0, False, env
    while isinstance(layer, gym.Wrapper):
        applier = layer if isinstance(layer, ImagePerturbation) else getattr(layer, "_image", None)
        if applier is not None:
            found = True
            obs, _ = layer.env.reset(seed=0)
            applier._apply(obs)
            t = time.perf_counter()
            for _ in range(repeats):
                applier._apply(obs)
            total += (time.perf_counter() - t) / repeats * 1000
        layer = layer.env
    return total if found else None


# ---------------------------------------------------------------------------------------------- report
def machine() -> dict:
    from ..runtime.device import renders_on_cpu, select_render_backend

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    import torch

    from ..tasks.robot_meshes import lod

    choice = select_render_backend()
    return {
        "cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "render_device": choice.device_name, "driver": choice.driver_info,
        "render_on": "CPU (lavapipe)" if renders_on_cpu(choice) else "GPU",
        "compat_layer": choice.compat_layer, "torch_threads": torch.get_num_threads(),
        "robot_meshes": "light (vla_ood_envs.tasks.robot_meshes.lod)" if lod.panda_urdf() != str(lod.source_urdf())
        else "ManiSkill's originals",
        **{d: version(d) for d in ("vla_ood_envs", "mani-skill", "sapien", "torch", "gymnasium")},
    }


def _load_text(load: dict) -> str:
    start, end = load.get("start") or ["-"], load.get("end") or ["-"]
    return f"load average (1 min) {start[0]} at the start, {end[0]} at the end"


def _range(s: dict, fmt: str = ".1f") -> str:
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"


def _times(s: dict) -> str:
    return f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def _env_table_md(t: dict) -> list[str]:
    rows = t["rows"]
    refs = {r["reference"]: r for r in rows if r["reference"]}
    head = " | ".join(f"vs {REFERENCE} {k}" for k in refs)
    lines = [f"**{t['mode']}**, 1 env, {t['rounds']} rounds of {t['steps']} steps; {_load_text(t['load'])}.", "",
             f"| env | steps/s median (min-max) | CPU ms/step | {head} |", "|---|---|---|" + "---|" * len(refs)]
    for r in rows:
        cells = " | ".join("-" if r["reference"] else _times(ratio(r, ref)) for ref in refs.values())
        lines.append(f"| {r['env']} | {_range(r['steps_per_s'])} | {r['cpu_ms']['median']:.1f} | {cells} |")
    return lines


def _condition_table_md(t: dict, size: int) -> list[str]:
    bare = t["rows"][0]
    lines = [f"**Image conditions of {t['bare']}**, rgb {size}x{size}, 1 env, {t['rounds']} rounds of "
             f"{t['steps']} steps; {_load_text(t['load'])}. Extra cost = step time over the bare rgb step "
             f"(the segmentation pass the condition needs, and the perturbation); ranges are per-round.", "",
             "| env | steps/s median (min-max) | CPU ms/step | extra wall time per step | extra CPU per step | "
             "perturbation alone (ms/frame) |", "|---|---|---|---|---|---|"]
    for r in t["rows"]:
        if r is bare:
            lines.append(f"| {r['env']} (bare, rgb) | {_range(r['steps_per_s'])} | {r['cpu_ms']['median']:.1f} | "
                         f"- | - | - |")
            continue
        extra = ratio(bare, r)
        cpu = r["cpu_ms"]["median"] / bare["cpu_ms"]["median"] - 1
        ms = r.get("perturbation_ms")
        lines.append(f"| {r['env']} | {_range(r['steps_per_s'])} | {r['cpu_ms']['median']:.1f} | "
                     f"{100 * (extra['median'] - 1):+.1f}% ({100 * (extra['min'] - 1):+.1f} to "
                     f"{100 * (extra['max'] - 1):+.1f}) | {100 * cpu:+.1f}% | {'-' if ms is None else f'{ms:.2f}'} |")
    return lines


def markdown(result: dict) -> str:
    m = result["machine"]
    size = result["size"]
    lines = [
        f"Measured {result['date']} on {m['cores']} {m['cpu']} cores, rendering on {m.get('render_on', '-')}: "
        f"{m['render_device']} ({m['driver']}; compat layer {m['compat_layer']}), Python {m['python']}, "
        f"vla_ood_envs {m['vla_ood_envs']}, mani-skill {m['mani-skill']}, sapien {m['sapien']}, torch {m['torch']}, "
        f"robot meshes: {m['robot_meshes']}. Every env in its own fresh process, alternating rounds; env workers "
        f"run torch on 1 intra-op thread unless a row says otherwise. {REFERENCE} defaults: 100 Hz physics / 20 Hz "
        f"control, pd_joint_delta_pos; {REFERENCE} 500/5 Hz: our rates, pd_ee_delta_pose; both with our "
        f"observation mode and camera size. CPU ms/step: the worker process's CPU time per step (all threads).",
    ]
    if result["quick"]:
        lines += ["", f"QUICK MODE ({result['rounds']} rounds of {result['steps']} steps): for a quick check only; "
                      f"these ratios are noisy and can swing by tens of percent between runs. Use the full mode "
                      f"for numbers to publish."]
    for t in result["tables"]:
        lines += [""] + _env_table_md(t)
    for t in result.get("conditions", []):
        lines += [""] + _condition_table_md(t, size)
    threads = result.get("threads")
    if threads:
        one, keep = threads["rows"]
        lines += ["", f"**torch threads**, {one['env_id']} rgb {size}, {threads['rounds']} rounds of "
                      f"{threads['steps']} steps; {_load_text(threads['load'])}: 1 intra-op thread "
                      f"{_range(one['steps_per_s'])} steps/s ({one['cpu_ms']['median']:.1f} CPU ms/step), torch's "
                      f"default ({result['machine']['torch_threads']} here) {_range(keep['steps_per_s'])} steps/s "
                      f"({keep['cpu_ms']['median']:.1f} CPU ms/step)."]
    if result["vector"]:
        lines += ["", f"| env | mode | envs (processes) | env steps/s | {REFERENCE} 500/5 Hz env steps/s | ratio | "
                      f"load (1 min) |", "|---|---|---|---|---|---|---|"]
        for r in result["vector"]:
            load = r.get("load", {})
            lines.append(f"| {r['env']} | {r['mode']} | {r['num_envs']} | {r['ours']:.1f} | {r['reference']:.1f} | "
                         f"{r['ratio']:.2f}x | {(load.get('start') or ['-'])[0]} / {(load.get('end') or ['-'])[0]} |")
        lines += ["", f"The vector rows are `gymnasium.make_vec` (spawned processes) next to an AsyncVectorEnv of "
                      f"{REFERENCE} processes, medians of alternating rounds; steps/s are total env steps."]
    gpu = result.get("gpu", {})
    if "skipped" in gpu:
        lines += ["", f"GPU simulation rows skipped: {gpu['skipped']}."]
    elif gpu:
        lines += ["", f"**GPU simulation** on {gpu.get('device')}, {gpu['rows'][0]['num_envs']} envs in one process, "
                      f"{_load_text(gpu['load'])}.", "", "| env | env steps/s median (min-max) |", "|---|---|"]
        for r in gpu["rows"]:
            n = r["num_envs"]
            lines.append(f"| {r['env']} | {_range({k: v * n for k, v in r['steps_per_s'].items()})} |")
    mem = [f"{r['env']} {r['peak_rss_mb']:.0f} MB" for t in result["tables"][-1:] for r in t["rows"]
           if r.get("peak_rss_mb")]
    if mem:
        lines += ["", f"Peak resident memory of one worker process ({result['tables'][-1]['mode']}): "
                  + "; ".join(mem) + "."]
    return "\n".join(lines) + "\n"


def run(quick: bool, out: Path, size: int = 224, docs: Path | None = None,
        progress: Callable[[str], None] = print) -> dict:
    from ..runtime.device import env_worker_defaults

    env_worker_defaults()  # this process and its spawned workers only step envs
    rounds, steps = (QUICK_ROUNDS, QUICK_STEPS) if quick else (ROUNDS, STEPS)
    ids = env_ids()
    mode_list = tuple(m for m in modes(size) if m.quick or not quick)
    result = {
        "date": time.strftime("%Y-%m-%d"), "quick": quick, "rounds": rounds, "steps": steps, "size": size,
        "machine": machine(),
        "tables": env_tables(ids, mode_list, rounds, steps, progress),
        "conditions": condition_tables(size, rounds, steps, quick=quick, progress=progress),
        "threads": thread_table(ids[0], size, rounds, steps, progress),
        "vector": vector_throughput(rounds * (steps // 3 or 1), ids=ids[:1] if quick else ids, mode=modes(size)[1],
                                    rounds=rounds),
        "gpu": gpu_throughput(steps, ids=ids[:1] if quick else ids, mode=modes(size)[1], rounds=rounds,
                              progress=progress),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (out / "bench.md").write_text(table)
    if docs is not None:
        _write_docs(docs, table)
    return result


DOCS_BEGIN = "<!-- bench:begin (written by `vla-ood bench --docs`) -->"
DOCS_END = "<!-- bench:end -->"


def _write_docs(docs: Path, table: str) -> None:
    """Replace the measured block of docs/performance.md, keeping the hand-written text around it."""
    block = f"{DOCS_BEGIN}\n{table}{DOCS_END}"
    text = docs.read_text() if docs.exists() else ""
    if DOCS_BEGIN in text and DOCS_END in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + block + rest.split(DOCS_END, 1)[1]
    else:
        text = ("# Performance\n\nProduced by `vla-ood bench --docs docs/performance.md` (latest run; numbers vary "
                "by about +-10% between runs on these shared 2-core machines).\n\n" + block + "\n")
    docs.write_text(text)
