"""Demonstration generation: content, resumption after interruption, split hygiene, the study's preprocessing."""

import json

import numpy as np
import pytest

from vla_ood_envs.demos import (
    DatasetError, DemoDataset, GenerateConfig, SplitError, generate, keep_mask, truncate_after_success,
)
from vla_ood_envs.factors import train_pools

SMALL = dict(image_height=32, image_width=32)


def _cfg(out, **kw):
    return GenerateConfig(out=str(out), episodes=3, seed=10, **SMALL, **kw)


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    generate(_cfg(out), progress=False)
    return DemoDataset(out)


def test_dataset_contents(reference):
    assert len(reference) == 3
    idx = reference.index
    stats = idx["statistics"]["VLAPick-v0"]["action"]
    assert len(stats["q01"]) == 7 and stats["mask"] == [True] * 6 + [False]
    assert idx["num_transitions"] == sum(len(e) for e in reference)
    for ep in reference:
        t = len(ep)
        assert ep.images.shape == (t, 32, 32, 3) and ep.images.dtype == np.uint8
        assert ep.actions.shape == (t, 7) and ep.proprio.shape == (t, 8)
        assert ep.success[-1] and ep.success[-6:].all()  # stopped after 6 consecutive success steps
        m = ep.manifest
        assert ep.instruction == f"put {m['object']} on {m['receptacle']}" and m["seed"] == ep.seed
        assert abs(ep.rewards.sum() - 1.2) < 1e-5


def test_interrupted_generation_resumes_to_the_same_dataset(tmp_path, reference):
    cfg = _cfg(tmp_path)
    seen = []

    def stop_after_two(seed, ok):
        seen.append(seed)
        if len(seen) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        generate(cfg, progress=False, on_result=stop_after_two)
    with pytest.raises(DatasetError, match="did not finish"):
        DemoDataset(tmp_path)
    generate(cfg, progress=False)
    resumed = DemoDataset(tmp_path)
    assert resumed.seeds == reference.seeds
    for a, b in zip(resumed, reference):
        assert a.instruction == b.instruction and a.manifest == b.manifest
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.proprio, b.proprio)
        np.testing.assert_array_equal(a.images, b.images)


def test_held_out_pools_are_refused(tmp_path):
    with pytest.raises(SplitError, match="OOD condition"):
        generate(GenerateConfig(out=str(tmp_path / "a"), env_id="VLAPick-UnseenObjects-v0", episodes=1), False)
    pools = train_pools().replace(objects=("pear",))
    with pytest.raises(SplitError, match="held-out objects"):
        generate(GenerateConfig(out=str(tmp_path / "b"), episodes=1, env_kwargs={"pools": pools}), False)


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"env_id": "VLAPick-v0", "seed": 99}))
    with pytest.raises(DatasetError, match="other settings"):
        generate(_cfg(tmp_path), progress=False)


def test_study_preprocessing():
    a = np.zeros((6, 7), dtype=np.float32)
    a[:, 6] = [1, 1, -1, -1, -1, 1]
    a[1, 0] = 0.02  # a real move
    a[3, 3] = 0.01  # too small a rotation
    assert keep_mask(a).tolist() == [False, True, True, False, False, True]
    assert truncate_after_success(np.array([0, 1, 1, 0, 1, 1, 1, 1], bool), consecutive=3) == 7
    assert truncate_after_success(np.array([0, 1, 0], bool), consecutive=3) == 3


def test_inspect_reports_and_draws(reference, tmp_path):
    from vla_ood_envs.tools.inspect import inspect

    lines = []
    summary = inspect(reference.root, tmp_path, print_fn=lines.append)
    assert summary["episodes"] == 3 and summary["transitions"] == reference.index["num_transitions"]
    assert sum(summary["objects"].values()) == 3
    assert (tmp_path / "actions.png").stat().st_size > 1000 and (tmp_path / "frames.png").stat().st_size > 1000
    assert any("gripper" in line for line in lines)
    with pytest.raises(DatasetError, match="no dataset folder"):
        DemoDataset(tmp_path / "nowhere")


def test_ray_backend_generates_the_same_episodes(tmp_path, reference):
    pytest.importorskip("ray")
    cfg = GenerateConfig(out=str(tmp_path), episodes=2, seed=10, backend="ray", workers=1, **SMALL)
    generate(cfg, progress=False)
    ds = DemoDataset(tmp_path)
    assert ds.seeds == reference.seeds[:2]
    for a, b in zip(ds, reference):
        assert a.manifest == b.manifest
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.images, b.images)
