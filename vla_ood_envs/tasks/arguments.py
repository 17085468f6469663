"""Up-front checks of the task constructors' arguments, so a bad value fails with its name, the value and the
allowed range instead of an error from SAPIEN's or ManiSkill's internals (SAPIEN: "failed to resize" for a
zero-sized camera, a pybind11 signature dump for a negative one; ManiSkill: "Unsupported reward mode" without the
list of modes).
"""

from __future__ import annotations

import numbers
import warnings

from ..errors import ConfigError

# Vulkan's maxImageDimension2D on lavapipe and on most GPUs (NVIDIA's is 32768): a larger camera cannot render.
CAMERA_MAX_SIDE = 16384
# Peak process memory per camera pixel, measured on this project's machines with lavapipe: 2048x2048 adds
# 0.29 GB over 64x64 (70 B/px) and 10000x10000 takes 7.5 GB (75 B/px; SAPIEN's render targets, the picture
# buffers and ManiSkill's observation copies).
CAMERA_BYTES_PER_PIXEL = 75
CAMERA_WARN_BYTES = 1 << 30  # warn above this (about 3700x3700 for one env)
_STATE_OBS_MODES = ("state", "state_dict", "none", "sensor_data")


def positive_int(name: str, value, high: int | None = None) -> int:
    """`value` as an int in [1, high]; ConfigError naming `name`, the value and the range otherwise."""
    allowed = f"an integer from 1 to {high}" if high else "a positive integer"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name}={value!r} is not an integer; {name} must be {allowed}")
    value = int(value)
    if value < 1 or (high is not None and value > high):
        raise ConfigError(f"{name}={value} is out of range; {name} must be {allowed}")
    return value


def choice(name: str, value, allowed) -> str:
    """`value` if it is one of `allowed`; ConfigError listing them otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name}={value!r} is not supported; {name} must be one of "
                          f"{', '.join(repr(a) for a in allowed)}")
    return value


def camera_size(width, height, num_envs=1, obs_mode=None) -> tuple[int, int]:
    """Checked (width, height) of the camera in pixels; warns (UserWarning) when the estimated memory of
    that many camera pixels over all envs exceeds CAMERA_WARN_BYTES (it renders slowly too: 47 s to the first
    10000x10000 frame on 2 CPU cores)."""
    width = positive_int("camera_width", width, CAMERA_MAX_SIDE)
    height = positive_int("camera_height", height, CAMERA_MAX_SIDE)
    envs = num_envs if isinstance(num_envs, int) and num_envs > 0 else 1
    estimate = width * height * CAMERA_BYTES_PER_PIXEL * envs
    if obs_mode not in _STATE_OBS_MODES and estimate > CAMERA_WARN_BYTES:
        warnings.warn(f"a {width}x{height} camera{f' in each of {envs} envs' if envs > 1 else ''} needs about "
                      f"{estimate / 1e9:.1f} GB of memory and renders slowly (the study's camera is 640x480, the "
                      f"default 224x224)", stacklevel=4)
    return width, height
