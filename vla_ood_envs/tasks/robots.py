"""Robot set-up for the VLA tasks: the study's 7-D action in metric units on ManiSkill's robots, and what a task
needs to know about each robot (`RobotSpec`: where it stands, its start pose, its camera, which joints the
robot-init-pose condition perturbs).

The study's action (its layout, units, bounds and rotation convention: `vla_ood_envs.spec`) is applied to the
previous *target* end-effector pose. ManiSkill's `pd_ee_target_delta_pose` does exactly that but
rescales a normalised [-1, 1] action; the controllers registered here take metres and radians directly, so a
policy's numbers mean the same thing in every env and in the datasets.

Robots:
- `panda_vla` (default): ManiSkill's Franka Panda with light visual meshes (robot_meshes/lod.py). Both tasks.
- `widowx250s_vla`: the study's WidowX-250S, ManiSkill's real2sim-tuned Bridge digital twin (its arm gains, gripper
  range and the Bridge dataset's third-person camera), standing where the study puts it relative to the
  placement grid. VLAPick only (the study's articulated task uses the Panda). Its meshes are ManiSkill's
  downloadable `widowx250s` asset; `require_assets` says how to install them when they are missing.
"""

from __future__ import annotations

import math
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sapien

from mani_skill.agents.base_agent import Keyframe
from mani_skill.agents.controllers import PDEEPoseControllerConfig, deepcopy_dict
from mani_skill.agents.controllers.pd_ee_pose import PDEEPoseController
from mani_skill.agents.registration import register_agent
from mani_skill.agents.robots.panda.panda import Panda
from mani_skill.envs.tasks.digital_twins.bridge_dataset_eval.base_env import WidowX250SBridgeDatasetFlatTable
from mani_skill.utils import sapien_utils

from ..spec import CONTROL_MODE, CONTROLLER_FRAME, MAX_DELTA_POS, MAX_DELTA_ROT
from .robot_meshes import lod
from .scene import WORKSPACE_CENTER
from ..errors import RobotError  # noqa: F401 (kept importable from here)


class MetricEEPoseController(PDEEPoseController):
    """ManiSkill's `PDEEPoseController` as configured by `_metric_arm` (target-relative delta pose, no
    normalisation, no interpolation), with less work per control step on the CPU simulation and the same result:
    the same target pose, the same IK call and the same drive targets (bit for bit).

    ManiSkill's `set_action` also computes the current end-effector pose relative to the base for `compute_ik`
    (five batched quaternion products, about 1 ms), which its CPU IK (pinocchio, from the target pose) never
    reads, and sets each joint's drive target through a torch -> numpy round trip per joint. The GPU simulation,
    and any configuration other than the one above, take ManiSkill's path unchanged.
    """

    def _fast_path(self) -> bool:
        return not self.scene.gpu_sim_enabled and self.config.use_target and not self.config.interpolate

    def set_action(self, action):
        if not self._fast_path():
            return super().set_action(action)
        action = self._preprocess_action(action)
        self._step = 0
        self._target_pose = self.compute_target_pose(self._target_pose, action)
        target = self.kinematics.compute_ik(pose=self._target_pose, q0=self.articulation.get_qpos(),
                                            solver_config=self.config.delta_solver_config)
        # No solution: hold the current joint positions, as ManiSkill does (nothing has moved since the call began).
        self._target_qpos = self.qpos if target is None else target
        self.set_drive_targets(self._target_qpos)

    def set_drive_targets(self, targets):
        if self.scene.gpu_sim_enabled:
            return super().set_drive_targets(targets)
        values = targets[0].cpu().numpy()
        for i, joint in enumerate(self.joints):
            joint._objs[0].drive_target = values[i:i + 1]  # ManiSkill's joint.set_drive_target, minus conversions


@dataclass
class MetricEEPoseControllerConfig(PDEEPoseControllerConfig):
    controller_cls = MetricEEPoseController


def _metric_arm(agent, ee_link: str) -> PDEEPoseControllerConfig:
    # The spec's frame and bounds; ManiSkill turns the 3 rotation numbers into a matrix with
    # euler_angles_to_matrix(delta, "XYZ") (tests/test_spec.py checks this on a stepped env).
    return MetricEEPoseControllerConfig(
        joint_names=agent.arm_joint_names,
        pos_lower=-MAX_DELTA_POS,
        pos_upper=MAX_DELTA_POS,
        rot_lower=-MAX_DELTA_ROT,
        rot_upper=MAX_DELTA_ROT,
        stiffness=agent.arm_stiffness,
        damping=agent.arm_damping,
        force_limit=agent.arm_force_limit,
        ee_link=ee_link,
        urdf_path=agent.urdf_path,
        frame=CONTROLLER_FRAME,
        use_target=True,
        normalize_action=False,
    )


