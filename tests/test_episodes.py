"""Episodes a trainer can trust: seeds that replay, lengths that hold, checked options, one frame per record,
wrappers that do not silently replace each other."""

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest

from vla_ood_envs.catalog import default_catalog
from vla_ood_envs.factors import PickFactors, Placement
from vla_ood_envs.wrappers import (
    DistractorObject, DistractorReceptacle, DynamicNoise, DynamicTexture, MidEpisodeReposition, PerturbationError,
)

TINY = dict(camera_width=32, camera_height=32)
ZERO = np.zeros(7, dtype=np.float32)


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def env():
    e = _quiet(gym.make, "VLAPick-v0", **TINY)
    yield e
    e.close()


def _factors(**changes) -> PickFactors:
    f = PickFactors(object="marker", receptacle="plate", table=default_catalog().names("tables", "train")[0],
                    template="put {O} on {R}", object_xy=(-0.045, 0.045), receptacle_xy=(0.075, -0.075),
                    object_yaw=0.0)
    return dataclasses.replace(f, **changes)


def test_seedless_resets_record_the_seed_that_replays_them(env):
    _, info = env.reset(seed=0)
    assert info["manifest"]["seed"] == 0
    played = []
    for _ in range(3):
        obs, info = env.reset()
        played.append((info["manifest"], obs["image"].copy()))
    seeds = [m["seed"] for m, _ in played]
    assert 0 not in seeds and len(set(seeds)) == 3, seeds
    for manifest, image in played:
        obs, info = env.reset(seed=manifest["seed"])
        assert info["manifest"] == manifest
        np.testing.assert_array_equal(obs["image"], image)  # the first frame too
    # Seeding restarts the env's stream: the same seedless episodes follow the same seed.
    env.reset(seed=0)
    assert [env.reset()[1]["manifest"]["seed"] for _ in range(3)] == seeds


def test_a_fresh_env_does_not_start_from_a_fixed_seed():
    a, b = (_quiet(gym.make, "VLAPick-v0", obs_mode="state") for _ in range(2))
    try:
        ma, mb = a.reset()[1]["manifest"], b.reset()[1]["manifest"]
        assert ma["seed"] != mb["seed"] and 2022 not in (ma["seed"], mb["seed"])
        assert {k: v for k, v in ma.items() if k != "seed"} != {k: v for k, v in mb.items() if k != "seed"}
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("seed", ["a", 1.5, -1, 2**32, True, [0, 1]])
def test_seeds_that_are_not_ints_in_range_are_refused(env, seed):
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=seed)


def test_explicit_records_say_where_they_came_from_and_what_lies_outside_the_pools(env):
    _, info = env.reset(options={"factors": _factors()})
    m = info["manifest"]
    assert m["seed"] is None and m["replayed_from"] == {"seed": None, "pools": None}
    assert m["pools"] == "train" and "outside_pools" not in m
    # A manifest replays its episode and keeps its origin.
    _, info = env.reset(seed=3)
    original = info["manifest"]
    _, info = env.reset(options={"factors": original})
    replay = info["manifest"]
    assert replay["replayed_from"] == {"seed": 3, "pools": "train"}
    assert {k: replay[k] for k in ("object", "receptacle", "table", "object_xy")} == \
        {k: original[k] for k in ("object", "receptacle", "table", "object_xy")}
    # A held-out object and table in a training env: played, and the record says so.
    held_out_object = default_catalog().names("objects", "test")[0]
    held_out_table = default_catalog().names("tables", "test")[0]
    _, info = env.reset(options={"factors": _factors(object=held_out_object, table=held_out_table)})
    m = info["manifest"]
    assert m["object"] == held_out_object and m["outside_pools"] == ["object", "table"]
    assert m["pools"] == "train+outside:object,table"
    # The next sampled episode is an ordinary one again.
    m = env.reset(seed=1)[1]["manifest"]
    assert m["pools"] == "train" and "replayed_from" not in m and m["seed"] == 1


def test_unknown_reset_options_are_refused_with_the_known_ones(env):
    with pytest.raises(ValueError, match="unknown reset option.*'factor'.*'factors'"):
        env.reset(seed=0, options={"factor": _factors()})
    with pytest.raises(ValueError, match="PickPools"):
        env.reset(seed=0, options={"pools": {"objects": ["marker"]}})
    with pytest.raises(ValueError, match="reconfigure"):
        env.reset(seed=0, options={"reconfigure": "yes"})


