"""Cost of each registered condition relative to the bare VLAPick-v0, at 224x224 RGB on this machine.

For every ID the env is stepped in alternating rounds against a bare VLAPick-v0 built with the same internal
observation mode (image perturbations render segmentation, so their reference renders it too): the ratio is the
cost of the perturbation itself. The cost of the extra segmentation pass is shown separately.

    python benchmarks/wrapper_overhead.py [--steps 60] [--size 224] [--ids VLAPick-DynamicNoiseStrong-v0 ...]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import vla_ood_envs  # noqa: F401
from vla_ood_envs.registry import DECLARATIONS, declaration, wrapper_class

from vla_ood_envs.tools.bench import ROUNDS, measure_pair, perturbation_ms

ACTION = np.array([0.01, 0.0, -0.005, 0, 0, 0, 1.0], dtype=np.float32)


def _pair(a, b, steps: int) -> tuple[float, float]:
    return measure_pair(a, lambda: ACTION, b, lambda: ACTION, steps, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--ids", nargs="*", default=[d.env_id for d in DECLARATIONS[1:]])
    args = parser.parse_args()
    size = dict(camera_width=args.size, camera_height=args.size)

    rows = []
    bare_rgb = gym.make("VLAPick-v0", **size)
    bare_seg = gym.make("VLAPick-v0", obs_mode="rgb+segmentation", **size)
    rgb_sps, seg_sps = _pair(bare_rgb, bare_seg, args.steps)
    print(f"bare VLAPick-v0: rgb {rgb_sps:.1f} steps/s, rgb+segmentation {seg_sps:.1f} steps/s "
          f"(segmentation pass costs {100 * (1 - seg_sps / rgb_sps):+.1f}%)")
    for env_id in args.ids:
        decl = declaration(env_id)
        needs_seg = any(wrapper_class(n).requires_segmentation(**kw) for n, kw in decl.wrappers)
        ref = bare_seg if needs_seg else bare_rgb
        env = gym.make(env_id, **size)
        ref_sps, sps = _pair(ref, env, args.steps)
        ms = perturbation_ms(env)
        env.close()
        layer = ", ".join(wrapper_class(n).layer if n != "UnseenTable" else "scene" for n, _ in decl.wrappers)
        rows.append((env_id, layer, sps, ref_sps, needs_seg, ms))
    print(f"\nsteps/s at {args.size}x{args.size} rgb, 1 env, median of {ROUNDS} alternating rounds\n")
    print("| ID | layer | steps/s | reference steps/s | step-time overhead | image perturbation per frame |")
    print("|---|---|---|---|---|---|")
    for env_id, layer, sps, ref_sps, needs_seg, ms in rows:
        ref = "bare rgb+seg" if needs_seg else "bare rgb"
        direct = "-" if ms is None else f"{ms:.2f} ms ({100 * ms / 1000 * ref_sps:.1f}% of a step)"
        print(f"| {env_id} | {layer} | {sps:.1f} | {ref_sps:.1f} ({ref}) | {100 * (ref_sps / sps - 1):+.1f}% "
              f"| {direct} |")


if __name__ == "__main__":
    main()
