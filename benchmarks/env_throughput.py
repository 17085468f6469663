"""Env steps per second of VLAPick-v0 next to ManiSkill's PickCube-v1, measured in the same run.

Both envs run at the same physics and control rates (VLAPick's defaults: 500 Hz physics, 5 Hz control) and the
same camera size, with one env on this machine's render device. PickCube is ManiSkill's own reference task.
`vla-ood bench` runs this together with the image-perturbation costs and writes the tables to files.

    python benchmarks/env_throughput.py            # about 3 minutes on 2 CPU cores
    python benchmarks/env_throughput.py --quick    # fewer steps, under a minute
"""

from __future__ import annotations

import argparse
import resource

from vla_ood_envs.bench import ROUNDS, env_throughput, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    steps = args.steps or (25 if args.quick else 150)
    rows = env_throughput(steps, args.size)
    m = machine()
    print(f"\nenv steps/s, 1 env, physics 500 Hz / control 5 Hz, median of {ROUNDS} alternating rounds, {steps} steps "
          f"each ({m['cpu']}, {m['cores']} cores, render device {m['render_device']})\n")
    print("| mode | VLAPick-v0 | PickCube-v1 | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['VLAPick-v0']:.1f} | {r['PickCube-v1']:.1f} | {r['ratio']:.2f}x |")
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
