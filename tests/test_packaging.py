"""A plain (non-editable) install carries the assets, the light robot meshes and the driver install script."""

import subprocess
import sys


def test_plain_install_finds_package_data(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(root)],
                   check=True, capture_output=True, timeout=600)
    code = ("import vla_ood_envs.catalog as c, vla_ood_envs.runtime.device as d, os\n"
            "cat = c.default_catalog()\n"
            "assert str(cat.root).startswith(os.environ['PYTHONPATH']), cat.root\n"
            "assert all(a.visual.is_file() and a.collision.is_file() for a in cat.objects + cat.receptacles)\n"
            "assert all(t.texture.is_file() for t in cat.tables + cat.overlays) and cat.table_top.is_file()\n"
            "assert os.path.isfile(d.install_script_path())\n"
            "assert all(a.urdf.is_file() for a in cat.articulated)\n"
            "import vla_ood_envs.tasks.robot_meshes.lod as l\n"
            "assert l.panda_urdf() != str(l.source_urdf()), 'the light robot meshes were not installed'\n"
            "print(len(cat.objects), len(cat.receptacles), len(cat.tables), len(cat.overlays))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "", "XDG_CACHE_HOME": str(tmp_path / "cache")},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["25", "17", "21", "16"]
