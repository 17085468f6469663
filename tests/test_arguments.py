"""Bad arguments get the package's own errors: the argument, the value and what is allowed, never a SAPIEN or
ManiSkill internal; the error types are importable from the top-level package."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import vla_ood_envs
from vla_ood_envs import ActionError, ConfigError, EnvClosedError, VLAOodError
from vla_ood_envs.tasks import arguments


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(camera_width=0), r"camera_width=0 is out of range; camera_width must be an integer from 1 to 16384"),
    (dict(camera_width=-5), r"camera_width=-5 is out of range"),
    (dict(camera_height=20000), r"camera_height=20000 is out of range; .* from 1 to 16384"),
    (dict(camera_width=64.5), r"camera_width=64.5 is not an integer"),
    (dict(camera_width="64"), r"camera_width='64' is not an integer"),
    (dict(reward_mode="foo"), r"reward_mode='foo' is not supported; .*'staged', 'dense', 'normalized_dense', "
                              r"'sparse', 'none'"),
    (dict(action_out_of_bounds="wrap"), r"action_out_of_bounds='wrap' .* one of 'error', 'clip'"),
])
@pytest.mark.parametrize("env_id", ["VLAPick-v0", "VLAOpen-v0"])
def test_bad_constructor_arguments_name_the_argument_and_range(env_id, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        gym.make(env_id, **kwargs)


def test_config_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, VLAOodError)


def test_a_very_large_camera_warns_with_the_estimated_memory():
    with pytest.warns(UserWarning, match=r"a 10000x10000 camera needs about 7\.5 GB of memory"):
        assert arguments.camera_size(10000, 10000) == (10000, 10000)
    with pytest.warns(UserWarning, match=r"in each of 4 envs needs about 4\.8 GB"):
        arguments.camera_size(4000, 4000, num_envs=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arguments.camera_size(640, 480)  # the study's camera: no warning
        arguments.camera_size(10000, 10000, obs_mode="state")  # no cameras in state mode


def test_the_warning_comes_from_gym_make_before_anything_is_built():
    # A bad second argument stops construction right after the camera check, so this costs no scene.
    with pytest.warns(UserWarning, match="9000x9000 camera"), pytest.raises(ConfigError, match="reward_mode"):
        gym.make("VLAPick-v0", camera_width=9000, camera_height=9000, reward_mode="foo")


@pytest.mark.parametrize("action, pattern", [
    (None, r"action must be 7 numbers .*got NoneType None"),
    ("0 0 0 0 0 0 1", r"got str"),
    ({"panda": np.zeros(7)}, r"got dict"),
    (np.array(["a"] * 7), r"dtype <U1"),
    (np.ones(7, dtype=bool), r"dtype bool"),
    (torch.ones(7, dtype=torch.bool), r"dtype torch.bool"),
    ([[0.0] * 7, [0.0]], r"action must be 7 numbers"),
])
def test_malformed_actions_raise_action_error(state_env, action, pattern):
    state_env.reset(seed=0)
    with pytest.raises(ActionError, match=pattern):
        state_env.step(action)
    # Ints are numbers: accepted (and an all-zero action is a no-op).
    state_env.step(np.zeros(7, dtype=np.int64))


def test_step_and_reset_after_close_say_the_env_is_closed():
    env = gym.make("VLAPick-v0", obs_mode="state")
    env.reset(seed=0)
    env.close()
    with pytest.raises(EnvClosedError, match=r"step\(\) on a closed env.*make a new env"):
        env.step(np.zeros(7, np.float32))
    with pytest.raises(EnvClosedError, match=r"reset\(\) on a closed env"):
        env.reset(seed=0)
    env.close()  # closing twice is harmless


def test_public_error_types_are_importable_from_the_package():
    from vla_ood_envs.catalog import CatalogError
    from vla_ood_envs.demos import DatasetError, SplitError
    from vla_ood_envs.factors import PoolError
    from vla_ood_envs.runtime.device import RenderDeviceError
    from vla_ood_envs.tasks.base import ActionError as ActionErrorInTasks
    from vla_ood_envs.tasks.robots import RobotError
    from vla_ood_envs.wrappers.base import PerturbationError

    assert ActionErrorInTasks is vla_ood_envs.ActionError
    for cls in (CatalogError, DatasetError, SplitError, PoolError, RenderDeviceError, RobotError,
                PerturbationError, EnvClosedError, vla_ood_envs.WorkerError, vla_ood_envs.OutputExistsError):
        assert getattr(vla_ood_envs, cls.__name__) is cls and issubclass(cls, VLAOodError)
    assert issubclass(vla_ood_envs.OutputExistsError, FileExistsError)
