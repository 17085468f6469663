"""Robot set-up for the VLA tasks: the study's 7-D action in metric units on ManiSkill's Panda.

The study's action is [dx, dy, dz (m, robot-base frame), droll, dpitch, dyaw (rad), gripper (+1 open, -1 close)],
applied to the previous *target* end-effector pose. ManiSkill's `pd_ee_target_delta_pose` does exactly that but
rescales a normalised [-1, 1] action; the controller registered here takes metres and radians directly, so a
policy's numbers mean the same thing in every env and in the datasets.
"""

from __future__ import annotations

from copy import deepcopy

import numpy as np
import sapien

from mani_skill.agents.base_agent import Keyframe
from mani_skill.agents.controllers import PDEEPoseControllerConfig, deepcopy_dict
from mani_skill.agents.registration import register_agent
from mani_skill.agents.robots.panda.panda import Panda

from ..render import lod

CONTROL_MODE = "pd_ee_target_delta_pose_metric"
MAX_DELTA_POS = 0.1  # metres per control step
MAX_DELTA_ROT = 0.5  # radians per control step

# Joints a robot-init-pose perturbation may offset (the first five arm joints) and the wrist rotation joint.
PANDA_BODY_JOINTS = (0, 1, 2, 3, 4)
PANDA_WRIST_JOINT = 6


@register_agent()
class PandaVLA(Panda):
    """Franka Panda with the metric delta-pose controller of the study (plus all of ManiSkill's Panda modes)."""

    uid = "panda_vla"
    # ManiSkill's panda_v2 with light visual meshes (render/lod.py): same links, collisions and kinematics.
    urdf_path = property(lambda self: lod.panda_urdf())
    # Start with the open hand 21 cm above the centre of the workspace, fingers down: in view of the third-person
    # camera without hiding the objects in the first frames.
    # VLAOpen starts higher and further back (the hand 42 cm up, 25 cm behind the workspace centre, fingers down),
    # clear of the tallest articulated object and of its door's swing.
    keyframes = dict(
        rest=Keyframe(qpos=np.array([0.0, 0.0, 0.0, -2.4, 0.0, 2.4, np.pi / 4, 0.04, 0.04]), pose=sapien.Pose()),
        open_rest=Keyframe(qpos=np.array([0.0, -0.6, 0.0, -2.4, 0.0, 1.8, np.pi / 4, 0.04, 0.04]), pose=sapien.Pose()),
    )

    @property
    def _controller_configs(self):
        configs = super()._controller_configs
        arm = PDEEPoseControllerConfig(
            joint_names=self.arm_joint_names,
            pos_lower=-MAX_DELTA_POS,
            pos_upper=MAX_DELTA_POS,
            rot_lower=-MAX_DELTA_ROT,
            rot_upper=MAX_DELTA_ROT,
            stiffness=self.arm_stiffness,
            damping=self.arm_damping,
            force_limit=self.arm_force_limit,
            ee_link=self.ee_link_name,
            urdf_path=self.urdf_path,
            use_target=True,
            normalize_action=False,
        )
        configs[CONTROL_MODE] = dict(arm=arm, gripper=deepcopy(configs["pd_ee_target_delta_pose"]["gripper"]))
        return deepcopy_dict(configs)


def action_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the 7-D action."""
    hi = np.array([MAX_DELTA_POS] * 3 + [MAX_DELTA_ROT] * 3 + [1.0], dtype=np.float32)
    return -hi, hi
