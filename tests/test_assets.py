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
        if path.is_file() and path.suffix in (".json", ".obj", ".mtl", ".png"):
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
