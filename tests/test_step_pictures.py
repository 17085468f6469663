"""Pictures read without copies and the env's one-thread scope: same images, no aliasing, user settings kept."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from mani_skill.render.shaders import PREBUILT_SHADER_CONFIGS

from vla_ood_envs.tasks import scene as scene_lib

SIZE = dict(camera_width=48, camera_height=48)
ACTION = np.array([0.05, 0.0, -0.02, 0.0, 0.0, 0.3, 1.0], np.float32)


def _make(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def _frames(make, read):
    env = _make(make)
    obs, _ = env.reset(seed=0)
    out = [read(env, obs)]
    for _ in range(3):
        obs, *_ = env.step(ACTION)
        out.append(read(env, obs))
    env.close()
    return out


def _maniskill_pictures(monkeypatch):
    """ManiSkill's own picture path: its copy of every picture and its minimal shader transforms."""
    monkeypatch.setattr(scene_lib, "zero_copy_pictures", lambda sensors: None)
    monkeypatch.setattr(scene_lib, "_minimal_shader", lambda depth: PREBUILT_SHADER_CONFIGS["minimal"])


def test_observations_equal_maniskills_picture_path(monkeypatch):
    make = lambda: gym.make("VLAPick-v0", obs_mode="rgb+segmentation", **SIZE)  # noqa: E731
    read = lambda env, obs: {k: obs[k].copy() for k in ("image", "segmentation")}  # noqa: E731
    ours = _frames(make, read)
    _maniskill_pictures(monkeypatch)
    theirs = _frames(make, read)
    for a, b in zip(ours, theirs):
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
    assert ours[0]["segmentation"].flags.c_contiguous


def test_depth_and_position_still_made_when_asked(monkeypatch):
    from vla_ood_envs.tasks.pick import VLAPickEnv

    make = lambda: VLAPickEnv(obs_mode="rgb+depth+segmentation", **SIZE)  # noqa: E731
    read = lambda env, obs: {k: v.clone() for k, v in obs["sensor_data"]["base_camera"].items()}  # noqa: E731
    ours = _frames(make, read)
    _maniskill_pictures(monkeypatch)
    theirs = _frames(make, read)
    for a, b in zip(ours, theirs):
        assert sorted(a) == sorted(b) and {"rgb", "depth", "segmentation"} <= set(a)
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def test_a_kept_observation_does_not_change_with_later_frames(rgb_env):
    obs, _ = rgb_env.reset(seed=0)
    kept = obs["image"]
    copy = kept.copy()
    for _ in range(2):
        new, *_ = rgb_env.step(ACTION)
    assert not np.array_equal(new["image"], copy)  # the picture moved on ...
    assert np.array_equal(kept, copy)  # ... the array handed out earlier did not


@pytest.mark.parametrize("setting,inside", [(None, 1), ("keep", 3)])
def test_env_runs_on_one_torch_thread_and_restores_the_callers_setting(monkeypatch, setting, inside):
    if setting is None:
        monkeypatch.delenv("VLA_OOD_TORCH_THREADS", raising=False)
    else:
        monkeypatch.setenv("VLA_OOD_TORCH_THREADS", setting)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        env = _make(lambda: gym.make("VLAPick-v0", **SIZE))
        seen = []
        base = env.unwrapped
        evaluate = base.evaluate
        monkeypatch.setattr(base, "evaluate", lambda: seen.append(torch.get_num_threads()) or evaluate())
        env.reset(seed=0)
        env.step(ACTION)
        assert torch.get_num_threads() == 3  # the caller's setting, outside the env
        env.close()
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {inside}
