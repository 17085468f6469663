"""Each OOD perturbation does what its condition says, and only that; they stack and keep the Gymnasium contract."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from vla_ood_envs.catalog import default_catalog
from vla_ood_envs.factors import (
    GRID_OFFSETS, RING_POSITIONS, TEST_TEMPLATES, TEST_YAWS, TRAIN_POSITIONS, TRAIN_YAWS, ZERO_OFFSET, is_nominal_start,
    train_pools,
)
from vla_ood_envs.registry import DECLARATIONS
from vla_ood_envs.wrappers import (
    DistractorObject, DynamicNoise, DynamicTexture, InstructionParaphrase, MidEpisodeReposition, ObjectSampler,
    PerturbationError, RobotInitPose, UnseenTable, robot_init_offsets,
)

SMALL = dict(camera_width=64, camera_height=64)
ARM_DOWN = np.array([0, 0, -0.03, 0, 0, 0, 1.0], dtype=np.float32)


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def seg_env():
    env = _quiet(gym.make, "VLAPick-v0", obs_mode="rgb+segmentation", **SMALL)
    yield env
    env.close()


def _fg(env, seg):
    task = env.unwrapped
    cls = task.segmentation_lut()[torch.as_tensor(seg).long()]
    return ((cls == task.ROBOT_SEG) | (cls == int(task.target_object[0]))).numpy()


def _pair(env, wrapper, seed, steps=(0, 3), **kwargs):
    """Frames of the plain env and of the wrapped env at the given steps (same seed, same actions)."""
    wrapped = wrapper(env, **kwargs)
    plain, pert, segs = [], [], []
    for target in (env, wrapped):
        obs, _ = target.reset(seed=seed)
        frames = [obs]
        for _ in range(max(steps)):
            obs = target.step(ARM_DOWN)[0]
            frames.append(obs)
        (plain if target is env else pert).extend(frames[s]["image"] for s in steps)
        if target is env:
            segs.extend(frames[s]["segmentation"] for s in steps)
    return plain, pert, segs


def test_dynamic_texture_changes_only_foreground_and_moves(seg_env):
    plain, pert, segs = _pair(seg_env, DynamicTexture, seed=4, alpha=0.5)
    offsets = []
    for p, q, s in zip(plain, pert, segs):
        changed = (p != q).any(-1)
        fg = _fg(seg_env, s)
        assert changed.any()
        assert not (changed & ~fg).any(), "texture leaked outside the robot/object pixels"
        rows = np.nonzero(fg.any(1))[0]
        offsets.append(rows[0])
    # The arm moved, so the box moved, and the texture moved with it.
    assert not np.array_equal(pert[0].astype(int) - plain[0], pert[1].astype(int) - plain[1])


def test_dynamic_noise_covers_the_frame_and_shifts_with_the_arm(seg_env):
    plain, pert, segs = _pair(seg_env, DynamicNoise, seed=4, alpha=0.5)
    for p, q in zip(plain, pert):
        assert (p != q).any(-1).mean() > 0.8
    residual = [q.astype(int) - p for p, q in zip(plain, pert)]
    assert not np.array_equal(residual[0], residual[1])


def test_image_wrappers_need_segmentation_and_say_so():
    env = gym.make("VLAPick-v0", **SMALL)
    with pytest.raises(PerturbationError, match="rgb\\+segmentation"):
        DynamicNoise(env)
    env.close()


def test_registered_image_ids_hide_the_internal_segmentation():
    env = _quiet(gym.make, "VLAPick-DynamicNoiseWeak-v0", **SMALL)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "instruction"}
    assert info["manifest"]["overlay"] in default_catalog().names("overlays")
    assert info["manifest"]["overlay_alpha"] == 0.3
    env.close()


def test_held_out_pools_never_intersect_training_pools():
    cat = default_catalog()
    for kind in ("objects", "receptacles", "tables"):
        assert not set(cat.names(kind, "train")) & set(cat.names(kind, "test"))
    assert not set(RING_POSITIONS) & set(TRAIN_POSITIONS)
    assert not set(TEST_YAWS) & set(TRAIN_YAWS)
    assert "put {O} on {R}" not in TEST_TEMPLATES
    assert not any(is_nominal_start(o) for o in robot_init_offsets())
    assert ZERO_OFFSET == () and is_nominal_start((0.0,) * 7)


def test_ring_lies_outside_the_training_square():
    edge = max(GRID_OFFSETS)
    assert len(RING_POSITIONS) == 28
    for x, y in RING_POSITIONS:
        assert max(abs(x), abs(y)) == pytest.approx(edge + 0.03)
    for yaw in TEST_YAWS:
        assert (yaw / (math.pi / 8)) % 2 == pytest.approx(1.0, abs=1e-5)


def test_robot_init_offsets_have_the_specified_magnitudes():
    offsets = robot_init_offsets()
    assert 10_000 < len(offsets) < 16_000
    for off in offsets[::97]:
        assert all(abs(v) in (0.0, 0.08, 0.15) for v in off[:5])
        assert off[5] == 0.0 and abs(off[6]) in (0.0, 0.3, 0.6)
        assert abs(off[1]) + abs(off[3]) <= 0.25 + 1e-9


def test_robot_init_pose_really_starts_the_robot_elsewhere(state_env):
    wrapped = RobotInitPose(state_env)
    try:
        _, info = wrapped.reset(seed=2)
        off = np.array(info["manifest"]["robot_qpos_offset"])
        assert tuple(off) in set(robot_init_offsets()) and np.abs(off).max() > 0
        qpos = wrapped.unwrapped.agent.robot.get_qpos()[0, :7].numpy()
        rest = wrapped.unwrapped.agent.keyframes["rest"].qpos[:7]
        np.testing.assert_allclose(qpos - rest, off, atol=1e-4)
    finally:
        wrapped.unwrapped.pools = train_pools()


def test_paraphrased_instruction_is_a_held_out_template(seg_env):
    wrapped = InstructionParaphrase(seg_env)
    try:
        seen = set()
        for seed in range(12):
            obs, info = wrapped.reset(seed=seed)
            m = info["manifest"]
            assert m["template"] in TEST_TEMPLATES
            assert obs["instruction"] == m["template"].replace("{O}", m["object"]).replace("{R}", m["receptacle"])
            seen.add(m["template"])
        assert len(seen) > 4
    finally:
        seg_env.unwrapped.pools = train_pools()


def test_reposition_moves_the_object_once_at_the_configured_step(state_env):
    wrapped = MidEpisodeReposition(state_env, at_step=4)
    try:
        for seed in (0, 1, 2):
            wrapped.reset(seed=seed)
            task = wrapped.unwrapped
            xy = [task.object_pose().p[0, :2].clone()]
            for _ in range(10):
                _, _, _, _, info = wrapped.step(np.array([0, 0, 0.01, 0, 0, 0, 1], dtype=np.float32))
                xy.append(task.object_pose().p[0, :2].clone())
            jumps = [float(torch.linalg.norm(b - a)) for a, b in zip(xy, xy[1:])]
            big = [i for i, j in enumerate(jumps) if j > 0.05]
            assert big == [4], jumps  # the 5th step() call, i.e. after 4 actions
            assert 0.15 - 0.01 <= jumps[4] <= 0.21 + 0.01
            events = info["manifest"]["events"]
            assert len(events) == 1 and events[0]["type"] == "reposition" and events[0]["step"] == 4
    finally:
        task.pools = train_pools()


def test_distractors_are_placed_far_enough_and_named_nowhere(seg_env):
    wrapped = DistractorObject(ObjectSampler(seg_env, pool="test"), pool="test")
    try:
        test_objects = set(default_catalog().names("objects", "test"))
        for seed in range(6):
            obs, info = wrapped.reset(seed=seed)
            m = info["manifest"]
            (d,) = m["distractor_objects"]
            assert m["object"] in test_objects and d["name"] in test_objects and d["name"] != m["object"]
            assert math.dist(d["xy"], m["object_xy"]) > 0.15
            assert d["name"] not in obs["instruction"]
            task = wrapped.unwrapped
            k = task.catalog.names("objects").index(d["name"])
            p = task.objects[k].pose.p[0]
            assert abs(p[0].item() - (-0.1 + d["xy"][0])) < 0.02  # on the table where the manifest says
    finally:
        seg_env.unwrapped.pools = train_pools()


def test_unseen_table_scene_mode_changes_the_render_and_image_mode_composites(seg_env):
    test_tables = set(default_catalog().names("tables", "test"))
    scene = UnseenTable(seg_env, mode="scene")
    try:
        _, info = scene.reset(seed=0)
        assert info["manifest"]["table"] in test_tables
    finally:
        seg_env.unwrapped.pools = train_pools()
    image = UnseenTable(seg_env, mode="image")
    try:
        obs, info = image.reset(seed=0)
        plain, _ = seg_env.reset(seed=0)
        assert info["manifest"]["table"] not in test_tables and info["manifest"]["background"] in test_tables
        changed = (obs["image"] != plain["image"]).any(-1)
        task = seg_env.unwrapped
        cls = task.segmentation_lut()[torch.as_tensor(plain["segmentation"]).long()].numpy()
        assert changed[cls == task.OTHER_SEG].mean() > 0.5
        assert not changed[cls != task.OTHER_SEG].any()
    finally:
        seg_env.unwrapped.pools = train_pools()


def test_stacked_wrappers_pass_check_env():
    env = _quiet(gym.make, "VLAPick-UnseenObjects-v0", obs_mode="rgb+segmentation", **SMALL)
    env = DynamicNoise(env, alpha=0.3)
    _quiet(check_env, env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert info["manifest"]["object"] in default_catalog().names("objects", "test")
    assert "dynamic-noise" in info["manifest"]["pools"] and "objects:test" in info["manifest"]["pools"]
    env.close()


@pytest.mark.parametrize("decl", DECLARATIONS, ids=lambda d: d.env_id)
def test_every_registered_id_resets_steps_and_is_deterministic(decl):
    env = _quiet(gym.make, decl.env_id, camera_width=32, camera_height=32)
    try:
        a, info_a = env.reset(seed=7)
        b, info_b = env.reset(seed=7)
        assert info_a["manifest"] == info_b["manifest"]
        np.testing.assert_array_equal(a["image"], b["image"])
        obs, reward, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
        assert env.observation_space.contains(obs)
    finally:
        env.close()


@pytest.mark.parametrize("cls", [DynamicTexture, DynamicNoise])
def test_batched_image_perturbation_equals_per_env_results(seg_env, cls):
    """The batched path (N envs in one tensor op, as on the GPU) gives each env exactly its own single-env result,
    with per-env textures and alphas. ManiSkill's CPU simulation holds one env, so the batch is built by hand."""
    wrapped = cls(seg_env, alpha=0.5)
    try:
        obs, _ = wrapped.reset(seed=4)
        task = wrapped.unwrapped
        image = torch.from_numpy(seg_env.reset(seed=4)[0]["image"])[None]
        seg = wrapped._segmentation()
        wrapped._version = task.episode_version  # keep the hand-set per-env parameters below
        singles = []
        for tid, alpha in ((3, 0.3), (9, 0.5)):
            wrapped._tid, wrapped._alpha = torch.tensor([tid]), torch.tensor([alpha])
            singles.append(wrapped.perturb(image, seg)[0])
        target = task.target_object
        task.target_object = target.repeat(2)
        wrapped._tid, wrapped._alpha = torch.tensor([3, 9]), torch.tensor([0.3, 0.5])
        batch = wrapped.perturb(image.repeat(2, 1, 1, 1), seg.repeat(2, 1, 1))
        task.target_object = target
        assert batch.shape == (2, *image.shape[1:])
        assert torch.equal(batch[0], singles[0]) and torch.equal(batch[1], singles[1])
        assert not torch.equal(batch[0], batch[1])
    finally:
        seg_env.unwrapped.pools = train_pools()
