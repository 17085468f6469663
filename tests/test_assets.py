"""The generated asset catalog: counts, splits, sizes, determinism, and clear errors for broken packs."""

import filecmp
import json
import shutil

import pytest

from vla_ood_envs.assets_gen.build import build
from vla_ood_envs.catalog import CatalogError, default_catalog, load_catalog
from vla_ood_envs.factors import TEST_TEMPLATES, TRAIN_TEMPLATE, train_pools


def test_catalog_counts_and_splits():
    cat = default_catalog()
    assert (len(cat.names("objects", "train")), len(cat.names("objects", "test"))) == (16, 9)
    assert (len(cat.names("receptacles", "train")), len(cat.names("receptacles", "test"))) == (1, 16)
    assert cat.names("receptacles", "train") == ["plate"]
    assert (len(cat.names("tables", "train")), len(cat.names("tables", "test"))) == (16, 5)
    assert len(cat.overlays) == 16
    for kind in ("objects", "receptacles", "tables"):
        assert not set(cat.names(kind, "train")) & set(cat.names(kind, "test"))
    assert TRAIN_TEMPLATE not in TEST_TEMPLATES and len(set(TEST_TEMPLATES)) == 16


def test_sizes_are_graspable_and_receptacles_flat():
    cat = default_catalog()
    for a in cat.objects:
        ext = [2 * h for h in a.half_extents]
        assert 0.03 <= max(ext) <= 0.13, (a.name, ext)
        assert min(ext[:2]) <= 0.075, f"{a.name} is too wide for the Panda gripper: {ext}"
    for r in cat.receptacles:
        ext = [2 * h for h in r.half_extents]
        assert 0.08 <= max(ext[:2]) <= 0.145 and ext[2] <= 0.03, (r.name, ext)


def test_regeneration_is_byte_identical(tmp_path):
    build(tmp_path)
    shipped = default_catalog().root
    for path in shipped.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".obj", ".mtl", ".png", ".urdf"):
            other = tmp_path / path.relative_to(shipped)
            assert other.exists(), f"{path} not regenerated"
            assert filecmp.cmp(path, other, shallow=False), f"{path.relative_to(shipped)} differs when regenerated"


def test_external_pack_loads_and_missing_files_are_reported(tmp_path):
    shipped = default_catalog().root
    pack = tmp_path / "pack"
    (pack / "meshes").mkdir(parents=True)
    shutil.copy(shipped / "objects" / "apple" / "visual.obj", pack / "meshes" / "apple.obj")
    shutil.copy(shipped / "objects" / "apple" / "collision.obj", pack / "meshes" / "apple_col.obj")
    entry = {"name": "my apple", "split": "test", "visual": "meshes/apple.obj", "collision": "meshes/apple_col.obj",
             "bbox_min": [-0.03, -0.03, 0], "bbox_max": [0.03, 0.03, 0.07], "scale": 1.5}
    (pack / "catalog.json").write_text(json.dumps({"version": 1, "objects": [entry]}))
    cat = load_catalog(pack)
    assert cat.objects[0].name == "my apple" and cat.objects[0].half_extents[0] == pytest.approx(0.045)
    entry["collision"] = "meshes/missing.obj"
    (pack / "catalog.json").write_text(json.dumps({"version": 1, "objects": [entry]}))
    with pytest.raises(CatalogError, match="missing.obj.*does not exist"):
        load_catalog(pack)
    with pytest.raises(CatalogError, match="no catalog"):
        load_catalog(tmp_path / "nowhere")


def test_training_pools_use_only_training_assets():
    cat = default_catalog()
    pools = train_pools(cat)
    assert set(pools.objects) == set(cat.names("objects", "train"))
    assert pools.receptacles == ("plate",)
    assert set(pools.tables) == set(cat.names("tables", "train"))
    assert len(pools.object_positions) == 36 and len(pools.yaws) == 4


def test_articulated_urdfs_match_their_catalog_entries():
    """Each URDF is a fixed body plus one door or drawer joint whose type, axis and limits the catalog states, with
    the handle on the moving link where the catalog says (a task or expert reads only the catalog)."""
    import xml.etree.ElementTree as ET

    import numpy as np

    cat = default_catalog()
    assert {(a.kind, a.split) for a in cat.articulated} == {("door", "train"), ("door", "test"), ("drawer", "train"),
                                                             ("drawer", "test")}
    for a in cat.articulated:
        root = ET.parse(a.urdf).getroot()
        (joint,) = root.findall("joint")
        assert joint.get("type") == a.joint_type and joint.find("child").get("link") == a.moving_link
        assert np.allclose([float(v) for v in joint.find("axis").get("xyz").split()], a.joint_axis)
        assert np.allclose([float(v) for v in joint.find("origin").get("xyz").split()], a.joint_origin, atol=1e-5)
        lo, hi = float(joint.find("limit").get("lower")), float(joint.find("limit").get("upper"))
        assert (lo, hi) == pytest.approx(a.joint_limits) and lo == 0 and hi > 0
        assert float(joint.find("dynamics").get("damping")) > 0
        link = next(link for link in root.findall("link") if link.get("name") == a.moving_link)
        centres = [[float(v) for v in c.find("origin").get("xyz").split()] for c in link.findall("collision")]
        assert any(np.allclose(c, a.handle_position, atol=1e-4) for c in centres), a.name
        # A hand closing vertically around a horizontal bar reaches 10 cm below it: such handles stand higher.
        z = a.handle_position[2] + a.joint_origin[2]
        assert z >= 0.11 or a.handle_axis[2] != 0, (a.name, z)
