"""`vla-ood bench`: throughput next to ManiSkill's PickCube-v1 and the cost of image perturbations, as a table.

Both envs run at the same physics/control rates (500 Hz / 5 Hz) and camera size; they are stepped in alternating
rounds so drift of a shared machine hits both alike. Image perturbations are timed directly (per frame), since
step timings on 2 CPU cores are only good to about +-5%. The quick mode (< 2 minutes here) is for checking a
performance change before landing it; the full mode produces the numbers for docs/performance.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

ROUNDS = 5
MODES = (("state", "state"), ("rgb", "rgb"), ("rgb+seg", "rgb+segmentation"))


def _round(env, action_fn: Callable[[], np.ndarray], steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action_fn())
    return steps / (time.perf_counter() - t)


def measure_pair(a, a_action: Callable, b, b_action: Callable, steps: int, warmup: int = 3) -> tuple[float, float]:
    """Median steps/s of two envs measured in alternating rounds."""
    for env, act in ((a, a_action), (b, b_action)):
        env.reset(seed=0)
        _round(env, act, warmup)
    per = max(1, steps // ROUNDS)
    ra, rb = [], []
    for _ in range(ROUNDS):
        ra.append(_round(a, a_action, per))
        rb.append(_round(b, b_action, per))
    return float(np.median(ra)), float(np.median(rb))


def env_throughput(steps: int, size: int) -> list[dict]:
    """VLAPick-v0 and PickCube-v1 steps/s per observation mode, one env each."""
    import mani_skill.envs  # noqa: F401  (registers PickCube-v1)

    from . import registry  # noqa: F401
    from .render.device import claim_renderer, select_render_backend

    choice = select_render_backend()
    claim_renderer(choice)
    rng = np.random.default_rng(0)
    rows = []
    for label, mode in MODES:
        backend = "none" if mode == "state" else choice.backend
        ours = gym.make("VLAPick-v0", obs_mode=mode, camera_width=size, camera_height=size)
        low, high = ours.action_space.low, ours.action_space.high
        ref = gym.make("PickCube-v1", obs_mode=mode, render_backend=backend,
                       sim_config=dict(sim_freq=500, control_freq=5),
                       sensor_configs=dict(width=size, height=size), control_mode="pd_ee_delta_pose")
        ours_sps, ref_sps = measure_pair(
            ours, lambda: rng.uniform(low * 0.3, high * 0.3).astype(np.float32),
            ref, lambda: ref.action_space.sample() * 0.3, steps)
        ours.close()
        ref.close()
        rows.append({"mode": f"{label} {size}" if mode != "state" else label, "VLAPick-v0": ours_sps,
                     "PickCube-v1": ref_sps, "ratio": ours_sps / ref_sps})
    return rows


def perturbation_ms(env, repeats: int = 50) -> float | None:
    """Milliseconds per frame spent inside the image perturbations of a wrapper stack (None if it has none)."""
    from .wrappers.vision import ImagePerturbation

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


def perturbation_costs(size: int, step_sps: float) -> list[dict]:
    """Direct per-frame cost of every registered image-layer condition, also as a share of one env step."""
    from .registry import DECLARATIONS, wrapper_class

    rows = []
    for d in DECLARATIONS:
        if not any(wrapper_class(n).requires_segmentation(**kw) for n, kw in d.wrappers):
            continue
        env = gym.make(d.env_id, camera_width=size, camera_height=size)
        ms = perturbation_ms(env)
        env.close()
        rows.append({"id": d.env_id, "ms_per_frame": ms, "share_of_step": ms / 1000 * step_sps})
    return rows


def machine() -> dict:
    from .render.device import select_render_backend

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    choice = select_render_backend()
    return {
        "cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "render_device": choice.device_name, "driver": choice.driver_info,
        "compat_layer": choice.compat_layer,
        **{d: version(d) for d in ("vla_ood_envs", "mani-skill", "sapien", "torch", "gymnasium")},
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Measured {result['date']} on {m['cores']} {m['cpu']} cores, render device {m['render_device']} "
        f"({m['driver']}; compat layer {m['compat_layer']}), Python {m['python']}, vla_ood_envs {m['vla_ood_envs']}, "
        f"mani-skill {m['mani-skill']}, sapien {m['sapien']}, torch {m['torch']}. One env, physics 500 Hz / control "
        f"5 Hz, {result['steps']} steps per env in {ROUNDS} alternating rounds, median{' (quick mode)' if result['quick'] else ''}.",
        "",
        "| mode | VLAPick-v0 steps/s | PickCube-v1 steps/s | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['mode']} | {r['VLAPick-v0']:.1f} | {r['PickCube-v1']:.1f} | {r['ratio']:.2f}x |"
              for r in result["throughput"]]
    lines += ["", f"| image condition ({result['size']}x{result['size']}) | ms per frame | share of an rgb step |",
              "|---|---|---|"]
    lines += [f"| {r['id']} | {r['ms_per_frame']:.2f} | {100 * r['share_of_step']:.1f}% |"
              for r in result["perturbations"]]
    lines += ["", f"Peak resident memory of the benchmark process: {result['peak_rss_mb']:.0f} MB."]
    return "\n".join(lines) + "\n"


def run(quick: bool, out: Path, size: int = 224, docs: Path | None = None) -> dict:
    steps = 25 if quick else 150
    throughput = env_throughput(steps, size)
    rgb = next(r for r in throughput if r["mode"].startswith("rgb "))
    result = {
        "date": time.strftime("%Y-%m-%d"), "quick": quick, "steps": steps, "size": size, "machine": machine(),
        "throughput": throughput, "perturbations": perturbation_costs(size, rgb["VLAPick-v0"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (out / "bench.md").write_text(table)
    if docs is not None:
        docs.write_text("# Performance\n\nProduced by `vla-ood bench --docs docs/performance.md` (latest run; numbers vary by about "
                        "+-10% between runs on these shared 2-core machines).\n\n" + table)
    return result
