"""Env steps per second of every task's base ID next to ManiSkill's PickCube-v1, measured in the same run.

Both envs run at the same physics and control rates (500 Hz physics, 5 Hz control) and the same camera size,
with one env on this machine's render device, or N envs as N processes (--vec N). PickCube is ManiSkill's own
reference task. `vla-ood bench` runs this together with memory and the image-perturbation costs and writes the
tables to files.

    python benchmarks/env_throughput.py            # a few minutes on 2 CPU cores
    python benchmarks/env_throughput.py --quick    # fewer steps and modes
    python benchmarks/env_throughput.py --ids VLAPick-v0 --vec 2
"""

from __future__ import annotations

import argparse
import resource

from vla_ood_envs.tools.bench import MODES, REFERENCE, ROUNDS, env_ids, env_throughput, machine, vector_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--ids", nargs="*", default=None, help=f"env IDs (default: {', '.join(env_ids())})")
    parser.add_argument("--modes", nargs="*", default=None, help=f"subset of: {', '.join(m.label for m in MODES)}")
    parser.add_argument("--vec", type=int, default=0, help="also N envs as N processes (rgb 224)")
    args = parser.parse_args()
    steps = args.steps or (25 if args.quick else 150)
    ids = tuple(args.ids) if args.ids else env_ids()
    modes = tuple(m for m in MODES if args.modes is None or m.label in args.modes)
    rows = env_throughput(steps, quick=args.quick, ids=ids, modes=modes)
    if args.vec > 1:
        rows += vector_throughput(max(10, steps // 2), num_envs=args.vec, ids=ids)
    m = machine()
    print(f"\nenv steps/s, physics 500 Hz / control 5 Hz, median of {ROUNDS} alternating rounds "
          f"({m['cpu']}, {m['cores']} cores, render device {m['render_device']}, robot meshes {m['robot_meshes']})\n")
    print(f"| env | mode | envs | env steps/s | {REFERENCE} | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['env']} | {r['mode']} | {r['num_envs']} | {r['ours']:.1f} | {r['reference']:.1f} | "
              f"{r['ratio']:.2f}x |")
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