@pytest.mark.parametrize("changes, message", [
    (dict(object_xy=(0.9, 0.0)), "off the table"),
    (dict(receptacle_xy=(0.0, 0.8)), "off the table"),
    (dict(object_xy=(-0.5, 0.0)), "robot's base"),
    (dict(object_xy=(0.075, -0.075)), "apart"),  # on the receptacle's cell
    (dict(distractor_objects=(Placement("apple", (-0.045, 0.045)),)), "puts the distractor object 'apple' on the object"),
    (dict(distractor_receptacles=(Placement("saucer", (0.045, -0.075)),)), "on the receptacle"),
    (dict(reposition_xy=(0.075, -0.075)), "onto the receptacle"),
])
def test_explicit_placements_follow_the_placement_rules(env, changes, message):
    m = env.reset(seed=4)[1]["manifest"]
    with pytest.raises(ValueError, match=message):
        env.reset(options={"factors": _factors(**changes)})
    assert env.unwrapped.manifests()[0] == m  # a refused record leaves the episode as it was


def test_open_task_placements_stay_on_the_table():
    from vla_ood_envs.factors import OpenFactors

    env = _quiet(gym.make, "VLAOpen-v0", obs_mode="state")
    try:
        m = env.reset(seed=0)[1]["manifest"]
        bad = OpenFactors.from_dict({**m, "object_xy": (0.0, -0.7)})
        with pytest.raises(ValueError, match="off the table"):
            env.reset(options={"factors": bad})
        good = env.reset(options={"factors": m})[1]["manifest"]
        assert good["object_xy"] == m["object_xy"] and good["replayed_from"]["seed"] == 0
    finally:
        env.close()


@pytest.mark.parametrize("mode", ["rgbd", "depth", "pointcloud", "sensor_data"])
def test_undocumented_obs_modes_are_refused_with_the_documented_ones(mode):
    with pytest.raises(ValueError, match="rgb\\+segmentation.*state"):
        gym.make("VLAPick-v0", obs_mode=mode)


def test_max_episode_steps_of_gym_make_is_the_task_length():
    env = _quiet(gym.make, "VLAPick-v0", obs_mode="state", max_episode_steps=5)
    try:
        assert env.spec.max_episode_steps == 5 and env.unwrapped.max_episode_steps == 5
        env.reset(seed=0)
        truncated = [env.step(ZERO)[3] for _ in range(5)]
        assert truncated == [False] * 4 + [True]
        assert env.unwrapped.manifests()[0]["max_episode_steps"] == 5
    finally:
        env.close()
    with pytest.raises(ValueError, match="max_episode_steps"):
        gym.make("VLAPick-v0", obs_mode="state", max_episode_steps=0)
    # Gymnasium's TimeLimit is not batched: the batched env takes the length as a task argument instead.
    with pytest.raises(ValueError, match="make_env"):
        gym.make("VLAPick-v0", num_envs=2, obs_mode="state", max_episode_steps=5)


def test_default_spec_reports_the_task_length(env):
    assert env.spec.max_episode_steps == env.unwrapped.max_episode_steps == 80
    assert "max_episode_steps" not in env.reset(seed=0)[1]["manifest"]


def test_reposition_events_use_the_frame_of_the_factor_record():
    env = _quiet(gym.make, "VLAPick-MidEpisodeReposition-v0", obs_mode="state")
    try:
        _, info = env.reset(seed=2)
        m = info["manifest"]
        for _ in range(6):
            _, _, _, _, info = env.step(ZERO)
        (event,) = info["manifest"]["events"]
        assert event["to"] == pytest.approx(list(m["reposition_xy"]), abs=1e-4)
        assert event["from"] == pytest.approx(list(m["object_xy"]), abs=5e-3)
    finally:
        env.close()


def test_a_perturbation_stacked_twice_is_refused():
    env = _quiet(gym.make, "VLAPick-v0", obs_mode="rgb+segmentation", **TINY)
    try:
        weak = DynamicNoise(env, alpha=0.3)
        with pytest.raises(PerturbationError, match="DynamicNoise is already in this env's stack"):
            DynamicNoise(weak, alpha=0.5)
        # Two perturbations that would draw one factor from two pools: refused too.
        with pytest.raises(PerturbationError, match="overlay_alpha"):
            DynamicTexture(weak, alpha=0.5)
        registered = _quiet(gym.make, "VLAPick-DynamicNoiseWeak-v0", **TINY)
        try:
            with pytest.raises(PerturbationError, match="already in this env's stack"):
                DynamicNoise(registered, alpha=0.5)
        finally:
            registered.close()
        # Different factors (or the same setting) compose.
        both = DistractorReceptacle(DistractorObject(env))
        m = both.reset(seed=0)[1]["manifest"]
        assert len(m["distractor_objects"]) == 1 and len(m["distractor_receptacles"]) == 1
    finally:
        env.close()
