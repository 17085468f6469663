"""Cost of each registered condition relative to its bare task, at 224x224 RGB on this machine.

Every condition ID is stepped in its own fresh process, in alternating rounds with the bare task's rgb env and
the bare task with the segmentation pass (rgb+segmentation), so that the table splits a condition's total cost
into the segmentation pass it needs and the rest (vla_ood_envs/bench.py:compare).

    python benchmarks/wrapper_overhead.py [--rounds 5] [--steps 40] [--size 224]
                                          [--ids VLAPick-DynamicNoiseStrong-v0 ...]
"""

from __future__ import annotations

import argparse

import vla_ood_envs  # noqa: F401
from vla_ood_envs.tools.bench import EnvSpec, compare, ratio
from vla_ood_envs.registry import DECLARATIONS, declaration, wrapper_class
from vla_ood_envs.runtime.device import env_worker_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--ids", nargs="*", default=[d.env_id for d in DECLARATIONS if d.wrappers])
    args = parser.parse_args()
    env_worker_defaults()
    by_task: dict[str, list[str]] = {}
    for env_id in args.ids:
        by_task.setdefault(f"{declaration(env_id).task}-v0", []).append(env_id)
    for bare, ids in by_task.items():
        specs = [EnvSpec(bare, "rgb", args.size, args.size), EnvSpec(bare, "rgb+segmentation", args.size, args.size)]
        specs += [EnvSpec(i, "rgb", args.size, args.size) for i in ids if i != bare]
        t = compare(specs, args.rounds, args.steps, print)
        rgb, seg = t["rows"][:2]
        print(f"\n{bare}, {args.rounds} rounds of {args.steps} steps, load average {t['load']['start'][:1]} -> "
              f"{t['load']['end'][:1]}. Extra step time over the bare rgb step (per-round range):\n")
        print("| ID | layer | steps/s | extra wall time | extra CPU time |")
        print("|---|---|---|---|---|")
        for row in t["rows"][1:]:
            extra = ratio(rgb, row)
            decl = declaration(row["env_id"])
            layer = ", ".join(wrapper_class(n).layer if n != "UnseenTable" else "scene" for n, _ in decl.wrappers)
            label = row["env"] if row is not seg else f"{bare} rgb+segmentation"
            cpu = row["cpu_ms"]["median"] / rgb["cpu_ms"]["median"] - 1
            print(f"| {label} | {layer or '-'} | {row['steps_per_s']['median']:.1f} | "
                  f"{100 * (extra['median'] - 1):+.1f}% ({100 * (extra['min'] - 1):+.1f} to "
                  f"{100 * (extra['max'] - 1):+.1f}) | {100 * cpu:+.1f}% |")


if __name__ == "__main__":
    main()
