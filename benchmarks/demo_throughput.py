"""Successful demonstrations per minute (and per core) at 224x224, with the memory peak.

    python benchmarks/demo_throughput.py [--env VLAPick-v0 VLAOpen-v0] [--episodes 20] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from vla_ood_envs.demos import GenerateConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["VLAPick-v0", "VLAOpen-v0"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    rows = []
    for env_id in args.env:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as out:
                cfg = GenerateConfig(env_id=env_id, out=out, episodes=args.episodes, workers=workers,
                                     image_height=args.size, image_width=args.size)
                t = time.perf_counter()
                index = generate(cfg, progress=False)
                minutes = (time.perf_counter() - t) / 60
            rows.append((env_id, workers, args.episodes / minutes, args.episodes / minutes / workers,
                         index["expert_success_rate"], index["num_transitions"] / args.episodes))
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n{args.episodes} successful demos per run at {args.size}x{args.size} (includes env start-up)\n")
    print("| env | workers | demos/min | demos/min/worker | expert success | steps/demo |")
    print("|---|---|---|---|---|---|")
    for env_id, w, rate, per_core, success, steps in rows:
        print(f"| {env_id} | {w} | {rate:.1f} | {per_core:.1f} | {success:.0%} | {steps:.0f} |")
    print(f"\npeak resident memory: driver {self_mb:.0f} MB, largest worker {child_mb:.0f} MB")


if __name__ == "__main__":
    main()
