"""Observation layout of the VLA envs, and the single-env numpy view.

`VLAObservation` turns ManiSkill's nested observation into what a VLA consumes, batched on the env's device:

    {"image": uint8 (N, H, W, 3), "instruction": list[str] (N),
     "segmentation": int16 (N, H, W) (only with obs_mode "rgb+segmentation"),
     "proprio": float32 (N, 8) (only with include_proprio=True: `vla_ood_envs.spec.PROPRIO_LAYOUT`)}

State modes ("state") pass ManiSkill's flat state vector through unchanged. `SingleEnvNumpy` is the last
wrapper of a `num_envs=1` env: numpy arrays without the batch axis, Python scalars, and a Gymnasium Dict
observation space, so the env passes `gymnasium.utils.env_checker.check_env` and works with Stable-Baselines3.
"""

from __future__ import annotations

import string

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from mani_skill.utils import common

from ..spec import PROPRIO_DIM
from ..runtime.device import env_thread_scope

INSTRUCTION_MAX_LENGTH = 256
INSTRUCTION_CHARSET = frozenset(string.printable)


def _instruction_space() -> spaces.Text:
    return spaces.Text(max_length=INSTRUCTION_MAX_LENGTH, min_length=1, charset=INSTRUCTION_CHARSET)


class VLAObservation(gym.ObservationWrapper):
    """Image + instruction (+ segmentation, + proprioception) observations for batched VLA envs."""

    def __init__(self, env: gym.Env, camera: str = "base_camera", include_proprio: bool = False,
                 expose_segmentation: bool = True):
        super().__init__(env)
        base = env.unwrapped
        self.camera = camera
        self.include_proprio = include_proprio
        struct = base.obs_mode_struct
        self.visual = struct.visual.rgb
        # The latest segmentation stays available to image perturbations (`last_segmentation`) even when the
        # user did not ask to see it in the observation.
        self.last_segmentation = None
        self.with_segmentation = struct.visual.segmentation and expose_segmentation
        if not self.visual:
            self.single_observation_space = base.single_observation_space
            self.observation_space = base.observation_space
            return
        h, w = base.camera_height, base.camera_width
        single = {"image": spaces.Box(0, 255, (h, w, 3), np.uint8), "instruction": _instruction_space()}
        if self.with_segmentation:
            single["segmentation"] = spaces.Box(np.iinfo(np.int16).min, np.iinfo(np.int16).max, (h, w), np.int16)
        if include_proprio:
            single["proprio"] = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)
        self.single_observation_space = spaces.Dict(single)
        self.observation_space = self.single_observation_space  # the batched layout is documented above

    def observation(self, obs):
        if not self.visual:
            return obs
        base = self.env.unwrapped
        cam = obs["sensor_data"][self.camera]
        out = {"image": cam["rgb"], "instruction": list(base.instructions)}
        if "segmentation" in cam:
            self.last_segmentation = cam["segmentation"][..., 0]
        if self.with_segmentation:
            # A view of the picture until here (image conditions only read it); users get a contiguous image.
            out["segmentation"] = self.last_segmentation.contiguous()
        if self.include_proprio:
            tcp = base.agent.tcp_pose.raw_pose
            gripper = base.agent.robot.get_qpos()[:, -2:].sum(-1, keepdim=True)
            out["proprio"] = torch.cat([tcp, gripper], -1).float()
        return out


def renders_on_cpu(env: gym.Env) -> bool:
    """Whether the ManiSkill env under `env` renders pictures on a CPU device (lavapipe)."""
    device = env.unwrapped.scene.backend.render_device
    return device is not None and device.is_cpu()


class SingleEnvNumpy(gym.Wrapper):
    """Unbatched numpy view of a num_envs=1 env (the standard Gymnasium API)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if env.unwrapped.num_envs != 1:
            raise ValueError("SingleEnvNumpy needs num_envs=1")
        # The VLA layout's space, found through any perturbation wrappers stacked on top of it.
        self.observation_space = env.get_wrapper_attr("single_observation_space")
        self.action_space = env.unwrapped.single_action_space
        # The whole stack's tensor work of a call on one torch thread when rendering on the CPU (see there).
        self._threads = env_thread_scope(renders_on_cpu(env))

    @staticmethod
    def _unbatch(x):
        if isinstance(x, torch.Tensor):
            return x[0].cpu().numpy()
        if isinstance(x, dict):
            return {k: SingleEnvNumpy._unbatch(v) for k, v in x.items()}
        if isinstance(x, list):
            return x[0]
        return x

    def _obs(self, obs):
        obs = self._unbatch(obs)
        if isinstance(obs, np.ndarray) and obs.dtype == np.float64:
            obs = obs.astype(np.float32)
        return obs

    def _info(self, info: dict) -> dict:
        out = {}
        for k, v in info.items():
            if isinstance(v, torch.Tensor):
                v = v.cpu().numpy()
                v = v.reshape(-1)[0].item() if v.size == 1 else v[0]
            out[k] = v
        manifests = getattr(self.env.unwrapped, "manifests", None)
        if manifests is not None:
            out["manifest"] = manifests()[0]
        return out

    def reset(self, *, seed=None, options=None):
        with self._threads:
            return self._reset(seed, options)

    def _reset(self, seed, options):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs), self._info(info)

    def step(self, action):
        with self._threads:
            return self._step(action)

    def _step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return (self._obs(obs), float(common.to_numpy(reward).reshape(-1)[0]),
                bool(common.to_numpy(terminated).reshape(-1)[0]), bool(common.to_numpy(truncated).reshape(-1)[0]),
                self._info(info))

    def render(self):
        frame = self.env.render()
        if isinstance(frame, torch.Tensor):
            frame = frame.cpu().numpy()
        return frame[0] if frame is not None and frame.ndim == 4 else frame
