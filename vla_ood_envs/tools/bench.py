"""`vla-ood bench`: throughput next to ManiSkill's PickCube-v1, memory, and the cost of image perturbations.

Every env of `env_ids()` is measured next to the reference, PickCube-v1 with its default settings except the ones
that must match: the same physics/control rates (500 Hz / 5 Hz), observation mode and camera size, and the
end-effector delta-pose controller (ours moves the end effector too). Pairs are stepped in alternating rounds so
the drift of a shared machine hits both alike, and reported as medians and ratios. Rows:

- one env in this process: state, rgb 224x224, rgb+segmentation 224x224, rgb 640x480;
- N envs on CPU: `gymnasium.make_vec(ID, num_envs=N)` (N spawned processes) next to a
  `gymnasium.vector.AsyncVectorEnv` of N single PickCube-v1 envs (spawned, ManiSkill's `CPUGymWrapper`); total
  env steps/s and the peak resident memory of one worker process;
- N envs in one process on ManiSkill's GPU simulation (`gym.make(ID, num_envs=N)`) when torch sees a CUDA
  device; otherwise the row is skipped with a note.

Both envs of a pair live under the same process settings (the bench is an env worker process: with CPU rendering
`claim_renderer` gives torch one thread, for the reference as well), so a ratio measures the envs, not the
process. Image perturbations
are timed directly (per frame), since step timings on 2 CPU cores are only good to about +-5%. The quick mode
(under 2 minutes here) is for checking a performance change before landing it; the full mode produces the
numbers for docs/performance.md.

The timing loops step random actions straight into the envs rather than through `rollout.collect`: its policy call,
per-step recording and info handling would be timed with the env, and the rows compare envs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

ROUNDS = 5
REFERENCE = "PickCube-v1"
ENV_IDS: tuple[str, ...] = ("VLAPick-v0",)
"""Envs measured next to the reference; one line per task. IDs of OPTIONAL_ENV_IDS join when registered."""
OPTIONAL_ENV_IDS: tuple[str, ...] = ("VLAOpen-v0",)
VEC_NUM_ENVS = 2
GPU_NUM_ENVS = 64


@dataclass(frozen=True)
class Mode:
    label: str
    obs_mode: str
    width: int = 224
    height: int = 224
    quick: bool = True  # measured in --quick mode too


def modes(size: int = 224) -> tuple[Mode, ...]:
    """The single-env rows: state, rgb and rgb+segmentation at size x size, and rgb at 640x480."""
    return (
        Mode("state", "state", size, size),
        Mode(f"rgb {size}", "rgb", size, size),
        Mode(f"rgb+seg {size}", "rgb+segmentation", size, size, quick=False),
        Mode("rgb 640x480", "rgb", 640, 480),
    )


MODES = modes()


def env_ids() -> tuple[str, ...]:
    """The envs to measure: ENV_IDS plus every OPTIONAL_ENV_IDS entry registered in gymnasium right now."""
    from .. import registry  # noqa: F401  (registers the IDs)

    return ENV_IDS + tuple(i for i in OPTIONAL_ENV_IDS if i in gym.registry and i not in ENV_IDS)


# ---------------------------------------------------------------------------------------------- timing helpers
def _round(env, action_fn: Callable[[], np.ndarray], steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action_fn())
    return steps / (time.perf_counter() - t)


def measure_pair(a, a_action: Callable, b, b_action: Callable, steps: int, warmup: int = 3) -> tuple[float, float]:
    """Median steps/s of two envs (or vector envs: calls of step) measured in alternating rounds."""
    for env, act in ((a, a_action), (b, b_action)):
        env.reset(seed=0)
        _round(env, act, warmup)
    per = max(1, steps // ROUNDS)
    ra, rb = [], []
    for _ in range(ROUNDS):
        ra.append(_round(a, a_action, per))
        rb.append(_round(b, b_action, per))
    return float(np.median(ra)), float(np.median(rb))


def _uniform_actions(space, scale: float = 0.3, seed: int = 0) -> Callable[[], np.ndarray]:
    rng = np.random.default_rng(seed)
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    return lambda: (rng.uniform(low, high) * scale).astype(np.float32)


def _peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a live process (Linux VmHWM), None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------- env factories
def _render_choice():
    from ..runtime.device import claim_renderer, select_render_backend

    choice = select_render_backend()
    claim_renderer(choice)
    return choice


def make_reference(obs_mode: str, width: int, height: int, num_envs: int = 1, sim_backend: str = "auto",
                   cpu_gym: bool = False):
    """PickCube-v1 with its defaults except rates, observation mode, camera size and the delta-pose controller."""
    import mani_skill.envs  # noqa: F401  (registers PickCube-v1)

    choice = _render_choice()
    backend = "none" if obs_mode == "state" else choice.backend
    env = gym.make(REFERENCE, num_envs=num_envs, obs_mode=obs_mode, render_backend=backend, sim_backend=sim_backend,
                   sim_config=dict(sim_freq=500, control_freq=5), sensor_configs=dict(width=width, height=height),
                   control_mode="pd_ee_delta_pose")
    if cpu_gym:
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

        env = CPUGymWrapper(env)
    return env


def make_ours(env_id: str, obs_mode: str, width: int, height: int, **kwargs):
    _render_choice()
    return gym.make(env_id, obs_mode=obs_mode, camera_width=width, camera_height=height, **kwargs)


# ---------------------------------------------------------------------------------------------- measurements
def env_throughput(steps: int, quick: bool = False, ids: tuple[str, ...] | None = None,
                   modes: tuple[Mode, ...] = MODES) -> list[dict]:
    """One env of each ID next to one PickCube-v1 per mode, in this process."""
    rows = []
    for env_id in ids or env_ids():
        for m in modes:
            if quick and not m.quick:
                continue
            n = steps if m.width * m.height <= 224 * 224 else max(ROUNDS, steps // 2)
            ours = make_ours(env_id, m.obs_mode, m.width, m.height)
            ref = make_reference(m.obs_mode, m.width, m.height)
            ours_sps, ref_sps = measure_pair(ours, _uniform_actions(ours.action_space), ref,
                                             _uniform_actions(ref.action_space, seed=1), n)
            ours.close()
            ref.close()
            rows.append({"env": env_id, "mode": m.label, "num_envs": 1, "steps": n, "ours": ours_sps,
                         "reference": ref_sps, "ratio": ours_sps / ref_sps})
    return rows


def vector_throughput(steps: int, num_envs: int = VEC_NUM_ENVS, ids: tuple[str, ...] | None = None,
                      mode: Mode = MODES[1]) -> list[dict]:
    """N envs as N spawned processes (Gymnasium's vector API), total env steps/s and per-worker peak memory."""
    rows = []
    for env_id in ids or env_ids():
        ours = gym.make_vec(env_id, num_envs=num_envs, obs_mode=mode.obs_mode, camera_width=mode.width,
                            camera_height=mode.height)
        factory = functools.partial(make_reference, mode.obs_mode, mode.width, mode.height, cpu_gym=True)
        ref = gym.vector.AsyncVectorEnv([factory] * num_envs, context="spawn", shared_memory=False)
        try:
            ours_sps, ref_sps = measure_pair(ours, _uniform_actions(ours.action_space), ref,
                                             _uniform_actions(ref.action_space, seed=1), steps, warmup=2)
            ours_mb = max((_peak_rss_mb(p.pid) or 0.0) for p in ours.processes) or None
            ref_mb = max((_peak_rss_mb(p.pid) or 0.0) for p in ref.processes) or None
        finally:
            ours.close()
            ref.close()
        rows.append({"env": env_id, "mode": mode.label, "num_envs": num_envs, "steps": steps,
                     "ours": ours_sps * num_envs, "reference": ref_sps * num_envs, "ratio": ours_sps / ref_sps,
                     "ours_worker_peak_mb": ours_mb, "reference_worker_peak_mb": ref_mb})
    return rows


def gpu_throughput(steps: int, num_envs: int = GPU_NUM_ENVS, ids: tuple[str, ...] | None = None,
                   mode: Mode = MODES[1]) -> dict:
    """N envs in one process on ManiSkill's GPU simulation and renderer, or a note saying why it was skipped."""
    from ..runtime.device import gpu_simulation_available

    if not gpu_simulation_available():
        return {"skipped": "no CUDA device visible to torch: ManiSkill's batched GPU simulation (num_envs > 1 in "
                           "one process) was not measured"}
    import torch

    rows = []
    for env_id in ids or env_ids():
        ours = make_ours(env_id, mode.obs_mode, mode.width, mode.height, num_envs=num_envs)
        ref = make_reference(mode.obs_mode, mode.width, mode.height, num_envs=num_envs, sim_backend="gpu")

        def batch(env):
            low = torch.as_tensor(env.action_space.low, device="cuda")
            high = torch.as_tensor(env.action_space.high, device="cuda")
            return lambda: (low + (high - low) * torch.rand_like(low)) * 0.3

        def synced(fn):
            def step_fn():
                torch.cuda.synchronize()
                return fn()
            return step_fn

        ours_sps, ref_sps = measure_pair(ours, synced(batch(ours)), ref, synced(batch(ref)), steps)
        ours.close()
        ref.close()
        rows.append({"env": env_id, "mode": mode.label, "num_envs": num_envs, "steps": steps,
                     "ours": ours_sps * num_envs, "reference": ref_sps * num_envs, "ratio": ours_sps / ref_sps})
    return {"rows": rows, "device": torch.cuda.get_device_name(0)}


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


def perturbation_costs(size: int, step_sps: dict[str, float], quick: bool = False) -> list[dict]:
    """Direct per-frame cost of every registered image-layer condition, also as a share of one rgb env step of its
    task (`step_sps`: rgb steps/s per task, from its bare ID). Quick mode times one condition per task."""
    from ..registry import DECLARATIONS, wrapper_class

    rows, seen = [], set()
    for d in DECLARATIONS:
        if not any(wrapper_class(n).requires_segmentation(**kw) for n, kw in d.wrappers):
            continue
        if quick and d.task in seen:
            continue
        seen.add(d.task)
        env = gym.make(d.env_id, camera_width=size, camera_height=size)
        ms = perturbation_ms(env)
        env.close()
        sps = step_sps.get(d.task)
        rows.append({"id": d.env_id, "ms_per_frame": ms, "share_of_step": None if sps is None else ms / 1000 * sps})
    return rows


# ---------------------------------------------------------------------------------------------- report
def machine() -> dict:
    from ..runtime.device import select_render_backend

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
        "compat_layer": choice.compat_layer, "torch_threads": torch.get_num_threads(),
        "robot_meshes": "light (vla_ood_envs.tasks.robot_meshes.lod)" if lod.panda_urdf() != str(lod.source_urdf())
        else "ManiSkill's originals",
        **{d: version(d) for d in ("vla_ood_envs", "mani-skill", "sapien", "torch", "gymnasium")},
    }


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def markdown(result: dict) -> str:
    m = result["machine"]
    load = result.get("load", {})
    lines = [
        f"Measured {result['date']} on {m['cores']} {m['cpu']} cores, render device {m['render_device']} "
        f"({m['driver']}; compat layer {m['compat_layer']}), Python {m['python']}, vla_ood_envs {m['vla_ood_envs']}, "
        f"mani-skill {m['mani-skill']}, sapien {m['sapien']}, torch {m['torch']} ({m['torch_threads']} intra-op "
        f"thread(s)), robot meshes: {m['robot_meshes']}. Physics 500 Hz / control 5 Hz, median of {ROUNDS} "
        f"alternating rounds{' (quick mode)' if result['quick'] else ''}. Load average (1 min) before / after: "
        f"{load.get('before', ['-'])[0]} / {load.get('after', ['-'])[0]}.",
        "",
        f"| env | mode | envs | steps | env steps/s | {REFERENCE} env steps/s | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["throughput"] + result["vector"]:
        lines.append(f"| {r['env']} | {r['mode']} | {r['num_envs']} | {r['steps']} | {r['ours']:.1f} | "
                     f"{r['reference']:.1f} | {r['ratio']:.2f}x |")
    gpu = result.get("gpu", {})
    for r in gpu.get("rows", []):
        lines.append(f"| {r['env']} | {r['mode']} (GPU sim, one process) | {r['num_envs']} | {r['steps']} | "
                     f"{r['ours']:.1f} | {r['reference']:.1f} | {r['ratio']:.2f}x |")
    notes = [f"The {r['num_envs']}-env rows are `gymnasium.make_vec` ({r['num_envs']} spawned processes) next to "
             f"an AsyncVectorEnv of {r['num_envs']} PickCube-v1 processes; steps/s are total env steps."
             for r in result["vector"][:1]]
    if "skipped" in gpu:
        notes.append(f"GPU rows skipped: {gpu['skipped']}.")
    elif gpu:
        notes.append(f"GPU rows on {gpu.get('device')}.")
    lines += ["", *notes] if notes else []
    lines += ["", f"| image condition ({result['size']}x{result['size']}) | ms per frame | share of an rgb step |",
              "|---|---|---|"]
    for r in result["perturbations"]:
        share = "-" if r["share_of_step"] is None else f"{100 * r['share_of_step']:.1f}%"
        lines.append(f"| {r['id']} | {r['ms_per_frame']:.2f} | {share} |")
    mem = [f"this process (one env of each kind at a time, and the references) {result['peak_rss_mb']:.0f} MB"]
    for r in result["vector"]:
        if r.get("ours_worker_peak_mb"):
            mem.append(f"one {r['env']} worker process {r['ours_worker_peak_mb']:.0f} MB "
                       f"({REFERENCE}: {r['reference_worker_peak_mb']:.0f} MB)")
    lines += ["", "Peak resident memory: " + "; ".join(mem) + "."]
    return "\n".join(lines) + "\n"


def run(quick: bool, out: Path, size: int = 224, docs: Path | None = None) -> dict:
    from ..runtime.device import env_worker_defaults

    env_worker_defaults()  # this process and its spawned workers only step envs
    steps = 25 if quick else 150
    load_before = _load()
    ids = env_ids()
    rgb_mode = modes(size)[1]
    throughput = env_throughput(steps, quick=quick, ids=ids, modes=modes(size))
    vector = vector_throughput(10 if quick else 60, ids=ids[:1] if quick else ids, mode=rgb_mode)
    gpu = gpu_throughput(10 if quick else 50, ids=ids[:1] if quick else ids, mode=rgb_mode)
    rgb = {r["env"].split("-")[0]: r["ours"] for r in throughput if r["mode"] == f"rgb {size}"}
    result = {
        "date": time.strftime("%Y-%m-%d"), "quick": quick, "steps": steps, "size": size, "machine": machine(),
        "throughput": throughput, "vector": vector, "gpu": gpu,
        "perturbations": perturbation_costs(size, rgb, quick=quick),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # ru_maxrss of the largest waited-for child; on Linux a forked child (e.g. the Vulkan probe) starts with
        # this process's high-water mark, so the per-worker VmHWM in the vector rows is the number to read.
        "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    result["load"] = {"before": load_before, "after": _load()}
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
