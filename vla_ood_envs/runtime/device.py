"""Choose the device SAPIEN renders on, and explain clearly when there is none.

Order of preference: an NVIDIA GPU SAPIEN supports (`cuda`), else a CPU Vulkan driver SAPIEN supports
(lavapipe, `cpu`). `render_backend="none"` is passed through for state-only use. The choice can be forced with
the environment variable VLA_OOD_RENDER_BACKEND (auto | cuda | cpu | none | pci:<sapien alias>).

A CPU driver that exists but that SAPIEN rejects (Mesa before 24.3 lacks descriptorBindingPartiallyBound) is
reported with the command that installs a newer one. Machines whose Mesa cannot be upgraded are the case the
package's compatibility Vulkan layer is for; that is the one place to plug it in (`_cpu_driver_unsupported`).

Env worker processes the package spawns (gym.make_vec workers, demo generation workers, `vla-ood bench`) run
torch on one intra-op thread when they render on the CPU driver (see `limit_torch_threads`); a user's own process
keeps its torch settings unless VLA_OOD_TORCH_THREADS asks otherwise, and a single env runs its own tensor work
on one thread inside each call, restoring the caller's count (`env_thread_scope`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import compat
from .vulkan_probe import VulkanDevice, VulkanProbeError, list_devices
from ..errors import PhysXGpuLibraryError, RenderDeviceError  # noqa: F401 (kept importable from here)

ENV_VAR = "VLA_OOD_RENDER_BACKEND"
TORCH_THREADS_VAR = "VLA_OOD_TORCH_THREADS"
MIN_MESA_FOR_SAPIEN = (24, 3)


@dataclass(frozen=True)
class SapienDeviceEntry:
    name: str
    supported: bool
    cuda_id: int


@dataclass(frozen=True)
class RenderChoice:
    backend: str
    """Value for ManiSkill's `render_backend` argument: "cuda", "cpu", "none" or "pci:..."."""
    reason: str
    device_name: str | None = None
    driver_info: str | None = None
    vulkan_devices: tuple[VulkanDevice, ...] = field(default=(), repr=False)
    sapien_devices: tuple[SapienDeviceEntry, ...] = field(default=(), repr=False)
    compat_layer: str = "not needed"
    """Whether the compatibility Vulkan layer is in use, and why ("in use: ...", "not needed", "off: ...")."""

    @property
    def can_render(self) -> bool:
        return self.backend != "none"


def install_script_path() -> str:
    """The shell script that installs a Vulkan loader and a new enough CPU driver (shipped with the package)."""
    return str(resources.files("vla_ood_envs.runtime").joinpath("install_vulkan.sh"))


def _fix_hint() -> str:
    return f"Fix: sudo bash {install_script_path()}   (then run `vla-ood doctor` again)"


def parse_sapien_summary(summary: str) -> list[SapienDeviceEntry]:
    """Parse `sapien.render.get_device_summary()` (one 'GPU: name' block per Vulkan device)."""
    entries = []
    for block in re.split(r"^GPU: ", summary, flags=re.M)[1:]:
        name = block.splitlines()[0].strip()
        supported = re.search(r"Supported:\s*(\d)", block)
        cuda = re.search(r"cudaId:\s*(-?\d+)", block)
        entries.append(
            SapienDeviceEntry(
                name=name,
                supported=bool(supported and supported.group(1) == "1"),
                cuda_id=int(cuda.group(1)) if cuda else -1,
            )
        )
    return entries


def _sapien_devices() -> list[SapienDeviceEntry]:
    import sapien.render

    try:
        return parse_sapien_summary(sapien.render.get_device_summary())
    except RuntimeError:
        # SAPIEN raises "failed to find a rendering device" when no Vulkan device exists at all.
        return []


def _cpu_driver_unsupported(cpu: VulkanDevice) -> RenderDeviceError:
    mesa = cpu.mesa_version
    version = ".".join(map(str, mesa)) if mesa else cpu.driver_info or "unknown"
    return RenderDeviceError(
        f"The CPU Vulkan driver '{cpu.name}' ({cpu.driver_info or cpu.driver_name}) is too old for SAPIEN: "
        f"SAPIEN needs descriptorBindingPartiallyBound, which lavapipe has from Mesa "
        f"{MIN_MESA_FOR_SAPIEN[0]}.{MIN_MESA_FOR_SAPIEN[1]} on (found {version}). {_fix_hint()} Or let "
        f"vla_ood_envs bridge it with its compatibility layer ({compat.ENV_VAR}=auto, needs gcc and libvulkan-dev)."
    )


