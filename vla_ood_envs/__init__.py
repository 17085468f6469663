"""Out-of-distribution Gymnasium environments on ManiSkill3/SAPIEN for vision-language-action policies.

`import vla_ood_envs` registers every ID of `vla_ood_envs.registry.DECLARATIONS` with Gymnasium, e.g.
`gymnasium.make("VLAPick-v0")`.
"""

from . import _moved

_moved.install()  # old module paths (vla_ood_envs.render.*, .bench, ...) keep working for one release

from .registry import DECLARATIONS, register_all  # noqa: E402

__version__ = "0.1.0"

register_all()

__all__ = ["DECLARATIONS", "register_all", "__version__"]
