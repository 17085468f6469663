"""Out-of-distribution Gymnasium environments on ManiSkill3/SAPIEN for vision-language-action policies.

`import vla_ood_envs` registers every ID of `vla_ood_envs.registry.DECLARATIONS` with Gymnasium, e.g.
`gymnasium.make("VLAPick-v0")`. The package's error types (`ActionError`, `DatasetError`, ..., all subclasses
of `VLAOodError`) are importable from here.
"""

from . import _moved

_moved.install()  # old module paths (vla_ood_envs.render.*, .bench, ...) keep working for one release

from .errors import (  # noqa: E402
    ActionError, CatalogError, CompatLayerError, ConfigError, DatasetError, EnvClosedError, ForkedProcessError,
    MissingExtraError, OutputExistsError, PerturbationError, PhysXGpuLibraryError, PoolError, RenderDeviceError,
    RobotError, SplitError, VectorEnvError, VLAOodError, VulkanProbeError, WorkerError,
)
from .registry import DECLARATIONS, register_all  # noqa: E402

__version__ = "0.1.0"

register_all()

__all__ = [
    "DECLARATIONS", "register_all", "__version__",
    "ActionError", "CatalogError", "CompatLayerError", "ConfigError", "DatasetError", "EnvClosedError",
    "ForkedProcessError", "MissingExtraError", "OutputExistsError", "PerturbationError", "PhysXGpuLibraryError",
    "PoolError", "RenderDeviceError", "RobotError", "SplitError", "VectorEnvError", "VLAOodError", "VulkanProbeError",
    "WorkerError",
]
