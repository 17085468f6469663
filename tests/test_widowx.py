"""The study's WidowX-250S on VLAPick.

The first tests need nothing installed: the robot's spec, its init-pose perturbations, and the errors for a robot
that is unknown, unusable for a task, or whose assets are missing. The rest need ManiSkill's `widowx250s` asset
(`python -m mani_skill.utils.download_asset widowx250s`); where it is missing they are skipped, saying so.
"""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import mani_skill
from vla_ood_envs.rollout import run_expert_episode
from vla_ood_envs.registry import DECLARATIONS
from vla_ood_envs.tasks import robots
from vla_ood_envs.tasks.scene import WORKSPACE_CENTER
from vla_ood_envs.wrappers import RobotInitPose, robot_init_offsets

from conftest import SMALL

WIDOWX = robots.ROBOTS["widowx250s_vla"]


def _installed() -> bool:
    try:
        robots.require_assets(WIDOWX)
    except robots.RobotError:
        return False
    return True


needs_assets = pytest.mark.skipif(not _installed(), reason="ManiSkill's widowx250s asset is not installed "
                                  "(python -m mani_skill.utils.download_asset widowx250s)")


def test_widowx_init_pose_offsets_follow_the_study():
    offsets = robot_init_offsets(robot="widowx250s")
    # Joints 1-5 in {0, +-0.08, +-0.15}, wrist rotate in {0, +-0.3, +-0.6}; |shoulder + elbow| <= 0.25: 5^6 = 15625
    # combinations, of which 2 * 5^4 have shoulder + elbow = +-0.3, minus the nominal start.
    assert len(offsets) == 15625 - 2 * 5**4 - 1
    assert len(set(offsets)) == len(offsets)
    arr = np.array(offsets)
    assert arr.shape[1] == 6
    assert np.isin(np.round(np.abs(arr[:, :5]), 6), [0.0, 0.08, 0.15]).all()
    assert np.isin(np.round(np.abs(arr[:, 5]), 6), [0.0, 0.3, 0.6]).all()
    assert (np.abs(arr[:, 1] + arr[:, 2]) <= 0.25 + 1e-9).all()
    assert (np.abs(arr[:, 1] + arr[:, 2]) > 0.2).any()  # the signed rule keeps 0.15 + 0.08, the Panda's would not


def test_robot_errors_name_the_problem_and_the_fix(monkeypatch, tmp_path):
    with pytest.raises(robots.RobotError, match="VLAOpen does not run on the WidowX-250S.*robot_uids='panda_vla'"):
        gym.make("VLAOpen-v0", obs_mode="state", robot_uids="widowx250s")
    # Missing assets: a clear error before ManiSkill's loader would prompt on stdin and exit the process.
    monkeypatch.setattr(mani_skill, "ASSET_DIR", tmp_path)
    with pytest.raises(robots.RobotError, match=r"assets are not installed.*download_asset widowx250s"):
        gym.make("VLAPick-v0", obs_mode="state", robot_uids="widowx250s")


def test_robot_specs_are_consistent():
    for spec in robots.ROBOTS.values():
        assert spec.wrist_joint < spec.arm_dof and max(spec.body_joints) < spec.arm_dof
        assert set(spec.shoulder_elbow) <= set(spec.body_joints)
        # The whole placement grid (+-7.5 cm) is in a square image: each corner within half the fov of the optical
        # axis (the camera frame's x; y left, z up), horizontally and vertically.
        world_to_cam = spec.camera_pose.inv().to_transformation_matrix()
        for dx in (-0.075, 0.075):
            for dy in (-0.075, 0.075):
                p = world_to_cam @ np.array([WORKSPACE_CENTER[0] + dx, WORKSPACE_CENTER[1] + dy, 0.0, 1.0])
                assert p[0] > 0
                assert abs(np.arctan2(p[1], p[0])) < spec.camera_hfov / 2
                assert abs(np.arctan2(p[2], p[0])) < spec.camera_hfov / 2


@pytest.fixture(scope="module")
def widowx_env():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("VLAPick-v0", obs_mode="rgb+segmentation", robot_uids="widowx250s", **SMALL)
    yield env
    env.close()


@pytest.fixture(scope="module")
def widowx_state_env():
    env = gym.make("VLAPick-v0", obs_mode="state", robot_uids="widowx250s")
    yield env
    env.close()


