"""Run your own policy on several envs at once: `gym.make_vec` (one process per env) and the package's rollout
loop, `vla_ood_envs.rollout.collect`.

    python examples/vector_rollout.py --num-envs 2 --env VLAPick-UnseenInstructions-v0

A policy follows `vla_ood_envs.policies.Policy`: `act(images (B, H, W, 3) uint8, instructions (B str))` returns
`PolicyOutput(actions=(B, 7) float32)`. The loop resets every sub-env with its seed, plays one episode in each and
returns one `Trajectory` per env (frames, actions, rewards, success flags, the manifest). The policy here is a
toy function of the image (it will not solve the task); put your VLA in its place.
"""

import argparse

import gymnasium as gym
import numpy as np

import vla_ood_envs  # noqa: F401  (registers the IDs)
from vla_ood_envs import spec
from vla_ood_envs.policies import Policy, PolicyOutput
from vla_ood_envs.policies.base import check_inputs
from vla_ood_envs.rollout import collect


class BrightestColumnPolicy(Policy):
    """A toy image policy: a small sideways step whose sign is the side of the image its brightest column is on,
    gripper open."""

    name = "brightest-column"

    def act(self, images, instructions, proprio=None, *, greedy=False) -> PolicyOutput:
        batch = check_inputs(images, instructions, proprio)
        images = np.asarray(images, dtype=np.float32)
        column = images.mean(axis=(1, 3)).argmax(axis=1)  # (B,)
        actions = np.zeros((batch, spec.ACTION_DIM), np.float32)
        actions[:, 1] = 0.01 * np.sign(images.shape[2] / 2 - column)
        actions[:, spec.GRIPPER_INDEX] = spec.GRIPPER_OPEN
        return PolicyOutput(actions=actions)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="VLAPick-UnseenInstructions-v0")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=None, help="steps per episode (default: the task's 80)")
    parser.add_argument("--tiny", action="store_true", help="2 envs, 32 px, 3 steps (what the tests run)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.num_envs, args.size, args.steps = 2, 32, 3

    env = gym.make_vec(args.env, num_envs=args.num_envs, camera_width=args.size, camera_height=args.size)
    try:
        trajectories = collect(env, BrightestColumnPolicy(), seeds=list(range(args.num_envs)), max_steps=args.steps)
    finally:
        env.close()
    for t in trajectories:
        print(f"seed {t.seed}: {t.instruction!r} ({t.manifest['object']} -> {t.manifest['receptacle']}), "
              f"{len(t)} steps, frames {t.images.shape}, return {t.episode_return:.3f}, success {t.success}")


if __name__ == "__main__":
    main()
