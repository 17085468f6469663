"""The package's error types, in one dependency-free module (`from vla_ood_envs import ActionError`).

Every error the package raises for bad input or a missing piece of the machine derives from `VLAOodError`, and
its message names the problem and the fix. `vla-ood` prints these as one line on stderr (tracebacks are kept for
genuine bugs, or for everything with `--debug`). Each also derives from the built-in type callers would catch
anyway (`ValueError` for bad arguments, `RuntimeError` for the machine or files on disk), so
`except ValueError` keeps working.
"""

from __future__ import annotations


class VLAOodError(Exception):
    """Base of the package's errors: a problem the user can act on, explained in the message."""


class ConfigError(VLAOodError, ValueError):
    """An argument of an env, a wrapper, a generation or a command is outside its allowed range."""


class ActionError(VLAOodError, ValueError):
    """An action of the wrong type, dtype or shape, with NaN/inf, or out of bounds."""


class EnvClosedError(VLAOodError, RuntimeError):
    """`step` or `reset` was called on an env after its `close()`."""


class RobotError(VLAOodError, ValueError):
    """An unknown robot, a robot the task cannot use, or a robot whose assets are not installed."""


class PoolError(VLAOodError, ValueError):
    """A pool is empty, names unknown assets, or admits no valid episode."""


class CatalogError(VLAOodError, ValueError):
    """A catalog file is missing, malformed, or refers to files that do not exist."""


class PerturbationError(VLAOodError, ValueError):
    """A perturbation was applied to an env it cannot work on, or with bad parameters."""


class RenderDeviceError(VLAOodError, RuntimeError):
    """No device can render the scene; the message says what is missing and how to fix it."""


class VulkanProbeError(VLAOodError, RuntimeError):
    """The Vulkan loader is missing or no instance could be created."""


class CompatLayerError(VLAOodError, RuntimeError):
    """The compatibility layer is needed but cannot be built or enabled; the message says what to install."""


class DatasetError(VLAOodError, RuntimeError):
    """A dataset folder or episode file is missing, incomplete, unreadable or not writable."""


class OutputExistsError(DatasetError, FileExistsError):
    """An export's output folder exists already (pass overwrite=True, or `--overwrite` on the command line)."""


class MissingExtraError(VLAOodError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class SplitError(VLAOodError, ValueError):
    """Demonstrations were asked for from held-out (test) pools."""


class VectorEnvError(VLAOodError, ValueError):
    """A vector env the package cannot run: workers started by fork, or an unknown autoreset mode."""


class ForkedProcessError(VLAOodError, RuntimeError):
    """An env was asked for in a process forked after SAPIEN's renderer had started (it would hang)."""


class PhysXGpuLibraryError(VLAOodError, RuntimeError):
    """SAPIEN's PhysX GPU library (for GPU simulation) is missing and cannot be downloaded; the message says how to
    install it."""


class WorkerError(VLAOodError, RuntimeError):
    """A demo-generation worker process (or Ray actor) died; finished episodes are kept and the run resumes."""


__all__ = [
    "ActionError", "CatalogError", "CompatLayerError", "ConfigError", "DatasetError", "EnvClosedError",
    "ForkedProcessError", "MissingExtraError", "OutputExistsError", "PerturbationError", "PhysXGpuLibraryError",
    "PoolError", "RenderDeviceError", "RobotError", "SplitError", "VLAOodError", "VectorEnvError", "VulkanProbeError",
    "WorkerError",
]
