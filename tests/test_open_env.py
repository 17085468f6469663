"""VLAOpen as a user sees it: the Gymnasium contract, factor records, success on a door opened through its joint,
the expert against a random policy, held-out pools, and the OOD wrappers applied to the second task."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from vla_ood_envs.catalog import default_catalog
from vla_ood_envs.rollout import run_expert_episode
from vla_ood_envs.experts.open_expert import OpenExpert
from vla_ood_envs.factors import (
    OPEN_TEST_POSITIONS, OPEN_TEST_TEMPLATES, OPEN_TEST_YAWS, OPEN_TRAIN_POSITIONS, OPEN_TRAIN_TEMPLATE,
    OPEN_TRAIN_YAWS, OpenFactors, open_held_out_factors, open_train_pools,
)
from vla_ood_envs.tasks.open import DOOR_THRESHOLD, DRAWER_THRESHOLD, NOMINAL_FACING, OPEN_ANCHOR
from vla_ood_envs.wrappers import DistractorObject, MidEpisodeReposition, PerturbationError

SMALL = dict(camera_width=64, camera_height=64)
STILL = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def open_env():
    env = _quiet(gym.make, "VLAOpen-v0", obs_mode="rgb+segmentation", **SMALL)
    yield env
    env.close()


@pytest.fixture(scope="module")
def open_state_env():
    env = _quiet(gym.make, "VLAOpen-v0", obs_mode="state")
    yield env
    env.close()


def _door(name="cabinet", **kw):
    f = dict(object=name, table="oak", template=OPEN_TRAIN_TEMPLATE, object_xy=(0.0, 0.0), object_yaw=0.0)
    return OpenFactors(**{**f, **kw})


def test_check_env_passes(open_env):
    _quiet(check_env, open_env, skip_render_check=True)


def test_episodes_come_from_the_training_pools_and_repeat_with_the_seed(open_env):
    cat = default_catalog()
    train_doors = {a.name for a in cat.articulated if a.kind == "door" and a.split == "train"}
    assert len(train_doors) == 8
    seen = set()
    for seed in range(12):
        obs, info = open_env.reset(seed=seed)
        m = info["manifest"]
        assert m["task"] == "VLAOpen" and m["pools"] == "train" and m["seed"] == seed
        assert m["object"] in train_doors and m["table"] in cat.names("tables", "train")
        assert tuple(m["object_xy"]) in OPEN_TRAIN_POSITIONS and m["object_yaw"] in OPEN_TRAIN_YAWS
        assert obs["instruction"] == f"open the {m['object']}"
        seen.add(m["object"])
    assert len(seen) >= 4
    a, info_a = open_env.reset(seed=3)
    b, info_b = open_env.reset(seed=3)
    assert info_a["manifest"] == info_b["manifest"]
    np.testing.assert_array_equal(a["image"], b["image"])


def test_explicit_record_places_the_object_where_it_says(open_env):
    f = _door("microwave", object_xy=(0.02, -0.04), object_yaw=OPEN_TRAIN_YAWS[1])
    obs, info = open_env.reset(seed=0, options={"factors": f})
    assert obs["instruction"] == "open the microwave" and info["manifest"]["noun"] == "microwave"
    task = open_env.unwrapped
    root = task.object_root_pose()
    assert root.p[0, 0].item() == pytest.approx(OPEN_ANCHOR[0] + 0.02, abs=1e-4)
    assert root.p[0, 1].item() == pytest.approx(OPEN_ANCHOR[1] - 0.04, abs=1e-4)
    normal = task.front_normal()[0]
    assert math.atan2(normal[1].item(), normal[0].item()) == pytest.approx(NOMINAL_FACING + OPEN_TRAIN_YAWS[1],
                                                                            abs=1e-4)
    # The chosen object is rendered where the manifest says; the others are parked out of view.
    cls = task.segmentation_lut()[torch.as_tensor(obs["segmentation"]).long()]
    assert (cls == int(task.target_object[0])).sum() > 20
    with pytest.raises(ValueError, match="not an articulated object"):
        open_env.reset(options={"factors": _door("toaster")})


def test_success_follows_the_joint_opened_by_hand(open_env):
    task = open_env.unwrapped
    for angle, expected in ((math.radians(12), False), (math.radians(25), True)):
        open_env.reset(seed=0, options={"factors": _door("cupboard")})
        art = task.articulations[int(task.target_object[0])]
        art.set_qpos(torch.tensor([[angle]]))
        _, reward, _, _, info = open_env.step(STILL)
        assert info["success"] is expected, angle
        assert info["opening"] == pytest.approx(angle, abs=0.02)
        assert not info["is_grasped"]
        # The staged reward pays the opening progress (and the success), not a grasp that never happened.
        assert reward == pytest.approx(0.1 * min(info["opening"] / DOOR_THRESHOLD, 1.0) + (1.0 if expected else 0.0),
                                       abs=1e-3)
    # Opening the joint moves the door and its handle: the handle swings out along the arc around the hinge.
    open_env.reset(seed=0, options={"factors": _door("cupboard")})
    closed, _ = task.handle_pose()
    origin, axis = task.joint_frame()
    art = task.articulations[int(task.target_object[0])]
    art.set_qpos(torch.tensor([[math.radians(30)]]))
    opened, _ = task.handle_pose()
    r0, r1 = closed - origin, opened - origin
    assert torch.linalg.norm(r0[0, :2]).item() == pytest.approx(torch.linalg.norm(r1[0, :2]).item(), abs=1e-3)
    cos = (r0[0, :2] @ r1[0, :2]) / torch.linalg.norm(r0[0, :2]) ** 2
    assert math.degrees(math.acos(min(1.0, cos.item()))) == pytest.approx(30, abs=1.0)
    assert (opened - closed)[0] @ task.front_normal()[0] > 0.03  # outwards, towards the robot and camera


def test_drawer_variant():
    env = _quiet(gym.make, "VLAOpen-v0", obs_mode="state", variant="drawer")
    try:
        _, info = env.reset(seed=0)
        assert default_catalog().get("articulated", info["manifest"]["object"]).kind == "drawer"
        env.reset(seed=0, options={"factors": _door("nightstand")})
        task = env.unwrapped
        assert task.instructions == ["open the nightstand drawer"]
        art = task.articulations[int(task.target_object[0])]
        for pull, expected in ((DRAWER_THRESHOLD - 0.02, False), (DRAWER_THRESHOLD + 0.02, True)):
            art.set_qpos(torch.tensor([[pull]]))
            _, _, _, _, info = env.step(STILL)
            assert bool(info["success"]) is expected
    finally:
        env.close()
    with pytest.raises(ValueError, match="variant"):
        gym.make("VLAOpen-v0", obs_mode="state", variant="lid")


def test_expert_opens_doors_and_random_policy_does_not(open_state_env):
    expert = OpenExpert()
    results = [run_expert_episode(open_state_env, s, expert) for s in (2000, 2001, 2002)]
    assert all(r["success"] for r in results), [(r["phase"], r["info"]["opening"]) for r in results]
    ok = results[0]
    assert ok["info"]["potential"] == pytest.approx(1.2, abs=1e-5) and ok["info"]["grasped_ever"]
    a = ok["actions"]
    assert np.abs(a[:, :3]).max() <= 0.041  # capped speed
    assert np.count_nonzero(np.diff(np.sign(a[:, 6]))) <= 2  # closes once (no chatter)

    rng = np.random.default_rng(0)
    low, high = open_state_env.action_space.low, open_state_env.action_space.high
    for seed in (2000, 2001):
        open_state_env.reset(seed=seed)
        for _ in range(80):
            *_, info = open_state_env.step(rng.uniform(low, high).astype(np.float32))
        assert not info["success"]


def test_held_out_pools_are_disjoint_from_training():
    cat = default_catalog()
    assert not set(OPEN_TEST_POSITIONS) & set(OPEN_TRAIN_POSITIONS)
    assert not set(OPEN_TEST_YAWS) & set(OPEN_TRAIN_YAWS)
    assert min(max(abs(x), abs(y)) for x, y in OPEN_TEST_POSITIONS) > max(
        max(abs(x), abs(y)) for x, y in OPEN_TRAIN_POSITIONS)
    assert OPEN_TRAIN_TEMPLATE not in OPEN_TEST_TEMPLATES and len(set(OPEN_TEST_TEMPLATES)) == 16
    for kind in ("door", "drawer"):
        train = {a.name for a in cat.articulated if a.kind == kind and a.split == "train"}
        test = {a.name for a in cat.articulated if a.kind == kind and a.split == "test"}
        assert train and test and not train & test
    assert len([a for a in cat.articulated if a.kind == "door" and a.split == "test"]) >= 6
    assert open_held_out_factors(open_train_pools(cat)) == []


@pytest.mark.parametrize("env_id, check", [
    ("VLAOpen-UnseenObjects-v0",
     lambda m, obs, cat: cat.get("articulated", m["object"]).split == "test"),
    ("VLAOpen-UnseenObjectPose-v0",
     lambda m, obs, cat: tuple(m["object_xy"]) in OPEN_TEST_POSITIONS and m["object_yaw"] in OPEN_TEST_YAWS),
    ("VLAOpen-UnseenRobotInitPose-v0", lambda m, obs, cat: any(m["robot_qpos_offset"])),
    ("VLAOpen-UnseenInstructions-v0",
     lambda m, obs, cat: m["template"] in OPEN_TEST_TEMPLATES and obs["instruction"] == m["template"].replace(
         "{O}", m["noun"])),
    ("VLAOpen-UnseenBackground-v0", lambda m, obs, cat: m["table"] in cat.names("tables", "test")),
    ("VLAOpen-DynamicNoise-v0", lambda m, obs, cat: m["overlay"] in cat.names("overlays") and m["overlay_alpha"] > 0),
])
def test_ood_ids_draw_from_their_held_out_pool(env_id, check):
    cat = default_catalog()
    env = _quiet(gym.make, env_id, camera_width=32, camera_height=32)
    try:
        for seed in range(4):
            obs, info = env.reset(seed=seed)
            m = info["manifest"]
            assert check(m, obs, cat), m
            assert open_held_out_factors(env.unwrapped.pools) != []
    finally:
        env.close()


def test_pick_only_perturbations_refuse_the_open_task(open_env):
    for cls in (DistractorObject, MidEpisodeReposition):
        with pytest.raises(PerturbationError, match="VLAPick"):
            cls(open_env)


def test_demo_generation_works_for_the_open_task(tmp_path):
    from vla_ood_envs.demos import DemoDataset, GenerateConfig, SplitError, generate

    out = tmp_path / "open"
    generate(GenerateConfig(env_id="VLAOpen-v0", out=str(out), episodes=1, seed=5, image_height=32,
                            image_width=32), progress=False)
    (ep,) = list(DemoDataset(out))
    assert ep.instruction == f"open the {ep.manifest['noun']}" and ep.success[-1]
    assert ep.images.shape[1:] == (32, 32, 3) and ep.actions.shape[1] == 7
    with pytest.raises(SplitError, match="VLAOpen-v0"):
        generate(GenerateConfig(env_id="VLAOpen-UnseenObjects-v0", out=str(tmp_path / "ood"), episodes=1),
                 progress=False)


def test_batched_selection_gives_each_env_its_own_item():
    """The GPU-batched path (ManiSkill's CPU simulation holds one env, so built by hand): per-env values of each
    env's chosen item, one call per distinct item, and quaternion rotation of per-env vectors."""
    from types import SimpleNamespace

    from vla_ood_envs.tasks.base import VLATaskEnv
    from vla_ood_envs.tasks.open import _rotate

    fake = SimpleNamespace(num_envs=4, device=torch.device("cpu"))
    items = [torch.full((4, 2), float(k)) + torch.arange(4.0)[:, None] * 10 for k in range(3)]
    calls = []

    def fn(item):
        calls.append(item)
        return item

    which = torch.tensor([2, 0, 2, 1])
    out = VLATaskEnv._select(fake, items, which, fn)
    assert out[:, 0].tolist() == [2.0, 10.0, 22.0, 31.0]
    assert len(calls) == 3
    yaw = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 2])
    q = torch.stack([torch.cos(yaw / 2), torch.zeros(4), torch.zeros(4), torch.sin(yaw / 2)], -1)
    v = _rotate(q, torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1))
    torch.testing.assert_close(v, torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]]), atol=1e-6,
                               rtol=0)
