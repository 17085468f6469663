"""Make an out-of-distribution env, play one episode with random actions, print what it drew (the manifest).

    python examples/make_ood_env.py --env VLAPick-UnseenObjects-v0
    python examples/make_ood_env.py --env VLAPick-DynamicNoiseStrong-v0 --severity 0.2

`vla-ood list` prints every ID. The manifest is the episode's full factor record: which object, receptacle, table,
instruction template, cells, robot start offset and which pools (training or held-out) they came from.
"""

import argparse
import json

import gymnasium as gym
import numpy as np

import vla_ood_envs  # noqa: F401  (registers the IDs)
from vla_ood_envs.registry import severity_of


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="VLAPick-UnseenObjects-v0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224, help="camera width and height (px)")
    parser.add_argument("--steps", type=int, default=10, help="random actions to play after the reset")
    parser.add_argument("--severity", type=float, default=None, help="another strength for IDs that have one")
    parser.add_argument("--tiny", action="store_true", help="32 px and 2 steps (what the tests run)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.steps = 32, 2

    kwargs = {} if args.severity is None else {"severity": args.severity}
    env = gym.make(args.env, camera_width=args.size, camera_height=args.size, **kwargs)
    try:
        obs, info = env.reset(seed=args.seed)
        print(f"{args.env}: image {obs['image'].shape} {obs['image'].dtype}, instruction {obs['instruction']!r}")
        if kwargs:
            param, default, (low, high) = severity_of(args.env)
            print(f"severity {param}={args.severity} (the ID's own: {default}; range {low}-{high})")
        print("manifest:", json.dumps(info["manifest"], indent=1))
        rng = np.random.default_rng(args.seed)
        low, high = env.action_space.low, env.action_space.high
        for _ in range(args.steps):
            obs, reward, terminated, truncated, info = env.step((rng.uniform(low, high) * 0.3).astype(np.float32))
        print(f"after {args.steps} steps: reward {reward:.3f}, success {info['success']}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
