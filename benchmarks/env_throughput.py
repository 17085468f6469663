"""Env steps per second of every task's base ID next to ManiSkill's PickCube-v1 (its defaults and our 500/5 Hz
rates), each env in its own fresh process, in alternating rounds (see vla_ood_envs/bench.py). `vla-ood bench` runs
this together with the image conditions, torch threads, vector envs and memory, and writes the tables to files.

    python benchmarks/env_throughput.py                       # every mode, 7 rounds of 60 steps
    python benchmarks/env_throughput.py --modes "rgb 224" --rounds 5 --steps 40
    python benchmarks/env_throughput.py --ids VLAPick-v0 --vec 2
    python benchmarks/env_throughput.py --ids VLAPick-v0 --modes "rgb 224" --compare /tmp/old   # before/after

--compare DIR adds each env built from DIR, another checkout of the package (e.g. `git worktree add /tmp/old
<commit>`), to every table: before and after in the same alternating rounds.
"""

from __future__ import annotations

import argparse

from vla_ood_envs.tools.bench import (MODES, ROUNDS, STEPS, _env_table_md, env_ids, env_tables, machine,
                                vector_throughput)
from vla_ood_envs.runtime.device import env_worker_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--ids", nargs="*", default=None, help=f"env IDs (default: {', '.join(env_ids())})")
    parser.add_argument("--modes", nargs="*", default=None, help=f"subset of: {', '.join(m.label for m in MODES)}")
    parser.add_argument("--vec", type=int, default=0, help="also N envs as N processes (rgb 224)")
    parser.add_argument("--compare", default=None, help="another checkout: its envs join every table")
    args = parser.parse_args()
    env_worker_defaults()
    ids = tuple(args.ids) if args.ids else env_ids()
    modes = tuple(m for m in MODES if args.modes is None or m.label in args.modes)
    tables = env_tables(ids, modes, args.rounds, args.steps, compare_tree=args.compare)
    m = machine()
    print(f"\n{m['cpu']}, {m['cores']} cores, rendering on {m['render_on']} ({m['render_device']}), robot meshes "
          f"{m['robot_meshes']}\n")
    for t in tables:
        print("\n".join(_env_table_md(t)) + "\n")
    if args.vec > 1:
        for r in vector_throughput(args.rounds * max(1, args.steps // 3), num_envs=args.vec, ids=ids,
                                   rounds=args.rounds):
            print(f"{r['env']} x{r['num_envs']} processes: {r['ours']:.1f} env steps/s, PickCube-v1 500/5 Hz "
                  f"{r['reference']:.1f}: {r['ratio']:.2f}x (load {r['load']['start'][:1]} -> {r['load']['end'][:1]})")


if __name__ == "__main__":
    main()
