"""Stable-Baselines3's MultiInputPolicy on the image observation, through SB3Observation (the README's recipe)."""

import gymnasium as gym
import pytest
from stable_baselines3 import PPO

from vla_ood_envs import ConfigError
from vla_ood_envs.wrappers import SB3Observation

CAMERA = dict(camera_width=40, camera_height=40)  # NatureCNN needs at least 36x36


@pytest.fixture(scope="module")
def pixel_env():
    env = gym.make("VLAPick-v0", include_proprio=True, action_out_of_bounds="clip", **CAMERA)
    yield env
    env.close()


def test_ppo_multi_input_policy_learns_a_few_steps_on_pixels(pixel_env):
    env = SB3Observation(pixel_env)
    assert set(env.observation_space.spaces) == {"image", "proprio"}
    model = PPO("MultiInputPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=8)
    assert model.num_timesteps >= 8
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (7,)


def test_instruction_as_bytes(pixel_env):
    env = SB3Observation(pixel_env, instruction="bytes")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    m = info["manifest"]
    assert bytes(obs["instruction_bytes"]).rstrip(b"\0").decode() == f"put {m['object']} on {m['receptacle']}"
    model = PPO("MultiInputPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=8)


def test_bad_uses_are_explained(pixel_env, state_env):
    with pytest.raises(ConfigError, match="instruction='words'.*'drop', 'bytes'"):
        SB3Observation(pixel_env, instruction="words")
    with pytest.raises(ConfigError, match="state observations work with SB3 as they are"):
        SB3Observation(state_env)
