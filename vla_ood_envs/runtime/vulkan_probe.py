"""Ask the Vulkan loader which physical devices exist and which driver runs each.

SAPIEN's own device summary names devices and whether SAPIEN can use them, but not the driver or its version,
which is what a user needs to know to fix an unusable CPU driver ("Mesa 22.3 is too old"). This module asks the
loader directly through ctypes so that it works before SAPIEN is imported and without `vulkaninfo` installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

from ..errors import VulkanProbeError  # noqa: F401 (kept importable from here)

_VK_SUCCESS = 0
_ST_APPLICATION_INFO = 0
_ST_INSTANCE_CREATE_INFO = 1
_ST_PHYSICAL_DEVICE_PROPERTIES_2 = 1000059001
_ST_PHYSICAL_DEVICE_DRIVER_PROPERTIES = 1000196000
_DEVICE_TYPES = {0: "other", 1: "integrated-gpu", 2: "discrete-gpu", 3: "virtual-gpu", 4: "cpu"}
_VENDOR_NVIDIA = 0x10DE


def _vk_make_api_version(major: int, minor: int) -> int:
    return (major << 22) | (minor << 12)


class _AppInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("pApplicationName", ctypes.c_char_p),
        ("applicationVersion", ctypes.c_uint32),
        ("pEngineName", ctypes.c_char_p),
        ("engineVersion", ctypes.c_uint32),
        ("apiVersion", ctypes.c_uint32),
    ]


class _InstanceCreateInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("flags", ctypes.c_uint32),
        ("pApplicationInfo", ctypes.POINTER(_AppInfo)),
        ("enabledLayerCount", ctypes.c_uint32),
        ("ppEnabledLayerNames", ctypes.c_void_p),
        ("enabledExtensionCount", ctypes.c_uint32),
        ("ppEnabledExtensionNames", ctypes.c_void_p),
    ]


class _DriverProperties(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("driverID", ctypes.c_int),
        ("driverName", ctypes.c_char * 256),
        ("driverInfo", ctypes.c_char * 256),
        ("conformanceVersion", ctypes.c_uint8 * 4),
    ]


class _PhysicalDeviceProperties2Head(ctypes.Structure):
    # Only the leading members are declared; the struct is over-allocated below so the driver can write the
    # (long, version-dependent) limits block behind them without us mirroring it field by field.
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("apiVersion", ctypes.c_uint32),
        ("driverVersion", ctypes.c_uint32),
        ("vendorID", ctypes.c_uint32),
        ("deviceID", ctypes.c_uint32),
        ("deviceType", ctypes.c_int),
        ("deviceName", ctypes.c_char * 256),
    ]


@dataclass(frozen=True)
class VulkanDevice:
    name: str
    device_type: str
    vendor_id: int
    api_version: str
    driver_name: str
    driver_info: str

    @property
    def is_cpu(self) -> bool:
        return self.device_type == "cpu"

    @property
    def is_nvidia(self) -> bool:
        return self.vendor_id == _VENDOR_NVIDIA

    @property
    def mesa_version(self) -> tuple[int, ...] | None:
        """Mesa's release as a tuple (e.g. (25, 0, 7)) when the driver is Mesa's, else None."""
        info = self.driver_info.split()
        if len(info) >= 2 and info[0] == "Mesa":
            parts = []
            for token in info[1].replace("-", ".").split("."):
                if not token.isdigit():
                    break
                parts.append(int(token))
            return tuple(parts[:3]) or None
        return None


def find_loader() -> str | None:
    """Path or soname of the Vulkan loader library, or None when it is not installed."""
    for name in ("libvulkan.so.1", ctypes.util.find_library("vulkan")):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


def list_devices() -> list[VulkanDevice]:
    """Enumerate Vulkan physical devices with their driver identification.

    Raises VulkanProbeError when the loader is absent or refuses to create an instance (no ICD at all gives an
    empty list on most loaders, an error on some).
    """
    loader = find_loader()
    if loader is None:
        raise VulkanProbeError("the Vulkan loader (libvulkan.so.1) is not installed")
    vk = ctypes.CDLL(loader)
    vk.vkCreateInstance.restype = ctypes.c_int
    vk.vkEnumeratePhysicalDevices.restype = ctypes.c_int

    app = _AppInfo(_ST_APPLICATION_INFO, None, b"vla-ood-doctor", 1, b"vla_ood_envs", 1,
                   _vk_make_api_version(1, 1))
    info = _InstanceCreateInfo(_ST_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    result = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != _VK_SUCCESS:
        raise VulkanProbeError(f"vkCreateInstance failed with VkResult {result} (no usable Vulkan driver?)")
    try:
        count = ctypes.c_uint32(0)
        result = vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        if result != _VK_SUCCESS:
            raise VulkanProbeError(f"vkEnumeratePhysicalDevices failed with VkResult {result}")
        handles = (ctypes.c_void_p * count.value)()
        if count.value:
            vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        devices = []
        for handle in handles[: count.value]:
            driver = _DriverProperties(_ST_PHYSICAL_DEVICE_DRIVER_PROPERTIES, None)
            buffer = ctypes.create_string_buffer(4096)
            head = _PhysicalDeviceProperties2Head.from_buffer(buffer)
            head.sType = _ST_PHYSICAL_DEVICE_PROPERTIES_2
            head.pNext = ctypes.cast(ctypes.pointer(driver), ctypes.c_void_p)
            vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(handle), buffer)
            api = head.apiVersion
            devices.append(
                VulkanDevice(
                    name=head.deviceName.decode(errors="replace"),
                    device_type=_DEVICE_TYPES.get(head.deviceType, "other"),
                    vendor_id=head.vendorID,
                    api_version=f"{(api >> 22) & 0x7F}.{(api >> 12) & 0x3FF}.{api & 0xFFF}",
                    driver_name=driver.driverName.decode(errors="replace"),
                    driver_info=driver.driverInfo.decode(errors="replace"),
                )
            )
        return devices
    finally:
        vk.vkDestroyInstance(instance, None)
