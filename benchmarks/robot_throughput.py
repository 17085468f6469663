"""Steps/s of VLAPick-v0 on each robot, next to ManiSkill's PickCube-v1 measured in the same run (same 500 Hz
physics / 5 Hz control and camera size), one env each, median of alternating rounds.

The WidowX row needs ManiSkill's widowx250s asset (`python -m mani_skill.utils.download_asset widowx250s`);
robots whose assets are missing are listed as skipped.

    python benchmarks/robot_throughput.py [--steps 60] [--size 224]
"""

from __future__ import annotations

import argparse

import vla_ood_envs  # noqa: F401
from vla_ood_envs.tools.bench import ROUNDS, _uniform_actions, make_ours, make_reference, measure_pair
from vla_ood_envs.runtime.device import env_worker_defaults
from vla_ood_envs.tasks.robots import ROBOTS, RobotError, require_assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    env_worker_defaults()  # torch on one thread while lavapipe renders, as in `vla-ood bench`

    rows, skipped = [], []
    for spec in ROBOTS.values():
        if "VLAPick" not in spec.tasks:
            continue
        try:
            require_assets(spec)
        except RobotError as exc:
            skipped.append(f"{spec.label}: {exc}")
            continue
        for label, obs_mode in (("state", "state"), (f"rgb {args.size}", "rgb")):
            ours = make_ours("VLAPick-v0", obs_mode, args.size, args.size, robot_uids=spec.uid)
            ref = make_reference(obs_mode, args.size, args.size)
            sps, ref_sps = measure_pair(ours, _uniform_actions(ours.action_space), ref,
                                        _uniform_actions(ref.action_space, seed=1), args.steps)
            ours.close()
            ref.close()
            rows.append((spec.label, label, sps, ref_sps))
    print(f"\nVLAPick-v0 steps/s per robot, 1 env, {args.steps} steps, median of {ROUNDS} alternating rounds\n")
    print("| robot | mode | VLAPick-v0 steps/s | PickCube-v1 steps/s | ratio |")
    print("|---|---|---|---|---|")
    for robot, mode, sps, ref_sps in rows:
        print(f"| {robot} | {mode} | {sps:.1f} | {ref_sps:.1f} | {sps / ref_sps:.2f}x |")
    for line in skipped:
        print(f"\nskipped {line}")


if __name__ == "__main__":
    main()