@register_agent()
class PandaVLA(Panda):
    """Franka Panda with the metric delta-pose controller of the study (plus all of ManiSkill's Panda modes)."""

    uid = "panda_vla"
    # ManiSkill's panda_v2 with light visual meshes (robot_meshes/lod.py): same links, collisions and kinematics.
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
        arm = _metric_arm(self, self.ee_link_name)
        configs[CONTROL_MODE] = dict(arm=arm, gripper=deepcopy(configs["pd_ee_target_delta_pose"]["gripper"]))
        return deepcopy_dict(configs)


@register_agent(asset_download_ids=["widowx250s"])
class WidowX250SVLA(WidowX250SBridgeDatasetFlatTable):
    """The study's WidowX-250S: ManiSkill's real2sim Bridge twin (gains, friction-free arm, gripper range 1.4-3.8
    cm per finger, normalised so +1 opens and -1 closes) with the metric delta-pose controller."""

    uid = "widowx250s_vla"
    # The study's start pose (RL4VLA's initial_qpos): the open gripper about 15 cm above the table, over the
    # near edge of the placement grid, pointing down.
    keyframes = dict(
        rest=Keyframe(qpos=np.array([-0.01840777, 0.0398835, 0.22242722, -0.00460194, 1.36524296, 0.00153398,
                                     0.037, 0.037]), pose=sapien.Pose()),
    )

    def _after_loading_articulation(self):
        super()._after_loading_articulation()
        self.tcp = self.robot.links_map["ee_gripper_link"]

    @property
    def tcp_pose(self):
        return self.tcp.pose

    @property
    def _sensor_configs(self):
        return []  # the task owns the camera (its pose is WIDOWX's camera_pose, fixed in the world)

    @property
    def _controller_configs(self):
        configs = super()._controller_configs
        (bridge,) = configs.values()
        arm = _metric_arm(self, "ee_gripper_link")
        gripper = deepcopy(bridge["gripper"])
        # The right finger follows the left one (ManiSkill assumes this, with a warning, when it is not said).
        gripper.mimic = {"right_finger": {"joint": "left_finger"}}
        configs[CONTROL_MODE] = dict(arm=arm, gripper=gripper)
        return deepcopy_dict(configs)


@dataclass(frozen=True)
class RobotSpec:
    """What a task needs to know about a robot beyond ManiSkill's agent class."""

    uid: str  # the agent registered above
    label: str
    aliases: tuple[str, ...]  # other robot_uids a user may pass for it
    tasks: tuple[str, ...]  # the tasks it can play
    arm_dof: int
    base_xy: tuple[float, float]  # world position of the robot base (facing +x, on the table top)
    camera_pose: sapien.Pose  # the third-person camera, in the world
    camera_hfov: float  # horizontal field of view, radians
    # The robot-init-pose condition (wrappers.robot_init_offsets): joints offset by the "body" magnitudes (the
    # study's joints 1-5), the wrist rotation, and the shoulder/elbow pair whose combined change is limited.
    body_joints: tuple[int, ...]
    wrist_joint: int
    shoulder_elbow: tuple[int, int]
    # How the shoulder+elbow change is measured: |a| + |b| (Panda, whose joints 2 and 4 bend the arm in opposite
    # senses) or |a + b| (WidowX, as in the study's code).
    signed_shoulder_elbow: bool
    # The tcp frame's axis along which the fingers point (Panda: z, WidowX: x); both close along y.
    tcp_approach_axis: int = 2
    # VLAPick shrinks each object wider than this (its narrow horizontal side, m) to this width, keeping its
    # proportions: the WidowX's fingers open 5.2 cm and the catalog's widest object is 7 cm across. None: as built.
    max_object_width: float | None = None
    # The scripted expert's grasp height: the tcp at least this high above the table (the WidowX's tcp sits 1.6 cm
    # above its fingertips) and at most `grasp_depth` below the object's top (the palm's clearance).
    min_grasp_height: float = 0.012
    grasp_depth: float = 0.04
    asset_files: tuple[str, ...] = ()  # files the agent loads from ManiSkill's asset directory
    install_hint: str = ""

    def zero_offset(self) -> tuple[float, ...]:
        return (0.0,) * self.arm_dof


