"""Env steps per second of VLAPick-v0 next to ManiSkill's PickCube-v1, measured in the same run.

Both envs run at the same physics and control rates (VLAPick's defaults: 500 Hz physics, 5 Hz control) and the
same camera size, with one env on this machine's render device. PickCube is ManiSkill's own reference task.

    python benchmarks/env_throughput.py            # about 3 minutes on 2 CPU cores
    python benchmarks/env_throughput.py --quick    # fewer steps, under a minute
    python benchmarks/env_throughput.py --json out/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource

import gymnasium as gym
import numpy as np

import mani_skill.envs  # noqa: F401  (registers PickCube-v1)
import vla_ood_envs  # noqa: F401
from vla_ood_envs.render.device import claim_renderer, select_render_backend

from timing import ROUNDS, measure_pair

MODES = (("state", "state"), ("rgb 224", "rgb"), ("rgb+seg 224", "rgb+segmentation"))


def bench(steps: int, size: int) -> list[dict]:
    choice = select_render_backend()
    claim_renderer(choice)
    rows = []
    rng = np.random.default_rng(0)
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
        rows.append({"mode": label, "VLAPick-v0": ours_sps, "PickCube-v1": ref_sps, "ratio": ours_sps / ref_sps})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    steps = args.steps or (25 if args.quick else 150)
    rows = bench(steps, args.size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nenv steps/s, 1 env, physics 500 Hz / control 5 Hz, median of {ROUNDS} alternating rounds, {steps} steps each "
          f"({platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"render device {select_render_backend().device_name})\n")
    print("| mode | VLAPick-v0 | PickCube-v1 | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['VLAPick-v0']:.1f} | {r['PickCube-v1']:.1f} | {r['ratio']:.2f}x |")
    print(f"\npeak resident memory of the benchmark process: {peak_mb:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps, "size": args.size, "rows": rows, "peak_rss_mb": peak_mb}, f, indent=1)


if __name__ == "__main__":
    main()
