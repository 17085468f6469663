"""Rendering without a GPU: real SAPIEN images on the CPU driver, state-only mode, and clear device errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from vla_ood_envs.runtime import device
from vla_ood_envs.runtime.vulkan_probe import VulkanDevice


def test_cpu_render_has_content_and_segmentation_names_the_actors(rgb_env):
    obs, info = rgb_env.reset(seed=3)
    image, seg = obs["image"], obs["segmentation"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # A real render: colours vary across the frame and between channels (not a blank or constant buffer).
    assert image.reshape(-1, 3).std(0).mean() > 10
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    base = rgb_env.unwrapped
    names = {i: getattr(obj, "name", "") for i, obj in base.segmentation_id_map.items()}
    visible = {names.get(int(i), "") for i in np.unique(seg)}
    assert "table" in visible
    assert f"object:{info['manifest']['object']}" in visible
    assert f"receptacle:{info['manifest']['receptacle']}" in visible
    assert any(n.startswith("panda") for n in visible), visible
    # Parked (unused) objects are not in view.
    assert not any(n.startswith("object:") and n != f"object:{info['manifest']['object']}" for n in visible)


def test_state_only_mode_needs_no_render_device(state_env):
    assert state_env.unwrapped.backend.render_backend == "none"
    obs, _ = state_env.reset(seed=0)
    assert obs.ndim == 1 and obs.dtype == np.float32 and np.isfinite(obs).all()
    obs2, reward, terminated, truncated, info = state_env.step(np.zeros(7, dtype=np.float32))
    assert obs2.shape == obs.shape and isinstance(reward, float)


def test_doctor_fails_with_fix_when_no_driver(tmp_path):
    env = dict(os.environ, VK_ICD_FILENAMES=str(tmp_path / "none.json"), VK_DRIVER_FILES=str(tmp_path / "none.json"))
    proc = subprocess.run([sys.executable, "-m", "vla_ood_envs.cli", "doctor", "--out", str(tmp_path / "d.png")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No Vulkan rendering is possible" in proc.stdout
    assert "install_vulkan.sh" in proc.stdout
    assert not (tmp_path / "d.png").exists()


def test_doctor_succeeds_and_writes_a_picture(tmp_path):
    # An empty ManiSkill asset directory: the optional WidowX is reported missing, with its install command, but is
    # not a problem.
    env = dict(os.environ, MS_ASSET_DIR=str(tmp_path / "ms"))
    proc = subprocess.run([sys.executable, "-m", "vla_ood_envs.cli", "doctor", "--out", str(tmp_path / "d.png")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "render device cpu" in proc.stdout or "render device cuda" in proc.stdout
    assert (tmp_path / "d.png").stat().st_size > 1000
    assert "panda_vla (Franka Panda; VLAPick, VLAOpen): ready" in proc.stdout
    assert "widowx250s_vla (WidowX-250S; VLAPick): not installed (optional)" in proc.stdout
    assert "download_asset widowx250s" in proc.stdout


def _fake_probe(monkeypatch, vulkan, summary):
    monkeypatch.setattr(device, "list_devices", lambda: vulkan)
    monkeypatch.setattr(device, "_sapien_devices", lambda: device.parse_sapien_summary(summary))
    device._cached_choice.cache_clear()


OLD_LAVAPIPE = VulkanDevice("llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", 0x10005, "1.3.230", "llvmpipe",
                            "Mesa 22.3.6 (LLVM 15.0.6)")
SUMMARY_UNSUPPORTED = "GPU: llvmpipe (LLVM 15.0.6, 256 bits)\n  Supported: 0\n  Present:   0\n  cudaId:    -1\n"


def test_too_old_cpu_driver_is_explained(monkeypatch):
    _fake_probe(monkeypatch, [OLD_LAVAPIPE], SUMMARY_UNSUPPORTED)
    with pytest.raises(device.RenderDeviceError, match=r"too old for SAPIEN.*24\.3.*found 22\.3\.6"):
        device.select_render_backend("auto")
    device._cached_choice.cache_clear()


def test_gpu_preferred_over_cpu_and_unknown_backend_rejected(monkeypatch):
    gpu = VulkanDevice("NVIDIA H100", "discrete-gpu", 0x10DE, "1.3.0", "NVIDIA", "550.1")
    summary = ("GPU: NVIDIA H100\n  Supported: 1\n  cudaId:    0\n"
               "GPU: llvmpipe (LLVM 19, 256 bits)\n  Supported: 1\n  cudaId:    -1\n")
    cpu = VulkanDevice("llvmpipe (LLVM 19, 256 bits)", "cpu", 0x10005, "1.4", "llvmpipe", "Mesa 25.0.7")
    _fake_probe(monkeypatch, [gpu, cpu], summary)
    assert device.select_render_backend("auto").backend == "cuda"
    assert device.select_render_backend("cpu").backend == "cpu"
    assert device.select_render_backend("none").backend == "none"
    with pytest.raises(device.RenderDeviceError, match="Unknown render backend 'vulkan'"):
        device.select_render_backend("vulkan")
    device._cached_choice.cache_clear()


def test_mesa_version_parsing():
    assert OLD_LAVAPIPE.mesa_version == (22, 3, 6)
    assert VulkanDevice("x", "cpu", 0, "1", "llvmpipe", "Mesa 25.0.7-2~bpo12+1 (LLVM 15)").mesa_version == (25, 0, 7)
    assert VulkanDevice("x", "discrete-gpu", 0x10DE, "1", "NVIDIA", "550.54").mesa_version is None


def test_state_env_without_any_vulkan_device_explains_why(tmp_path):
    code = ("import gymnasium as gym, vla_ood_envs\n"
            "gym.make('VLAPick-v0', obs_mode='state')\n")
    env = dict(os.environ, VK_ICD_FILENAMES=str(tmp_path / "none.json"), VK_DRIVER_FILES=str(tmp_path / "none.json"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "RenderDeviceError" in proc.stderr and "even for state-only envs" in proc.stderr
