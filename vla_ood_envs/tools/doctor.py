"""`vla-ood doctor`: what this machine can run, why, and how to fix what is missing."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..runtime.device import (
    ENV_VAR,
    RenderDeviceError,
    gpu_simulation_available,
    physx_gpu_download_error,
    physx_gpu_library,
    select_render_backend,
)
from ..runtime import compat
from ..runtime.vulkan_probe import VulkanProbeError, find_loader, list_devices


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def render_test_image(out: Path, size: int = 128) -> np.ndarray:
    """Render the first frame of a VLAPick episode and save it; returns the image."""
    import gymnasium as gym
    from PIL import Image

    from .. import registry  # noqa: F401  (registers the IDs)

    env = gym.make("VLAPick-v0", camera_width=size, camera_height=size)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    image = obs["image"]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out)
    return image


def _report_robots(print_fn) -> None:
    """Which robots' assets are here. Optional robots are not problems: their envs say how to install them."""
    from ..tasks.robots import ROBOTS, RobotError, require_assets

    for spec in ROBOTS.values():
        try:
            require_assets(spec)
            state = "ready"
        except RobotError as exc:
            state = f"not installed (optional): {exc}"
        print_fn(f"  robot         {spec.uid} ({spec.label}; {', '.join(spec.tasks)}): {state}")


def gpu_simulation_report() -> tuple[str, str | None]:
    """(the doctor's line on GPU simulation, a problem or None). GPU simulation needs a CUDA device and SAPIEN's
    PhysX GPU library, which SAPIEN downloads on first use; a machine that has CUDA but neither the library nor
    a way to download it has a problem (gym.make(..., num_envs>1) would fail), and the line says how to fix it."""
    if not gpu_simulation_available():
        return "not available (no CUDA device)", None
    lib = physx_gpu_library()
    if lib.present:
        return f"available (CUDA device; PhysX GPU library {lib.path})", None
    why = physx_gpu_download_error(lib)
    if why is None:
        return (f"available on first use (CUDA device; SAPIEN will download its PhysX GPU library from {lib.url} "
                f"to {lib.path}, which takes minutes)"), None
    problem = (f"GPU simulation: SAPIEN's PhysX GPU library {lib.path} is missing and cannot be downloaded from "
               f"{lib.url} ({why}). {lib.install_hint()}")
    return f"not ready (PhysX GPU library missing: {lib.path})", problem


def run(out: Path, print_fn=print) -> int:
    """Print the report; returns the process exit code (0 when everything needed works)."""
    problems: list[str] = []
    print_fn("vla-ood doctor")
    print_fn(f"  python        {platform.python_version()} ({sys.executable})")
    for dist in ("vla_ood_envs", "torch", "sapien", "mani_skill", "gymnasium", "numpy"):
        print_fn(f"  {dist:<13} {_version(dist.replace('_', '-') if dist == 'mani_skill' else dist)}")

    loader = find_loader()
    print_fn(f"  vulkan loader {loader or 'MISSING'}")
    try:
        devices = list_devices()
    except VulkanProbeError as exc:
        devices = []
        print_fn(f"  vulkan        {exc}")
    for d in devices:
        print_fn(f"  vulkan device {d.name} [{d.device_type}] driver {d.driver_info or d.driver_name} "
                 f"(Vulkan {d.api_version})")

    try:
        choice = select_render_backend()
    except RenderDeviceError as exc:
        choice = None
        problems.append(str(exc))
    if choice is not None:
        print_fn("  SAPIEN devices:")
        for e in choice.sapien_devices:
            mark = "*" if e.name == choice.device_name else " "
            print_fn(f"   {mark} {e.name:<40} supported={int(e.supported)} cuda_id={e.cuda_id}")
        print_fn(f"  render device {choice.backend} ({choice.device_name}): {choice.reason}"
                 f"  [override with {ENV_VAR}]")
        print_fn(f"  compat layer  {choice.compat_layer}  [force with {compat.ENV_VAR}=on|off]")
    gpu_line, gpu_problem = gpu_simulation_report()
    print_fn(f"  GPU simulation {gpu_line}")
    if gpu_problem:
        problems.append(gpu_problem)
    _report_robots(print_fn)

    if choice is not None and choice.can_render:
        try:
            t = time.perf_counter()
            image = render_test_image(out)
            dt = time.perf_counter() - t
            std = float(image.reshape(-1, 3).std(0).mean())
            if std < 5.0:
                problems.append(f"the test render at {out} is nearly uniform (std {std:.1f}): the driver renders "
                                f"nothing useful")
            print_fn(f"  test render   {out} ({image.shape[1]}x{image.shape[0]}, pixel std {std:.1f}, "
                     f"{dt:.1f} s incl. scene build)")
        except Exception as exc:  # noqa: BLE001 - doctor reports any failure with its message
            problems.append(f"rendering a test scene failed: {type(exc).__name__}: {exc}")

    if problems:
        print_fn("\nPROBLEMS")
        for p in problems:
            print_fn(f"  - {p}")
        return 1
    print_fn("\nall good")
    return 0
