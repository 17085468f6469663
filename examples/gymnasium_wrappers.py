"""Stack the package's envs with Gymnasium's own wrappers: a shorter time limit, episode statistics, a smaller
image (a resize through TransformObservation) and only the keys a model reads (FilterObservation).

    python examples/gymnasium_wrappers.py --env VLAPick-v0 --size 96 --max-steps 40

The envs are standard Gymnasium envs (numpy observations, a Dict observation space), so any wrapper that works
on a Dict space works here; the OOD perturbations are wrappers too and stack in the same way.
"""

import argparse

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FilterObservation, RecordEpisodeStatistics, TimeLimit, TransformObservation
from PIL import Image

import vla_ood_envs  # noqa: F401  (registers the IDs)


def resize_image(env: gym.Env, size: int) -> gym.Env:
    """obs["image"] resized to size x size (bilinear), with the matching observation space."""
    space = dict(env.observation_space.spaces)
    space["image"] = spaces.Box(0, 255, (size, size, 3), np.uint8)

    def resize(obs: dict) -> dict:
        small = Image.fromarray(obs["image"]).resize((size, size), Image.BILINEAR)
        return {**obs, "image": np.asarray(small)}

    return TransformObservation(env, resize, spaces.Dict(space))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="VLAPick-v0")
    parser.add_argument("--size", type=int, default=96, help="image size after the resize (px)")
    parser.add_argument("--max-steps", type=int, default=40, help="TimeLimit (the task's own limit is 80)")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="32 px renders, 16 px images, 3-step episodes")
    args = parser.parse_args(argv)
    camera = 224
    if args.tiny:
        camera, args.size, args.max_steps, args.episodes = 32, 16, 3, 1

    env = gym.make(args.env, camera_width=camera, camera_height=camera, include_proprio=True)
    env = FilterObservation(env, ["image", "instruction"])  # a model that sees no proprioception
    env = resize_image(env, args.size)
    env = TimeLimit(env, max_episode_steps=args.max_steps)
    env = RecordEpisodeStatistics(env)
    print("observation space:", env.observation_space)
    rng = np.random.default_rng(0)
    try:
        for episode in range(args.episodes):
            obs, info = env.reset(seed=episode)
            done = False
            while not done:
                action = (rng.uniform(env.action_space.low, env.action_space.high) * 0.3).astype(np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            stats = info["episode"]
            print(f"episode {episode}: {obs['instruction']!r}, image {obs['image'].shape}, "
                  f"return {float(stats['r']):.3f} over {int(stats['l'])} steps")
    finally:
        env.close()


if __name__ == "__main__":
    main()
