"""LeRobot v3.0 export: read back with pyarrow + pillow only, everything must equal the native store."""

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vla_ood_envs.demos import DemoDataset
from vla_ood_envs.demos.export_lerobot import ACTION_NAMES, export_lerobot


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_demos):
    base = tmp_path_factory.mktemp("lerobot")
    out = export_lerobot(tiny_demos, base / "export")
    return base, DemoDataset(tiny_demos), out


def _read(out, rel):
    return pq.read_table(out / rel)


def test_layout_and_info(exported):
    base, native, out = exported
    assert sorted(p.name for p in base.iterdir()) == ["export"]  # no temporary folder left behind
    for rel in ("meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                "data/chunk-000/file-000.parquet"):
        assert (out / rel).is_file(), rel
    info = json.loads((out / "meta/info.json").read_text())
    lengths = [len(ep) for ep in native]
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5
    assert info["total_episodes"] == 2 and info["total_frames"] == sum(lengths)
    assert info["total_tasks"] == len({ep.instruction for ep in native})
    assert info["splits"] == {"train": "0:2"}
    feats = info["features"]
    assert feats["observation.image"] == {"dtype": "image", "shape": [32, 32, 3],
                                          "names": ["height", "width", "channels"]}
    assert feats["observation.state"]["shape"] == [8] and feats["action"]["names"] == ACTION_NAMES
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert feats[key]["shape"] == [1]
    data = _read(out, "data/chunk-000/file-000.parquet")
    assert data.column_names == list(feats)
    assert info["total_frames"] == data.num_rows


def test_episodes_table(exported):
    _, native, out = exported
    eps = _read(out, "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    start = 0
    for i, (row, ep) in enumerate(zip(eps, native, strict=True)):
        assert row["episode_index"] == i and row["length"] == len(ep) and row["tasks"] == [ep.instruction]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + len(ep))
        assert (row["data/chunk_index"], row["data/file_index"]) == (0, 0)
        assert row["stats/action/count"] == [len(ep)]
        np.testing.assert_allclose(row["stats/action/mean"], ep.actions.astype(np.float64).mean(0), rtol=1e-6)
        assert np.array(row["stats/observation.image/mean"]).shape == (3, 1, 1)
        start += len(ep)


def test_frames_equal_native(exported):
    _, native, out = exported
    data = _read(out, "data/chunk-000/file-000.parquet").to_pydict()
    tasks = _read(out, "meta/tasks.parquet").to_pydict()
    task_of = dict(zip(tasks["task_index"], tasks["task"], strict=True))
    episode_index = np.array(data["episode_index"])
    assert data["index"] == list(range(len(episode_index)))
    for i, ep in enumerate(native):
        rows = np.flatnonzero(episode_index == i)
        assert len(rows) == len(ep)
        np.testing.assert_array_equal(np.array([data["action"][r] for r in rows], np.float32), ep.actions)
        np.testing.assert_array_equal(np.array([data["observation.state"][r] for r in rows], np.float32), ep.proprio)
        np.testing.assert_array_equal([data["next.success"][r] for r in rows], ep.success)
        assert [data["frame_index"][r] for r in rows] == list(range(len(ep)))
        np.testing.assert_allclose([data["timestamp"][r] for r in rows], np.arange(len(ep)) / 5, rtol=1e-6)
        assert {task_of[data["task_index"][r]] for r in rows} == {ep.instruction}
        for t, r in enumerate(rows):
            img = np.asarray(Image.open(io.BytesIO(data["observation.image"][r]["bytes"])).convert("RGB"))
            np.testing.assert_array_equal(img, ep.images[t])


def test_stats(exported):
    _, native, out = exported
    stats = json.loads((out / "meta/stats.json").read_text())
    actions = np.concatenate([ep.actions for ep in native]).astype(np.float64)
    a = stats["action"]
    assert a["count"] == [len(actions)]
    np.testing.assert_allclose(a["min"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(a["std"], actions.std(0), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(a["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    pixels = np.concatenate([ep.images for ep in native]).reshape(-1, 3) / 255.0
    img = {k: np.array(v) for k, v in stats["observation.image"].items()}
    assert img["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(img["mean"].ravel(), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(img["q50"].ravel(), np.quantile(pixels, 0.5, axis=0), rtol=1e-9)
    assert set(stats) == set(json.loads((out / "meta/info.json").read_text())["features"])


def test_refuses_existing_and_cleans_up_on_failure(exported, monkeypatch):
    base, native, out = exported
    with pytest.raises(FileExistsError):
        export_lerobot(native.root, out)
    import vla_ood_envs.demos.export_lerobot as mod

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(mod, "write_tasks", boom)
    with pytest.raises(RuntimeError):
        export_lerobot(native.root, base / "failed")
    assert sorted(p.name for p in base.iterdir()) == ["export"]  # neither half-written nor temp folder


def test_size_limit_splits_data_files(exported, tmp_path):
    from vla_ood_envs.demos.export_lerobot import DataFiles, data_schema, episode_columns, episode_table, \
        lerobot_features

    _, native, _ = exported
    schema = data_schema(lerobot_features(32, 32))
    files = DataFiles(tmp_path, schema, size_limit_mb=1, chunks_size=2)
    files.limit = 1  # every episode overflows: each gets its own file, two files per chunk
    ep = native[0]
    locations = [files.write(episode_table(episode_columns(ep, i, 0, 0, 5), schema)) for i in range(3)]
    files.close()
    assert locations == [(0, 0), (0, 1), (1, 0)]
    assert pq.read_table(tmp_path / "data/chunk-001/file-000.parquet").num_rows == len(ep)
