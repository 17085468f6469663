"""VLAPick-v0 as a user sees it: the Gymnasium contract, determinism, factor records, actions, success."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mani_skill.utils.structs.pose import Pose
from vla_ood_envs.factors import PickFactors
from vla_ood_envs.tasks.pick import ActionError
from vla_ood_envs.tasks.scene import WORKSPACE_CENTER



def test_check_env_passes(rgb_env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(rgb_env, skip_render_check=True)


def test_observation_layout_and_instruction(rgb_env):
    obs, info = rgb_env.reset(seed=11)
    assert set(obs) == {"image", "instruction", "segmentation"}
    m = info["manifest"]
    assert obs["instruction"] == f"put {m['object']} on {m['receptacle']}"
    assert rgb_env.observation_space.contains(obs)
    assert rgb_env.action_space.shape == (7,)


def test_same_seed_same_episode_and_first_frame(rgb_env):
    obs_a, info_a = rgb_env.reset(seed=5)
    rgb_env.step(rgb_env.action_space.sample() * 0)
    obs_b, info_b = rgb_env.reset(seed=5)
    assert info_a["manifest"] == info_b["manifest"]
    np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
    manifests = {str(rgb_env.reset(seed=s)[1]["manifest"]) for s in range(6)}
    assert len(manifests) == 6


def test_manifest_is_drawn_from_training_pools(rgb_env):
    pools = rgb_env.unwrapped.pools
    for seed in range(20):
        m = rgb_env.reset(seed=seed)[1]["manifest"]
        assert m["object"] in pools.objects and m["receptacle"] == "plate" and m["table"] in pools.tables
        assert tuple(m["object_xy"]) in pools.object_positions and m["object_yaw"] in pools.yaws
        assert math.dist(m["object_xy"], m["receptacle_xy"]) > 0.07
        assert m["seed"] == seed and m["pools"] == "train"


def test_explicit_factors_via_reset_options(rgb_env):
    f = PickFactors(object="banana", receptacle="plate", table="oak", template="put {O} on {R}",
                    object_xy=(0.075, 0.075), receptacle_xy=(-0.075, -0.075), object_yaw=0.0)
    obs, info = rgb_env.reset(seed=0, options={"factors": f})
    assert obs["instruction"] == "put banana on plate" and info["manifest"]["table"] == "oak"
    p = rgb_env.unwrapped.object_pose().p[0]
    assert p[0].item() == pytest.approx(WORKSPACE_CENTER[0] + 0.075, abs=1e-3)
    with pytest.raises(ValueError, match="not in the catalog"):
        rgb_env.reset(seed=0, options={"factors": {**f.to_dict(), "object": "unicorn"}})
    # The refused record is not kept for the next reset.
    assert rgb_env.reset(seed=0)[1]["manifest"]["object"] != "unicorn"


def test_bad_actions_get_clear_errors(state_env):
    state_env.reset(seed=0)
    with pytest.raises(ActionError, match="shape"):
        state_env.step(np.zeros(6))
    with pytest.raises(ActionError, match="NaN"):
        state_env.step(np.array([0, 0, np.nan, 0, 0, 0, 1.0]))
    with pytest.raises(ActionError, match="out of bounds.*action_out_of_bounds='clip'"):
        state_env.step(np.array([0.5, 0, 0, 0, 0, 0, 1.0]))


def test_clip_mode_and_truncation():
    env = gym.make("VLAPick-v0", obs_mode="state", max_episode_steps=3, action_out_of_bounds="clip")
    env.reset(seed=0)
    flags = [env.step(np.array([0.5, 0, 0, 0, 0, 0, 1.0], dtype=np.float32))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env.close()


def _place(base, obj_xy, z):
    pose = base.receptacle_pose()
    p = pose.p.clone()
    p[:, :2] += torch.tensor(obj_xy, dtype=p.dtype)
    p[:, 2] = z
    base.objects[base.target_object[0].item()].set_pose(Pose.create_from_pq(p))


@pytest.mark.parametrize("where,expected", [("on", True), ("beside", False), ("hover", False)])
def test_success_matches_the_scene(state_env, where, expected):
    """An object set down on the plate succeeds; beside the plate or hovering above it (no contact) does not."""
    f = PickFactors(object="toy block", receptacle="plate", table="oak", template="put {O} on {R}",
                    object_xy=(0.075, 0.075), receptacle_xy=(-0.075, -0.075), object_yaw=0.0)
    state_env.reset(seed=0, options={"factors": f})
    base = state_env.unwrapped
    rec_top = base.receptacle_pose().p[0, 2].item() + base._rec_height[0].item()
    if where == "on":
        _place(base, (0.0, 0.0), rec_top + 0.005)
    elif where == "beside":
        _place(base, (0.12, 0.0), 0.005)
    else:
        _place(base, (0.0, 0.0), rec_top + 0.03)
    if where == "hover":
        # Hold it in the air: no contact with the plate even though it is within 5 cm above it.
        base.objects[base.target_object[0].item()].set_linear_velocity(torch.zeros(1, 3))
        info = base.evaluate()
    else:
        for _ in range(2):
            _, _, _, _, info = state_env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32))
    assert bool(info["success"]) is expected
    if where == "hover":
        assert bool(info["is_placed"]) and float(info["contact_force"]) == 0.0


def test_unknown_robot_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="no robot 'ur5'.*'panda_vla'.*'widowx250s_vla'"):
        gym.make("VLAPick-v0", obs_mode="state", robot_uids="ur5")


def test_pools_with_malformed_robot_offsets_are_refused_up_front():
    from vla_ood_envs.factors import train_pools

    with pytest.raises(ValueError, match="needs 7 values"):
        gym.make("VLAPick-v0", obs_mode="state", pools=train_pools().replace(robot_qpos_offsets=((0.1,) * 6,)))
