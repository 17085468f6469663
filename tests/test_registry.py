"""Registered IDs, the declaration table, the CLI listing, and errors for bad requests."""

import subprocess
import sys

import gymnasium as gym
import pytest

from vla_ood_envs.registry import DECLARATIONS, declaration, make_env


def test_every_declaration_is_registered():
    for d in DECLARATIONS:
        assert d.env_id in gym.registry
    assert declaration("VLAPick-v0").axis == "IND"


def test_unknown_id_names_the_known_ones():
    with pytest.raises(gym.error.UnregisteredEnv, match="VLAPick-v0"):
        make_env("VLAPick-Nope-v0")


def test_batched_mode_without_gpu_points_to_the_vector_api():
    from vla_ood_envs.runtime.device import gpu_simulation_available

    if gpu_simulation_available():
        pytest.skip("a CUDA device is visible, so num_envs > 1 builds the GPU-batched env instead of raising; the "
                    "batched path is tested in tests/test_gpu.py (marker gpu)")
    with pytest.raises(RuntimeError, match="make_vec"):
        gym.make("VLAPick-v0", num_envs=4, obs_mode="state")


def test_cli_list():
    out = subprocess.run([sys.executable, "-m", "vla_ood_envs.cli", "list"], capture_output=True, text=True,
                         check=True).stdout
    assert "VLAPick-v0" in out and "IND" in out


def test_make_vec_runs_envs_in_processes():
    import numpy as np

    venv = gym.make_vec("VLAPick-v0", num_envs=2, camera_width=32, camera_height=32)
    try:
        obs, info = venv.reset(seed=[0, 1])
        assert obs["image"].shape == (2, 32, 32, 3)
        assert obs["instruction"] == tuple(f"put {o} on plate" for o in info["manifest"]["object"])
        obs, reward, terminated, truncated, info = venv.step(np.zeros((2, 7), dtype=np.float32))
        assert reward.shape == (2,) and not truncated.any()
    finally:
        venv.close()
