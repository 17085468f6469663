"""Success of a policy checkpoint on an env, through the one rollout loop (greedy by default).

    python benchmarks/policy_success.py CHECKPOINT [--env VLAPick-v0] [--seeds 100000 64] [--size 128]
        [--workers 2] [--temperature T] [--json OUT.json]

Seeds 100000.. lie outside the demo generator's seeds (0..), so the IND number is on unseen episodes of the
training distribution. Success is read at the last step (the study's rule); "ever" counts episodes that succeeded
at some step, and grasp counts episodes that grasped the object at some step.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import vla_ood_envs  # noqa: F401  (registers the IDs)
from vla_ood_envs.policies import load_policy
from vla_ood_envs.rollout import run_episodes


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--env", default="VLAPick-v0")
    parser.add_argument("--seeds", type=int, nargs=2, default=(100000, 64), metavar=("FIRST", "COUNT"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1, help="make_vec worker processes (1: a single env)")
    parser.add_argument("--temperature", type=float, default=None, help="sample at this temperature (default greedy)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the policy")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_policy(args.checkpoint, device="cpu")
    policy.eval()
    greedy = args.temperature is None
    if not greedy:
        policy.temperature = args.temperature
    kwargs = dict(camera_width=args.size, camera_height=args.size, include_proprio=policy.needs_proprio)
    env = gym.make_vec(args.env, num_envs=args.workers, vectorization_mode="async", **kwargs) if args.workers > 1 \
        else gym.make(args.env, **kwargs)
    seeds = list(range(args.seeds[0], args.seeds[0] + args.seeds[1]))
    t0 = time.perf_counter()
    trajs = run_episodes(env, policy, seeds, greedy=greedy, record_images=False)
    seconds = time.perf_counter() - t0
    env.close()
    n = len(trajs)
    succ = sum(t.success for t in trajs)
    ever = sum(bool(t.flags.get("success", np.zeros(1)).any()) for t in trajs)
    grasp = sum(bool(t.flags.get("grasped_ever", t.flags.get("is_grasped", np.zeros(1))).any()) for t in trajs)
    steps = sum(len(t) for t in trajs)
    lo, hi = wilson(succ, n)
    result = {"checkpoint": args.checkpoint, "env": args.env, "episodes": n, "first_seed": seeds[0],
              "success": succ, "success_rate": succ / n, "wilson95": [round(lo, 3), round(hi, 3)],
              "ever_success": ever, "grasped": grasp, "steps": steps, "seconds": round(seconds, 1),
              "steps_per_s": round(steps / seconds, 1), "greedy": greedy, "temperature": args.temperature,
              "size": args.size, "successful_seeds": [t.seed for t in trajs if t.success]}
    print(f"{args.env}: success {succ}/{n} = {succ / n:.1%} (95% Wilson {lo:.1%}-{hi:.1%}), succeeded at some "
          f"step {ever}/{n}, grasped {grasp}/{n}; {steps} steps in {seconds:.0f} s ({steps / seconds:.1f} steps/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
