import warnings

import gymnasium as gym
import pytest

import vla_ood_envs  # noqa: F401  (registers the IDs)

SMALL = dict(camera_width=64, camera_height=64)


@pytest.fixture(scope="session")
def rgb_env():
    """One small-image VLAPick env shared by the tests that only reset/step it (building one takes seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("VLAPick-v0", obs_mode="rgb+segmentation", **SMALL)
    yield env
    env.close()


@pytest.fixture(scope="session")
def state_env():
    env = gym.make("VLAPick-v0", obs_mode="state")
    yield env
    env.close()


@pytest.fixture(scope="session")
def tiny_demos(tmp_path_factory):
    """A two-episode 32x32 native demo dataset, generated once for the exporter tests."""
    from vla_ood_envs.demos import GenerateConfig, generate

    src = tmp_path_factory.mktemp("demos") / "native"
    generate(GenerateConfig(out=str(src), episodes=2, seed=10, image_height=32, image_width=32), progress=False)
    return src
