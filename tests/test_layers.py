"""The package's layers: no module imports from a layer above its own (imports inside functions count too).

Read from the source (no module is imported). Lower layers first; a module may import its own layer and those below.
The order is the data flow of docs/architecture.md: spec and the process runtime at the bottom, then assets,
factors, tasks, wrappers, the registry, experts, policies, the rollout loop, what consumes rollouts (demos, training,
evaluation), the study, the tools, and the CLI on top. `errors` and `sheets` (picture tiling) are leaves anyone
may use; `vector` (the make_vec env) sits under the registry, which hands it the env factory.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vla_ood_envs"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("spec", "errors", "runtime", "sheets", "_moved"),
    ("catalog", "assets_gen"),
    ("factors",),
    ("tasks",),
    ("wrappers",),
    ("vector",),
    ("registry",),
    ("experts",),
    ("policies",),
    ("rollout",),
    ("demos", "training", "evaluation"),
    ("study",),
    ("tools",),
    ("cli", "__init__"),
)
# Beyond the order: the model side never reaches into the simulation (docs/training-design.md).
NEVER = {"policies": ("tasks", "wrappers", "registry", "vector")}


def _layer(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"vla_ood_envs.{part} is in no layer: add it to LAYERS in tests/test_layers.py, at the "
                         f"height of what it imports and what imports it (docs/architecture.md)")


def _module_name(path: Path) -> list[str]:
    """Dotted path within the package, as parts (`tasks/base.py` -> ["tasks", "base"], a package's __init__.py ->
    the package; the root __init__.py -> ["__init__"])."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts


def imports_of(source: str, module: list[str], is_package: bool) -> list[tuple[int, list[str]]]:
    """(line, target module within the package) of every import of the package in `source`, the code of `module`
    (relative imports resolved; `from .. import spec` names the module spec; `from . import motion` in a subpackage
    names the subpackage, whose layer is the same)."""
    package = module if is_package else module[:-1]
    if module == ["__init__"]:
        package = []
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name.split(".")[1:]) for a in node.names
                       if a.name.startswith("vla_ood_envs."))
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        named = node.module.split(".") if node.module else []
        if node.level:
            if node.level - 1 > len(package):
                raise AssertionError(f"line {node.lineno}: a relative import above the package")
            target = package[:len(package) - (node.level - 1)] + named
        elif named and named[0] == "vla_ood_envs":
            target = named[1:]
        else:
            continue
        if target:
            out.append((node.lineno, target))
        else:  # `from .. import spec` at the root: each name is a module of the package
            out.extend((node.lineno, [a.name]) for a in node.names)
    return out


def test_no_module_imports_from_a_layer_above_it():
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40
    for path in files:
        module = _module_name(path)
        top = module[0]
        for line, target in imports_of(path.read_text(), module, path.name == "__init__.py"):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports vla_ood_envs.{'.'.join(target)}"
            if _layer(target[0]) > _layer(top):
                problems.append(f"{where}, a layer above {top}")
            if target[0] in NEVER.get(top, ()):
                problems.append(f"{where}, which {top} must never import")
    assert not problems, "\n".join(problems)


def test_the_reader_resolves_the_imports_it_checks():
    code = ("import numpy\nimport vla_ood_envs.tasks.base\nfrom . import motion\nfrom ..factors.pick import X\n"
            "def f():\n    from ..rollout import collect\n    from .. import cli, spec\n")
    found = [t for _, t in imports_of(code, ["experts", "pick_expert"], is_package=False)]
    assert found == [["tasks", "base"], ["experts"], ["factors", "pick"], ["rollout"], ["cli"], ["spec"]]
    assert [t for _, t in imports_of("from . import registry\n", ["__init__"], is_package=True)] == [["registry"]]
    assert [t for _, t in imports_of("from .device import x\n", ["runtime"], is_package=True)] == [
        ["runtime", "device"]]
    # What the check would report for that code: the rollout and the CLI sit above the experts.
    assert _layer("rollout") > _layer("experts") and _layer("cli") > _layer("experts")


def test_readme_layout_lists_the_tree():
    """Every module and subpackage of vla_ood_envs/ is in the README's Layout section and everything it names
    exists (the section's first column; two-space indent: inside the package)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## Layout\n", 1)[1]
    block = section.split("```", 2)[1]
    inside, top = set(), set()
    for line in block.splitlines()[1:]:
        if not line.strip() or line.startswith("                "):
            continue
        name = line.split()[0].rstrip(",")
        (inside if line.startswith("  ") else top).add(name)
    tree = {p.name + ("/" if p.is_dir() else "") for p in PACKAGE.iterdir()
            if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert inside == tree
    assert top - {"vla_ood_envs/"} and all((PACKAGE.parent / name).exists() for name in top)


def test_old_module_paths_warn_and_give_the_moved_modules():
    """For one release the first layout's paths still import: the same module objects as the new paths, with a
    DeprecationWarning pointing at the importing line (run in a fresh interpreter, where nothing is imported yet)."""
    import subprocess
    import sys

    code = '''
import importlib, os, warnings
import vla_ood_envs
from vla_ood_envs import _moved
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for old, new in _moved.MODULES.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
        assert importlib.import_module(new).__spec__.name == new, new
    from vla_ood_envs.render import lod, device
    from vla_ood_envs.experts import run_expert_episode
import vla_ood_envs.rollout, vla_ood_envs.tasks.robot_meshes.lod as light
assert lod is light and run_expert_episode is vla_ood_envs.rollout.run_expert_episode
assert os.path.isfile(device.install_script_path()) and len(vla_ood_envs.runtime.compat._source()) > 1000
messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
for old in [*_moved.MODULES, *_moved.PACKAGES]:
    assert any(m.startswith(old + " ") for m in messages), old
assert any("run_expert_episode moved to vla_ood_envs.rollout" in m for m in messages)
assert all(w.filename == "<string>" for w in caught if w.category is DeprecationWarning), [w.filename for w in caught]
try:
    from vla_ood_envs.experts import no_such_name
except ImportError:
    pass
else:
    raise AssertionError("an unknown name must still fail")
print("ok")
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