def _layer_decision(vulkan: list[VulkanDevice]) -> str:
    """Enable the compatibility layer where it is needed; must run before SAPIEN's first Vulkan instance."""
    m = compat.mode()
    old = [v for v in vulkan if compat.needed(v)]
    if m == "off":
        return f"off ({compat.ENV_VAR}=off)"
    if m == "auto" and (not old or any(v.is_nvidia for v in vulkan)):
        return "not needed"
    try:
        compat.enable(compat.build())
    except compat.CompatLayerError as exc:
        raise RenderDeviceError(f"{exc}\nAlternatively install a newer CPU driver. {_fix_hint()}") from exc
    why = f"{old[0].driver_info} is older than Mesa {compat.MIN_MESA[0]}.{compat.MIN_MESA[1]}" if old \
        else f"forced by {compat.ENV_VAR}=on"
    return f"in use: {why}"


def _probe() -> tuple[list[VulkanDevice], list[SapienDeviceEntry], str]:
    try:
        vulkan = list_devices()
    except VulkanProbeError as exc:
        raise RenderDeviceError(
            f"No Vulkan rendering is possible: {exc}. SAPIEN renders through Vulkan; on a machine without a GPU "
            f"it needs the Vulkan loader and Mesa's CPU driver (lavapipe). {_fix_hint()}"
        ) from exc
    if not vulkan:
        raise RenderDeviceError(
            "The Vulkan loader is installed but reports no device (no driver/ICD found). "
            f"{_fix_hint()}"
        )
    layer = _layer_decision(vulkan)
    return vulkan, _sapien_devices(), layer


def _choose(requested: str) -> RenderChoice:
    if requested == "none":
        return RenderChoice("none", "rendering disabled on request (state-only use)")
    vulkan, sapien_devices, layer = _probe()
    supported = [d for d in sapien_devices if d.supported]
    gpus = [d for d in supported if d.cuda_id >= 0]
    cpus_vk = [d for d in vulkan if d.is_cpu]
    cpu_supported = [d for d in supported if d.cuda_id < 0 and any(d.name == c.name for c in cpus_vk)]

    def describe(name: str) -> str | None:
        return next((v.driver_info or v.driver_name for v in vulkan if v.name == name), None)

    common = dict(vulkan_devices=tuple(vulkan), sapien_devices=tuple(sapien_devices), compat_layer=layer)
    if requested in ("auto", "cuda", "gpu") and gpus:
        return RenderChoice("cuda", "an NVIDIA GPU that SAPIEN supports is present", gpus[0].name,
                            describe(gpus[0].name), **common)
    if requested in ("cuda", "gpu"):
        raise RenderDeviceError(
            f"render backend '{requested}' was requested but SAPIEN sees no usable NVIDIA GPU "
            f"(devices: {[d.name for d in sapien_devices] or 'none'}). Use render_backend='cpu' or 'auto'."
        )
    if requested.startswith("pci:"):
        return RenderChoice(requested, "device forced by its SAPIEN alias", requested, None, **common)
    if requested in ("auto", "cpu") and layer.startswith("in use") and cpu_supported:
        # SAPIEN's 'cpu' alias does not select a device made usable by a layer; its own default device (the
        # PCI alias of the same lavapipe device) does. Claim the renderer there and name it by that alias.
        import sapien.render

        system = sapien.render.RenderSystem()
        backend = f"pci:{system.device.pci_string}"
        _CLAIMED[backend] = system
        return RenderChoice(backend, "CPU Vulkan driver through the compatibility layer", cpu_supported[0].name,
                            describe(cpu_supported[0].name), **common)
    if requested in ("auto", "cpu"):
        if cpu_supported:
            why = "no supported NVIDIA GPU; using the CPU Vulkan driver" if requested == "auto" else "requested"
            return RenderChoice("cpu", why, cpu_supported[0].name, describe(cpu_supported[0].name), **common)
        if cpus_vk:
            raise _cpu_driver_unsupported(cpus_vk[0])
        raise RenderDeviceError(
            f"No Vulkan device SAPIEN can render on: found {[v.name for v in vulkan]}, none supported and no CPU "
            f"driver. {_fix_hint()}"
        )
    raise RenderDeviceError(
        f"Unknown render backend '{requested}'. Use one of: auto, cuda, cpu, none, pci:<SAPIEN device alias> "
        f"(argument render_backend or environment variable {ENV_VAR})."
    )


@functools.lru_cache(maxsize=None)
def _cached_choice(requested: str) -> RenderChoice:
    return _choose(requested)