@needs_assets
def test_widowx_env_passes_check_env_and_replays_seeds(widowx_env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(widowx_env, skip_render_check=True)
    obs_a, info_a = widowx_env.reset(seed=4)
    widowx_env.step(np.zeros(7, dtype=np.float32))
    obs_b, info_b = widowx_env.reset(seed=4)
    assert info_a["manifest"] == info_b["manifest"] and info_a["manifest"]["robot"] == "widowx250s_vla"
    np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
    base = widowx_env.unwrapped
    # The robot, the target object and the receptacle are all in the first frame.
    classes = base.segmentation_lut().cpu()[torch.as_tensor(obs_a["segmentation"]).long()]
    for cls in (base.ROBOT_SEG, int(base.target_object[0]), 1000 + int(base.target_receptacle[0])):
        assert (classes == cls).any(), cls


@needs_assets
def test_widowx_stands_where_the_study_puts_it(widowx_state_env):
    _, info = widowx_state_env.reset(seed=0)
    base = widowx_state_env.unwrapped
    assert tuple(info["manifest"]["robot_qpos_offset"]) == ()
    qpos = base.agent.robot.get_qpos()[0].numpy()
    np.testing.assert_allclose(qpos, base.agent.keyframes["rest"].qpos, atol=1e-5)
    # The grid centre is 30.7 cm ahead of the base and 2.8 cm to its left; the tcp starts above the grid's near part.
    np.testing.assert_allclose(base.agent.robot.pose.p[0, :2].numpy(),
                               np.array(WORKSPACE_CENTER) - [0.307, 0.028], atol=1e-6)
    tcp = base.agent.tcp_pose.p[0].numpy()
    assert 0.10 < tcp[2] < 0.20 and abs(tcp[0] - WORKSPACE_CENTER[0]) < 0.05
    # Every object fits between the open fingers (5.2 cm).
    widths = [2 * min(a.half_extents[:2]) for a in base._object_assets]
    assert max(widths) <= WIDOWX.max_object_width + 1e-9
    assert min(widths) == pytest.approx(2 * min(base.catalog.get("objects", "marker").half_extents[:2]))


@needs_assets
def test_widowx_expert_succeeds_and_random_policy_does_not(widowx_state_env):
    results = [run_expert_episode(widowx_state_env, s) for s in (2000, 2001, 2002, 2003)]
    assert sum(r["success"] for r in results) >= 3, [r["phase"] for r in results]
    rng = np.random.default_rng(0)
    widowx_state_env.reset(seed=2000)
    for _ in range(widowx_state_env.unwrapped.max_episode_steps):
        *_, info = widowx_state_env.step(widowx_state_env.action_space.sample() * rng.uniform(0.2, 1.0))
    assert not bool(info["success"])


@needs_assets
def test_widowx_robot_init_pose_condition(widowx_state_env):
    wrapped = RobotInitPose(widowx_state_env)
    _, info = wrapped.reset(seed=3)
    off = np.array(info["manifest"]["robot_qpos_offset"])
    assert off.shape == (6,) and np.abs(off).max() > 0
    base = wrapped.unwrapped
    qpos = base.agent.robot.get_qpos()[0, :6].numpy()
    np.testing.assert_allclose(qpos - base.agent.keyframes["rest"].qpos[:6], off, atol=1e-4)
    # A Panda-length offset is refused, naming the robot.
    with pytest.raises(ValueError, match="needs 6 values .* WidowX-250S"):
        widowx_state_env.reset(options={"factors": dict(info["manifest"], robot_qpos_offset=[0.1] * 7)})


@needs_assets
@pytest.mark.parametrize("env_id", [d.env_id for d in DECLARATIONS if d.task == "VLAPick"])
def test_every_pick_condition_builds_on_the_widowx(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id, robot_uids="widowx250s", **SMALL)
    try:
        obs, info = env.reset(seed=1)
        assert obs["image"].shape == (64, 64, 3) and info["manifest"]["robot"] == "widowx250s_vla"
        env.step(np.zeros(7, dtype=np.float32))
    finally:
        env.close()


@needs_assets
def test_widowx_demos_record_the_robot_and_export_as_widowx(tmp_path):
    import json

    from vla_ood_envs.demos import DemoDataset, GenerateConfig, generate
    from vla_ood_envs.demos.export_lerobot import export_lerobot

    src = tmp_path / "native"
    generate(GenerateConfig(out=str(src), episodes=1, seed=2000, image_height=32, image_width=32,
                            env_kwargs={"robot_uids": "widowx250s"}), progress=False)
    assert DemoDataset(src)[0].manifest["robot"] == "widowx250s_vla"
    out = export_lerobot(src, tmp_path / "lerobot")
    assert json.loads((out / "meta" / "info.json").read_text())["robot_type"] == "widowx"