def _panda_camera() -> sapien.Pose:
    # Third person from the front-right of the workspace: the arm, the object and the receptacle all in view.
    return sapien_utils.look_at(eye=(0.35, 0.3, 0.6), target=(-0.28, 0.0, 0.12)).sp


# The study's WidowX stands 30.7 cm behind and 2.8 cm to the right of the grid centre (RL4VLA: base at
# (0.147, 0.028), facing -x, grid centre (-0.16, 0)); here it faces +x.
_WIDOWX_BASE = (WORKSPACE_CENTER[0] - 0.307, WORKSPACE_CENTER[1] - 0.028)
# The Bridge dataset's camera (a Logitech C920: fx 623.588 px at 640x480), mounted on the base link.
_BRIDGE_CAMERA = sapien.Pose([0.0, -0.16, 0.36], [0.8992917, -0.09263245, 0.35892478, 0.23209205])

ROBOTS: dict[str, RobotSpec] = {
    "panda_vla": RobotSpec(
        uid="panda_vla", label="Franka Panda", aliases=("panda",), tasks=("VLAPick", "VLAOpen"), arm_dof=7,
        base_xy=(-0.615, 0.0), camera_pose=_panda_camera(), camera_hfov=math.radians(54.0),
        body_joints=(0, 1, 2, 3, 4), wrist_joint=6, shoulder_elbow=(1, 3), signed_shoulder_elbow=False,
    ),
    "widowx250s_vla": RobotSpec(
        uid="widowx250s_vla", label="WidowX-250S", aliases=("widowx250s", "widowx"), tasks=("VLAPick",), arm_dof=6,
        base_xy=_WIDOWX_BASE, camera_pose=sapien.Pose([*_WIDOWX_BASE, 0.0]) * _BRIDGE_CAMERA,
        camera_hfov=2 * math.atan(320 / 623.588),
        body_joints=(0, 1, 2, 3, 4), wrist_joint=5, shoulder_elbow=(1, 2), signed_shoulder_elbow=True,
        tcp_approach_axis=0, max_object_width=0.042, min_grasp_height=0.018, grasp_depth=0.018,
        asset_files=("robots/widowx/wx250s.urdf", "robots/widowx/wx250s.srdf"),
        install_hint=("install them with `python -m mani_skill.utils.download_asset widowx250s` (needs network: it "
                      "fetches https://github.com/haosulab/ManiSkill-WidowX250S/archive/refs/tags/v0.2.0.zip); "
                      "offline, unzip that archive and move its folder to {asset_dir}/robots/widowx (ManiSkill's "
                      "asset directory is $MS_ASSET_DIR/data, by default ~/.maniskill/data)"),
    ),
}


def find_robot(robot_uids: str) -> RobotSpec:
    """The spec of `robot_uids` (an agent uid or an alias)."""
    by_name = {name: spec for spec in ROBOTS.values() for name in (spec.uid, *spec.aliases)}
    if not isinstance(robot_uids, str) or robot_uids not in by_name:
        raise RobotError(f"no robot {robot_uids!r}; choose one of "
                         + ", ".join(f"{s.uid!r} ({s.label}; also {', '.join(map(repr, s.aliases))})"
                                     for s in ROBOTS.values()))
    return by_name[robot_uids]


def robot_spec(robot_uids: str, task: str) -> RobotSpec:
    """The spec of `robot_uids` for `task`, after checking the task runs on it and its assets are installed."""
    spec = find_robot(robot_uids)
    if task not in spec.tasks:
        usable = [s.uid for s in ROBOTS.values() if task in s.tasks]
        raise RobotError(f"{task} does not run on the {spec.label} ({spec.uid!r}): the study's {task} uses "
                         f"{usable}. Make the env with robot_uids={usable[0]!r}.")
    require_assets(spec)
    return spec


def require_assets(spec: RobotSpec) -> None:
    """Raise RobotError naming the missing files and how to install them (ManiSkill itself would prompt on stdin
    and exit the process)."""
    from mani_skill import ASSET_DIR

    missing = [str(Path(ASSET_DIR) / f) for f in spec.asset_files if not (Path(ASSET_DIR) / f).is_file()]
    if missing:
        raise RobotError(f"the {spec.label}'s assets are not installed (missing {', '.join(missing)}); "
                         + spec.install_hint.format(asset_dir=ASSET_DIR))

