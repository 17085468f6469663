"""Train Stable-Baselines3's PPO on the low-dimensional state observation (no cameras), then evaluate it.

    pip install -e .[sb3]
    python examples/sb3_ppo_state.py --timesteps 20000

`obs_mode="state"` gives ManiSkill's flat float32 state vector; `action_out_of_bounds="clip"` clips PPO's
Gaussian samples to the action bounds instead of refusing them. A few thousand steps will not solve the task:
this shows the wiring (the staged reward rises first with grasps).
"""

import argparse

import gymnasium as gym
import numpy as np

import vla_ood_envs  # noqa: F401  (registers the IDs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="VLAPick-v0")
    parser.add_argument("--timesteps", type=int, default=20000)
    parser.add_argument("--episode-steps", type=int, default=80)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="64 training steps, one 8-step evaluation episode")
    args = parser.parse_args(argv)
    try:
        from stable_baselines3 import PPO
    except ImportError:
        raise SystemExit("this example needs stable-baselines3: pip install -e .[sb3]") from None
    n_steps = 64
    if args.tiny:
        args.timesteps, args.episode_steps, args.eval_episodes, n_steps = 64, 8, 1, 32

    env = gym.make(args.env, obs_mode="state", action_out_of_bounds="clip", max_episode_steps=args.episode_steps)
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=32, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=args.timesteps)
    print(f"trained {model.num_timesteps} steps on {args.env} (state {env.observation_space.shape})")
    returns, successes = [], []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=1000 + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        successes.append(bool(info["success"]))
    print(f"evaluation: mean return {np.mean(returns):.3f}, success {sum(successes)}/{len(successes)}")
    env.close()


if __name__ == "__main__":
    main()
