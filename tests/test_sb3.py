"""Stable-Baselines3 trains on the state observation without complaint."""

import gymnasium as gym
from stable_baselines3 import PPO


def test_ppo_runs_a_few_hundred_steps():
    env = gym.make("VLAPick-v0", obs_mode="state", max_episode_steps=40, action_out_of_bounds="clip")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=192)
    assert model.num_timesteps >= 192
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action) or action.shape == (7,)
    env.close()
