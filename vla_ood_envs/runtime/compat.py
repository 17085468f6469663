"""The compatibility Vulkan layer for CPU drivers too old for SAPIEN (lavapipe before Mesa 24.3).

`compat_layer.c` (shipped with the package) is compiled with the system C compiler on first use and cached
under ~/.cache/vla_ood_envs (one build per source version), and enabled for this process through the Vulkan
loader's environment variables, before SAPIEN creates its Vulkan instance. The device module decides when:
only for a Mesa CPU driver older than 24.3, never for a driver that supports SAPIEN already or for an NVIDIA GPU.
VLA_OOD_VK_COMPAT=on|off|auto forces the decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from .vulkan_probe import VulkanDevice
from ..errors import CompatLayerError  # noqa: F401 (kept importable from here)

LAYER_NAME = "VK_LAYER_VLA_OOD_lavapipe_compat"
ENV_VAR = "VLA_OOD_VK_COMPAT"
MIN_MESA = (24, 3)
LIBRARY = "libvla_ood_lavapipe_compat.so"
MANIFEST = "VkLayer_vla_ood_lavapipe_compat.json"


def mode() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value not in ("auto", "on", "off"):
        raise CompatLayerError(f"{ENV_VAR} must be auto, on or off, got {value!r}")
    return value


def needed(device: VulkanDevice) -> bool:
    """Whether `device` is a CPU driver SAPIEN rejects and the layer makes usable."""
    mesa = device.mesa_version
    return device.is_cpu and not device.is_nvidia and mesa is not None and mesa[:2] < MIN_MESA


def _source() -> bytes:
    return resources.files("vla_ood_envs.runtime").joinpath("compat_layer.c").read_bytes()


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "vla_ood_envs" / "vk_layer" / hashlib.sha256(_source()).hexdigest()[:16]


def build() -> Path:
    """Compile the layer (once per source version) and return the folder holding it and its manifest."""
    out = cache_dir()
    if (out / LIBRARY).is_file() and (out / MANIFEST).is_file():
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise CompatLayerError("building the Vulkan compatibility layer needs a C compiler: "
                               "sudo apt-get install gcc libvulkan-dev")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build in a private folder and rename it into place, so concurrent processes never load a half-written file.
    work = Path(tempfile.mkdtemp(prefix="build-", dir=out.parent))
    try:
        src = work / "compat_layer.c"
        src.write_bytes(_source())
        cmd = [cc, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o", str(work / LIBRARY), str(src), "-lpthread"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            hint = " (install the Vulkan headers: sudo apt-get install libvulkan-dev)" \
                if "vulkan" in proc.stderr else ""
            raise CompatLayerError(f"building the Vulkan compatibility layer failed{hint}:\n{proc.stderr[-2000:]}")
        manifest = {
            "file_format_version": "1.1.2",
            "layer": {
                "name": LAYER_NAME, "type": "GLOBAL", "library_path": f"./{LIBRARY}", "api_version": "1.3.0",
                "implementation_version": "1",
                "description": "vla_ood_envs: lets SAPIEN render on lavapipe older than Mesa 24.3",
            },
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            os.replace(work, out)
        except OSError:
            if not (out / LIBRARY).is_file():  # another process won the race only if it finished
                raise
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def enable(folder: Path) -> None:
    """Put the layer on the loader's search path and in the list of enabled instance layers of this process.

    Must run before SAPIEN creates its Vulkan instance (the loader reads these variables then); child processes
    inherit them.
    """
    paths = [p for p in os.environ.get("VK_LAYER_PATH", "").split(os.pathsep) if p]
    if str(folder) not in paths:
        os.environ["VK_LAYER_PATH"] = os.pathsep.join([str(folder), *paths])
    layers = [p for p in os.environ.get("VK_INSTANCE_LAYERS", "").split(os.pathsep) if p]
    if LAYER_NAME not in layers:
        os.environ["VK_INSTANCE_LAYERS"] = os.pathsep.join([*layers, LAYER_NAME])


def active() -> bool:
    return LAYER_NAME in os.environ.get("VK_INSTANCE_LAYERS", "").split(os.pathsep)