def select_render_backend(requested: str | None = None) -> RenderChoice:
    """Decide where to render. `requested` (or $VLA_OOD_RENDER_BACKEND) may force a choice; default "auto".

    Raises RenderDeviceError with a fix-it message when nothing can render.
    """
    choice = (requested or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if choice in ("sapien_cuda",):
        choice = "cuda"
    if choice in ("sapien_cpu",):
        choice = "cpu"
    result = _cached_choice(choice)
    if result.backend.startswith("pci:"):
        install_maniskill_backend_shim()
    return result


def sapien_device(choice: RenderChoice):
    """The `sapien.Device` a choice renders on (the same alias ManiSkill resolves its render_backend to)."""
    import sapien

    if not choice.can_render:
        raise RenderDeviceError("rendering is disabled (render backend 'none')")
    return sapien.Device(choice.backend)


_CLAIMED: dict[str, object] = {}
_CLAIMED_PID: int | None = None


def renderer_pid() -> int | None:
    """The process that started SAPIEN's renderer through `claim_renderer` (this one, or, after a fork, the parent
    whose renderer the child inherited in a broken state); None before any claim."""
    return _CLAIMED_PID


def claim_renderer(choice: RenderChoice) -> None:
    """Make SAPIEN's process-wide renderer live on the chosen device, before anything else creates it.

    SAPIEN creates its renderer lazily on its *default* device the first time a material or texture is made, and
    then refuses any other device in the process ("only supports single-GPU rendering"). ManiSkill creates
    materials even for state-only envs, and the default device's alias (`pci:...`) differs from the `cpu` alias
    ManiSkill uses, so a state env built first would break every rendering env after it. Creating (and keeping)
    one render system on the chosen device first pins the renderer there.
    """
    global _CLAIMED_PID
    limit_torch_threads(choice)
    if not choice.can_render or _CLAIMED:
        return
    import sapien.render

    _CLAIMED[choice.backend] = sapien.render.RenderSystem(sapien_device(choice))
    _CLAIMED_PID = os.getpid()


def renders_on_cpu(choice: RenderChoice) -> bool:
    """Whether the chosen device is a CPU Vulkan driver (lavapipe), directly or through its PCI alias."""
    if choice.backend == "cpu":
        return True
    return choice.backend.startswith("pci:") and any(
        v.is_cpu and v.name == choice.device_name for v in choice.vulkan_devices)


_TORCH_THREADS_DONE = False


def env_worker_defaults() -> None:
    """Called first in processes that only step envs: there torch's thread pool may be limited (see below)."""
    os.environ.setdefault(TORCH_THREADS_VAR, "1")


def limit_torch_threads(choice: RenderChoice) -> int | None:
    """With VLA_OOD_TORCH_THREADS=N on a CPU render device, run torch's intra-op work on N threads (once per
    process; env worker processes default to 1, see `env_worker_defaults`); returns the count set.

    Each observation passes an image through a few torch copies large enough for torch to split them over its
    OpenMP pool. On a CPU-rendering machine the pool's other threads compete with lavapipe's rasteriser threads for
    the same cores: a worker that is not scheduled at once stalls the copy until it is (measured on 2 busy cores:
    up to 7 ms for a 224x224 frame that takes 0.05 ms on one thread), and idle workers spin-wait, burning about
    15% of a core while lavapipe renders. ManiSkill's per-step tensors on CPU are far too small to gain from more
    threads. A user's own process (which may also train a model with torch) is left alone unless the variable is
    set; so are processes where OMP_NUM_THREADS is set (the user chose), VLA_OOD_TORCH_THREADS=keep, and GPUs.
    """
    global _TORCH_THREADS_DONE
    want = os.environ.get(TORCH_THREADS_VAR, "").strip().lower()
    if _TORCH_THREADS_DONE or not want or want == "keep" or not choice.can_render:
        return None  # unset: the user's process keeps its threads; a state-only claim decides nothing yet
    _TORCH_THREADS_DONE = True
    if not renders_on_cpu(choice) or "OMP_NUM_THREADS" in os.environ:
        return None
    try:
        n = int(want)
    except ValueError:
        raise RenderDeviceError(f"{TORCH_THREADS_VAR} must be 'keep' or a number of threads, got {want!r}") from None
    import torch

    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


class _OneTorchThread:
    """Context manager: torch on one intra-op thread inside, the caller's count restored on exit."""

    __slots__ = ("saved",)

    def __enter__(self):
        import torch

        self.saved = torch.get_num_threads()
        if self.saved != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        if self.saved != 1:
            import torch

            torch.set_num_threads(self.saved)


def env_thread_scope(cpu_rendering: bool):
    """What a single env wraps its reset and step in: one torch intra-op thread for the env's own tensor work
    (picture conversion, observation layout, image conditions) when rendering on a CPU device, the caller's
    setting restored before the call returns, so `torch.get_num_threads()` outside the env never changes.

    Why: at torch's default (one thread per core) each image-sized torch op of a step is split over the OpenMP
    pool, whose second thread competes with lavapipe's rasterisers for the same cores and then spin-waits
    (issue 19: about 8-9 ms of CPU per 224x224 step on 2 cores). Setting the count costs under a microsecond.
    OpenMP keeps the count per thread, so other threads of the process are not affected. Returns a no-op
    context for envs that render on a GPU or not at all (`cpu_rendering` False) and with
    VLA_OOD_TORCH_THREADS=keep (torch's own setting everywhere).
    """
    import contextlib

    if not cpu_rendering or os.environ.get(TORCH_THREADS_VAR, "").strip().lower() == "keep":
        return contextlib.nullcontext()
    return _OneTorchThread()


def gpu_simulation_available() -> bool:
    """Whether a CUDA device for PhysX GPU simulation is visible to torch (see also `physx_gpu_library`)."""
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken torch install means "no GPU sim", which doctor reports
        return False


@dataclass(frozen=True)
class PhysXGpuLibrary:
    """Where SAPIEN keeps its PhysX GPU library and where it downloads it from (read from SAPIEN 3.0's
    `sapien.physx.enable_gpu`, which ManiSkill calls when it starts GPU simulation)."""

    path: Path  # the library file SAPIEN loads
    url: str  # the zip SAPIEN downloads when the file is missing; it unzips it into path's folder
    enabled: bool  # SAPIEN's GPU simulation is already running in this process

    @property
    def present(self) -> bool:
        return self.enabled or self.path.exists()

    def install_hint(self) -> str:
        folder = self.path.parent
        return (f"SAPIEN looks for it in {folder} (~/.sapien/physx/<PhysX version>, in the home of the user running "
                f"the env). To put it there, download {self.url} on a machine with internet access, copy it here and "
                f"run: mkdir -p {folder} && unzip {self.url.rsplit('/', 1)[-1]} -d {folder}")


def physx_gpu_library() -> PhysXGpuLibrary:
    """The PhysX GPU library of the installed SAPIEN: path, download URL, and whether GPU simulation is on."""
    import platform

    import sapien.physx as physx

    version = physx.version()
    folder = Path.home() / ".sapien" / "physx" / version
    base = f"https://github.com/sapien-sim/physx-precompiled/releases/download/{version}"
    machine = platform.machine()
    if platform.system() == "Windows":
        name, url = "PhysXGpu_64.dll", f"{base}/windows-dll.zip"
    elif machine in ("aarch64", "arm64"):
        name, url = "libPhysXGpu_64.so", f"{base}/linux-aarch64-so.zip"
    else:
        name, url = "libPhysXGpu_64.so", f"{base}/linux-so.zip"
    return PhysXGpuLibrary(path=folder / name, url=url, enabled=bool(physx.is_gpu_enabled()))


def physx_gpu_download_error(lib: PhysXGpuLibrary, timeout: float = 10.0) -> str | None:
    """Why SAPIEN could not download the missing library from here (None when its URL answers)."""
    import requests

    try:
        requests.head(lib.url, timeout=timeout, allow_redirects=True).raise_for_status()
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def ensure_physx_gpu_library(timeout: float = 10.0) -> PhysXGpuLibrary:
    """Check, before ManiSkill starts GPU simulation, that SAPIEN will find its PhysX GPU library: present, or
    downloadable (SAPIEN then downloads it itself, which takes minutes). Raises PhysXGpuLibraryError naming the
    missing file, where SAPIEN looks for it and how to put it there, instead of a connection error from deep in
    SAPIEN."""
    lib = physx_gpu_library()
    if lib.present:
        return lib
    why = physx_gpu_download_error(lib, timeout)
    if why is not None:
        raise PhysXGpuLibraryError(
            f"ManiSkill's GPU simulation (num_envs > 1) needs SAPIEN's PhysX GPU library {lib.path}, which is "
            f"missing, and SAPIEN cannot download it from {lib.url} ({why}). {lib.install_hint()}. Or run the envs "
            f"on the CPU: gymnasium.make_vec(ID, num_envs=N).")
    return lib


_SHIM_INSTALLED = False


def install_maniskill_backend_shim() -> None:
    """Let ManiSkill accept SAPIEN device aliases that contain ':' (e.g. 'pci:0').

    ManiSkill splits render_backend on ':' to read a CUDA index, which breaks SAPIEN's `pci:` aliases, the only way
    to name a device SAPIEN's 'cpu' alias does not pick. The shim resolves such aliases itself and leaves every
    other string to ManiSkill's parser unchanged.
    """
    global _SHIM_INSTALLED
    if _SHIM_INSTALLED:
        return
    import sapien
    import mani_skill.envs.sapien_env as sapien_env

    original = sapien_env.parse_sim_and_render_backend

    def parse(sim_backend: str, render_backend: str):
        if isinstance(render_backend, str) and render_backend.startswith("pci:"):
            info = original(sim_backend, "none")
            info.render_device = sapien.Device(render_backend)
            info.render_backend = "sapien_cpu" if info.render_device.is_cpu() else render_backend
            return info
        return original(sim_backend, render_backend)

    sapien_env.parse_sim_and_render_backend = parse
    _SHIM_INSTALLED = True
