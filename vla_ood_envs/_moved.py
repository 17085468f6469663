"""Old import paths of the first layout, kept working for one release with a DeprecationWarning.

`MODULES` maps an old dotted module path to its new one. The package calls `install()` first thing, so
`import vla_ood_envs.render.device` (or `from vla_ood_envs.bench import run`) finds the new module and binds it under
the old name too: the same module object, so its state (the claimed renderer, caches) and monkeypatching are shared,
and package data is still read from the new place. An old package whose modules went to several places
(`PACKAGES`) becomes an empty stand-in whose attributes are those modules. `ATTRIBUTES` does the same for names
that moved between modules (the old module's `__getattr__` calls `moved_attribute`). No file stays at an old path,
so git follows each move as a rename. Delete an entry, and this module with the last one, after the release that
announced it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MODULES: dict[str, str] = {
    "vla_ood_envs.open_factors": "vla_ood_envs.factors.open",
    "vla_ood_envs.render.device": "vla_ood_envs.runtime.device",
    "vla_ood_envs.render.compat": "vla_ood_envs.runtime.compat",
    "vla_ood_envs.render.vulkan_probe": "vla_ood_envs.runtime.vulkan_probe",
    "vla_ood_envs.render.lod": "vla_ood_envs.tasks.robot_meshes.lod",
    "vla_ood_envs.bench": "vla_ood_envs.tools.bench",
    "vla_ood_envs.doctor": "vla_ood_envs.tools.doctor",
    "vla_ood_envs.pictures": "vla_ood_envs.tools.pictures",
    "vla_ood_envs.demos.inspect": "vla_ood_envs.tools.inspect",
}
PACKAGES: dict[str, str] = {
    "vla_ood_envs.render": "its modules moved to vla_ood_envs.runtime (device, compat, vulkan_probe) and "
                           "vla_ood_envs.tasks.robot_meshes (lod)",
}
ATTRIBUTES: dict[tuple[str, str], str] = {
    ("vla_ood_envs.experts", "run_expert_episode"): "vla_ood_envs.rollout",
}


def _import_machinery(frame) -> bool:
    name = frame.f_code.co_filename
    return "importlib" in name and "_bootstrap" in name  # the frames `warnings` itself skips


def _warn(message: str) -> None:
    # Point the warning at the importing code: past this module's frames, importlib.import_module and a module
    # __getattr__ (warnings skips the import machinery's own frames), so Python's default filter shows it to a
    # script's own imports.
    frame, level = sys._getframe(1), 2
    while frame is not None and (_import_machinery(frame) or frame.f_code.co_filename in (__file__, importlib.__file__)
                                 or frame.f_code.co_name == "__getattr__"):
        level += 0 if _import_machinery(frame) else 1
        frame = frame.f_back
    warnings.warn(message, DeprecationWarning, stacklevel=level)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths in MODULES and loads each as the module at its new path."""

    def __init__(self) -> None:
        self._real_specs: dict[str, importlib.machinery.ModuleSpec] = {}  # old path -> the new module's own spec

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MODULES and fullname not in PACKAGES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in PACKAGES)

    def create_module(self, spec) -> ModuleType:
        if spec.name in PACKAGES:
            _warn(f"{spec.name} is gone: {PACKAGES[spec.name]}; import them from there")
            return _stand_in(spec.name)
        new = MODULES[spec.name]
        _warn(f"{spec.name} moved to {new}; import it from there ({spec.name} goes away in the next release)")
        module = importlib.import_module(new)
        self._real_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamps the old path's spec on the module it was handed; give it its own back (package
        # data lookups and reloads read __spec__).
        if module.__spec__.name in self._real_specs:
            module.__spec__ = self._real_specs.pop(module.__spec__.name)


def _stand_in(name: str) -> ModuleType:
    """An empty package named `name` whose attributes are the moved modules listed under it."""
    package = ModuleType(name, f"Gone: {PACKAGES[name]}.")

    def __getattr__(attr: str):
        if f"{name}.{attr}" in MODULES:
            return importlib.import_module(f"{name}.{attr}")
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    package.__getattr__ = __getattr__
    return package


_FINDER = _MovedModules()


def install() -> None:
    """Put the finder first on sys.meta_path (before the path finder, which would load a second copy of a moved
    module found through an aliased package's __path__)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def moved_attribute(module: str, name: str):
    """`module.name` for a name listed in ATTRIBUTES (with a DeprecationWarning); AttributeError otherwise."""
    new = ATTRIBUTES.get((module, name))
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    _warn(f"{module}.{name} moved to {new}.{name}; import it from there (the old name goes away in the next "
          f"release)")
    return getattr(importlib.import_module(new), name)
