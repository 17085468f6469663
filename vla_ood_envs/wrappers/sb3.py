"""Observations Stable-Baselines3's `MultiInputPolicy` can take: pixels without the Text instruction.

SB3 builds a feature extractor per entry of a Dict observation and knows Box, Discrete, MultiDiscrete and
MultiBinary spaces only; the VLA envs' `instruction` is a `gymnasium.spaces.Text`, on which SB3 fails with
"'NoneType' object is not iterable". `SB3Observation` drops it (one fixed task, or an instruction the image
implies) or encodes it as a fixed-length vector of UTF-8 bytes (a policy that needs the words, e.g. with its own
features extractor). The image stays an (H, W, 3) uint8 Box, which SB3 recognises as an image: it transposes it
to channels-first and feeds it to its NatureCNN, whose three convolutions need at least 36x36 pixels.

    env = SB3Observation(gym.make("VLAPick-v0", camera_width=64, camera_height=64,
                                  action_out_of_bounds="clip"))
    PPO("MultiInputPolicy", env).learn(10_000)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import ConfigError
from .observation import INSTRUCTION_MAX_LENGTH

INSTRUCTION_MODES = ("drop", "bytes")


class SB3Observation(gym.ObservationWrapper):
    """A single-env VLA observation without Text spaces.

    instruction: "drop" removes `instruction`; "bytes" replaces it with `instruction_bytes`, uint8
        (INSTRUCTION_MAX_LENGTH,) = the UTF-8 bytes of the instruction followed by zeros (decode with
        `bytes(x).rstrip(b"\\0").decode()`).
    Every other entry (image, proprio, segmentation) passes through unchanged. For a `num_envs=1` env from
    `gymnasium.make`; SB3 vectorises it itself.
    """

    def __init__(self, env: gym.Env, instruction: str = "drop"):
        super().__init__(env)
        if instruction not in INSTRUCTION_MODES:
            raise ConfigError(f"instruction={instruction!r} is not supported; instruction must be one of "
                              f"{', '.join(repr(m) for m in INSTRUCTION_MODES)}")
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or "instruction" not in space.spaces:
            raise ConfigError(f"SB3Observation needs a VLA env with an image observation (obs_mode 'rgb' or "
                              f"'rgb+segmentation'), got observation space {space}; state observations work with "
                              f"SB3 as they are")
        self.instruction = instruction
        entries = {k: v for k, v in space.spaces.items() if k != "instruction"}
        if instruction == "bytes":
            entries["instruction_bytes"] = spaces.Box(0, 255, (INSTRUCTION_MAX_LENGTH,), np.uint8)
        self.observation_space = spaces.Dict(entries)

    def observation(self, obs: dict) -> dict:
        out = {k: v for k, v in obs.items() if k != "instruction"}
        if self.instruction == "bytes":
            encoded = np.zeros(INSTRUCTION_MAX_LENGTH, np.uint8)
            raw = obs["instruction"].encode("utf-8")[:INSTRUCTION_MAX_LENGTH]
            encoded[: len(raw)] = np.frombuffer(raw, np.uint8)
            out["instruction_bytes"] = encoded
        return out
