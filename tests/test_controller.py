"""The metric delta-pose controller's CPU fast path sets exactly the targets ManiSkill's controller sets."""

import warnings

import gymnasium as gym
import numpy as np
import torch
from mani_skill.agents.controllers.pd_ee_pose import PDEEPoseController

from vla_ood_envs.tasks.robots import MetricEEPoseController


def test_fast_path_sets_the_same_target_pose_joint_targets_and_drive_targets():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("VLAPick-v0", obs_mode="state")
    env.reset(seed=2)
    arm = env.unwrapped.agent.controller.controllers["arm"]
    assert isinstance(arm, MetricEEPoseController) and arm._fast_path()
    rng = np.random.default_rng(0)
    for t in range(12):
        action = torch.tensor(rng.uniform(-1, 1, (1, 6)) * [0.1, 0.1, 0.1, 0.5, 0.5, 0.5], dtype=torch.float32)
        start = arm._target_pose.raw_pose.clone()
        out = {}
        for name, set_action in (("ours", arm.set_action),
                                 ("maniskill", lambda a: PDEEPoseController.set_action(arm, a))):
            arm._target_pose.raw_pose = start.clone()
            set_action(action)
            out[name] = (arm._target_pose.raw_pose.clone(), arm._target_qpos.clone(),
                         np.array([j._objs[0].drive_target.copy() for j in arm.joints]))
        for a, b in zip(out["ours"], out["maniskill"]):
            assert a.dtype == b.dtype and (a == b).all(), t
        env.step(np.r_[action[0].numpy() * 0.3, 1.0].astype(np.float32))
    env.close()
