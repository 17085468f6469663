"""Evaluation episodes per minute through the suite (full 80-step episodes, scene rebuilt per episode), per policy
and number of worker processes.

    python benchmarks/eval_throughput.py [--policy scripted CKPT ...] [--workers 1 2] [--episodes 12] [--size 128]
                                         [--condition IND]

"with start-up" counts from the call to the last episode (worker spawn, imports, first env build and its first
frame); "steady" counts from the first finished episode to the last (episodes - 1 of them), the rate a long run
approaches.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from vla_ood_envs.evaluation import run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", nargs="+", default=["scripted"],
                        help="scripted, random or checkpoint paths (e.g. a tiny VLA folder)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--condition", default="IND")
    parser.add_argument("--task", default="VLAPick")
    args = parser.parse_args()
    rows = []
    for policy in args.policy:
        for workers in args.workers:
            finished: list[float] = []
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                path = run_suite(policy, task=args.task, episodes=args.episodes, seeds=1, out_dir=out,
                                 workers=workers, conditions=[args.condition], camera_size=args.size, strips=0,
                                 progress=False, on_result=lambda rec: finished.append(time.perf_counter()))
                total = time.perf_counter() - t0
                lines = path.read_text().splitlines()
            steady = (len(finished) - 1) / (finished[-1] - finished[0]) * 60 if len(finished) > 1 else float("nan")
            success = sum('"success":true' in line for line in lines) / max(1, len(lines))
            rows.append((policy, workers, args.episodes / total * 60, steady, success))
    print(f"\n{args.episodes} episodes of {args.task} {args.condition} at {args.size}x{args.size}, "
          f"{os.cpu_count()} cores\n")
    print("| policy | workers | episodes/min (with start-up) | episodes/min (steady) | success |")
    print("|---|---|---|---|---|")
    for policy, w, rate, steady, success in rows:
        print(f"| {policy} | {w} | {rate:.1f} | {steady:.1f} | {success:.0%} |")


if __name__ == "__main__":
    main()
