"""Severity as a declared attribute: each wrapper names its strength argument and range, the declaration table
reports every ID's severity, and `gym.make(ID, severity=...)` builds the ID at another strength (an evaluation can
sweep without knowing the wrapper)."""

import inspect
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest

from vla_ood_envs import registry, wrappers
from vla_ood_envs.wrappers import PerturbationError
from vla_ood_envs.wrappers.base import Perturbation, Severity

# What the study's IDs should report (param, value): the rows' own values and the wrappers' defaults.
EXPECTED = {
    "VLAPick-DynamicTextureWeak-v0": ("alpha", 0.3), "VLAPick-DynamicTextureStrong-v0": ("alpha", 0.5),
    "VLAPick-DynamicNoiseWeak-v0": ("alpha", 0.3), "VLAPick-DynamicNoiseStrong-v0": ("alpha", 0.5),
    "VLAOpen-DynamicNoise-v0": ("alpha", 0.5),
    "VLAPick-UnseenRobotInitPose-v0": ("scale", 1.0), "VLAOpen-UnseenRobotInitPose-v0": ("scale", 1.0),
    "VLAPick-MidEpisodeReposition-v0": ("distance", (0.15, 0.21)),
    "VLAPick-MultiObjectSeen-v0": ("min_distance", 0.15), "VLAPick-MultiObjectUnseen-v0": ("min_distance", 0.15),
    "VLAPick-DistractiveReceptacle-v0": ("min_distance", 0.15),
    "VLAPick-MultiReceptacleUnseen-v0": ("min_distance", 0.15),
}


def test_every_wrapper_declares_a_constructor_argument_or_none():
    classes = [getattr(wrappers, n) for n in wrappers.__all__]
    perturbations = [c for c in classes if isinstance(c, type) and issubclass(c, Perturbation)
                     and c is not Perturbation]
    declared = {c.__name__: c.SEVERITY for c in perturbations}
    assert {n for n, s in declared.items() if s is not None} == {
        "DynamicTexture", "DynamicNoise", "RobotInitPose", "MidEpisodeReposition", "DistractorObject",
        "DistractorReceptacle"}
    for cls in perturbations:
        if cls.SEVERITY is not None:
            assert cls.SEVERITY.param in inspect.signature(cls.__init__).parameters, cls
            assert cls.SEVERITY.low < cls.SEVERITY.high and cls.SEVERITY.stronger in ("higher", "lower")


def test_table_reports_each_ids_severity():
    for d in registry.DECLARATIONS:
        if d.env_id in EXPECTED:
            setting = registry.severity_of(d.env_id)
            param, value = EXPECTED[d.env_id]
            assert (setting.param, setting.default) == (param, value)
            low, high = setting.range
            for v in np.atleast_1d(setting.default):
                assert low < v <= high
        else:
            assert d.severity is None
            with pytest.raises(ValueError, match="no severity.*VLAPick-DynamicNoiseWeak-v0"):
                registry.severity_of(d.env_id)
    assert set(registry.severity_ids()) == set(EXPECTED)
    param, default, (low, high) = registry.severity_of("VLAPick-DynamicNoiseStrong-v0")  # unpacks as a triple
    assert (param, default, low, high) == ("alpha", 0.5, 0.0, 1.0)


def test_severity_check():
    alpha = Severity("alpha", 0.0, 1.0, low_open=True)
    assert alpha.check(1) == 1.0 and alpha.range_text() == "(0, 1]"
    for bad in (0.0, 1.5, -0.1, "strong", (0.1, 0.2)):
        with pytest.raises(PerturbationError, match="alpha must be"):
            alpha.check(bad)
    band = Severity("distance", 0.0, 0.3, unit="m", low_open=True, interval=True)
    assert band.check([0.05, 0.08]) == (0.05, 0.08)
    for bad in ((0.1, 0.05), (0.0, 0.1), (0.1, 0.4), 0.1):
        with pytest.raises(PerturbationError, match=r"distance must be .*\(0, 0.3\] m"):
            band.check(bad)


def _state_env(env_id, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, obs_mode="state", **kwargs)


def _manifests(env, seeds):
    return [env.reset(seed=s)[1]["manifest"] for s in seeds]


def test_sweep_changes_what_the_episodes_draw():
    """The same call for three IDs with different wrappers: each built at another severity draws accordingly."""
    seeds = range(6)
    env = _state_env("VLAPick-UnseenRobotInitPose-v0", severity=0.5)
    try:
        offsets = np.array([m["robot_qpos_offset"] for m in _manifests(env, seeds)])
        assert np.abs(offsets).max() <= 0.3 + 1e-9 and np.abs(offsets[:, :5]).max() <= 0.075 + 1e-9
        assert np.abs(offsets).max() > 0
    finally:
        env.close()
    env = _state_env("VLAPick-MidEpisodeReposition-v0", severity=(0.05, 0.08))
    try:
        for m in _manifests(env, seeds):
            assert 0.05 <= math.dist(m["reposition_xy"], m["object_xy"]) <= 0.08
    finally:
        env.close()
    env = _state_env("VLAPick-MultiObjectSeen-v0", severity=0.19)
    try:
        for m in _manifests(env, seeds):
            assert math.dist(m["distractor_objects"][0]["xy"], m["object_xy"]) > 0.19
    finally:
        env.close()


def test_image_severity_reaches_the_manifest():
    env = gym.make("VLAPick-DynamicNoiseStrong-v0", severity=0.2, camera_width=32, camera_height=32)
    try:
        _, info = env.reset(seed=1)
        assert info["manifest"]["overlay_alpha"] == pytest.approx(0.2)
        assert any(p.startswith("dynamic-noise:0.2") for p in info["manifest"]["pools"].split("+"))
    finally:
        env.close()


def test_bad_severity_requests():
    with pytest.raises(PerturbationError, match=r"alpha must be in \(0, 1\]"):
        gym.make("VLAPick-DynamicNoiseWeak-v0", severity=1.5, camera_width=32, camera_height=32)
    with pytest.raises(ValueError, match="VLAPick-UnseenObjects-v0 has no severity"):
        gym.make("VLAPick-UnseenObjects-v0", severity=0.5, obs_mode="state")
