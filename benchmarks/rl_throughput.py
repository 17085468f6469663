"""RL throughput on this machine: env steps/s and optimizer updates/min of PPO with a small policy, next to the
raw env steps/s of the same vector env driven by a zero policy, in the same run (the trainer's overhead ratio).

    python benchmarks/rl_throughput.py [--num-envs 2] [--size 128] [--iterations 3] [--policy CKPT]

Both measurements use one `gym.make_vec` env (spawned worker processes, built once; its start-up is not timed)
and full 80-step episodes. PPO runs with the study's constants except the batch: 8 x 5 micro-batches per
optimizer step, so each iteration of num_envs episodes makes several updates. The policy is the checkpoint
given with --policy (e.g. an SFT tiny VLA), or else the small conv policy of the tests (tests/rl_policy.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_ood_envs.policies.base import Policy, PolicyOutput, check_inputs
from vla_ood_envs.registry import make_vector_env
from vla_ood_envs.rollout import collect
from vla_ood_envs.training.ppo import PPOConfig, train
from vla_ood_envs.training.runs import read_metrics


class ZeroPolicy(Policy):
    """Zero motion with the gripper open: the cheapest policy (measures the env alone)."""

    name = "zero"

    def act(self, images, instructions, proprio=None, *, greedy=False):
        b = check_inputs(images, instructions, proprio)
        a = np.zeros((b, 7), np.float32)
        a[:, 6] = 1.0
        return PolicyOutput(actions=a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="VLAPick-v0")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations (num_envs episodes each)")
    parser.add_argument("--raw-batches", type=int, default=2, help="zero-policy collects of num_envs episodes")
    parser.add_argument("--policy", default=None, help="checkpoint folder for load_policy (default: tests' policy)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the trainer process")
    args = parser.parse_args()

    if args.policy:
        from vla_ood_envs.policies import load_policy

        make_policy = lambda: load_policy(args.policy)  # noqa: E731
        policy_name = args.policy
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from rl_policy import ConvTokenPolicy

        make_policy = ConvTokenPolicy
        policy_name = "tests/rl_policy.py ConvTokenPolicy (16x16 conv, 7x256 head)"

    env = make_vector_env(args.env, args.num_envs, camera_width=args.size, camera_height=args.size,
                          max_episode_steps=80)
    try:
        collect(env, ZeroPolicy(), list(range(args.num_envs)), max_steps=2, record_images=False)  # warm-up
        t = time.perf_counter()
        steps = 0
        for b in range(args.raw_batches):
            trajs = collect(env, ZeroPolicy(), [100 + b * args.num_envs + i for i in range(args.num_envs)],
                            record_images=False)
            steps += sum(len(tr) for tr in trajs)
        raw = steps / (time.perf_counter() - t)

        with tempfile.TemporaryDirectory() as out:
            cfg = PPOConfig(out=out, env_id=args.env, num_envs=args.num_envs, image_size=args.size,
                            iterations=args.iterations, grad_accum_steps=5, eval_every=0, progress=False,
                            tensorboard=False, checkpoint_every=10**6, torch_threads=args.threads)
            t = time.perf_counter()
            train(cfg, make_policy(), env=env)
            wall = time.perf_counter() - t
            records = read_metrics(out)
    finally:
        env.close()
    ppo_steps = records[-1]["env_steps"]
    updates = sum(r["optimizer_steps"] for r in records)
    collect_s = sum(r["collect_time_s"] for r in records)
    update_s = sum(r["update_time_s"] for r in records)
    result = {
        "env": args.env, "num_envs": args.num_envs, "size": args.size, "policy": policy_name,
        "raw_env_steps_per_s": round(raw, 2),
        "ppo_env_steps_per_s_collecting": round(ppo_steps / collect_s, 2),
        "ppo_env_steps_per_s_overall": round(ppo_steps / wall, 2),
        "ppo_updates_per_min": round(60 * updates / wall, 2),
        "overhead_ratio_collecting": round(raw / (ppo_steps / collect_s), 3),
        "overhead_ratio_overall": round(raw / (ppo_steps / wall), 3),
        "ppo_iterations": len(records), "ppo_env_steps": ppo_steps, "ppo_wall_s": round(wall, 1),
        "collect_s": round(collect_s, 1), "update_s": round(update_s, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
