"""Out-of-distribution Gymnasium environments on ManiSkill3/SAPIEN for vision-language-action policies.

`import vla_ood_envs` registers every ID of `vla_ood_envs.registry.DECLARATIONS` with Gymnasium, e.g.
`gymnasium.make("VLAPick-v0")`. The package's error types (`ActionError`, `DatasetError`, ..., all subclasses
of `VLAOodError`) are importable from here.
"""

from .errors import (
    ActionError, CatalogError, CompatLayerError, ConfigError, DatasetError, EnvClosedError, MissingExtraError,
    OutputExistsError, PerturbationError, PoolError, RenderDeviceError, RobotError, SplitError, VLAOodError,
    VulkanProbeError, WorkerError,
)
from .registry import DECLARATIONS, register_all

__version__ = "0.1.0"

register_all()

__all__ = [
    "DECLARATIONS", "register_all", "__version__",
    "ActionError", "CatalogError", "CompatLayerError", "ConfigError", "DatasetError", "EnvClosedError",
    "MissingExtraError", "OutputExistsError", "PerturbationError", "PoolError", "RenderDeviceError", "RobotError",
    "SplitError", "VLAOodError", "VulkanProbeError", "WorkerError",
]
