"""The benchmark's plumbing and the render speed-ups it measures: light robot meshes, the two-triangle floor and
the torch thread limit on a CPU render device. Images must stay what they were."""

import json
import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from vla_ood_envs.tools import bench
from vla_ood_envs.tasks.robot_meshes import lod


def test_env_list_is_data_driven_and_picks_up_registered_tasks(monkeypatch):
    ids = bench.env_ids()
    assert ids[0] == "VLAPick-v0"
    assert ("VLAOpen-v0" in ids) == ("VLAOpen-v0" in gym.registry)
    monkeypatch.setattr(bench, "OPTIONAL_ENV_IDS", ("VLAOpen-v0", "NotRegistered-v9"))
    assert "NotRegistered-v9" not in bench.env_ids()


class _CountingEnv:
    def __init__(self, delay: float):
        self.delay, self.steps, self.resets = delay, 0, 0

    def reset(self, seed=None):
        self.resets += 1

    def step(self, action):
        import time

        time.sleep(self.delay)
        self.steps += 1


def test_measure_pair_alternates_and_reports_each_env():
    fast, slow = _CountingEnv(0.001), _CountingEnv(0.004)
    a, b = bench.measure_pair(fast, lambda: None, slow, lambda: None, steps=10, rounds=5, warmup=1)
    assert fast.steps == slow.steps == 1 + 10 and fast.resets == slow.resets == 1
    assert a > b > 0


def test_timed_round_resets_then_times_every_action():
    env = _CountingEnv(0.002)
    r = bench.timed_round(env, [None] * 5)
    assert env.resets == 1 and env.steps == 5
    assert 0 < r["steps_per_s"] < 1 / 0.002 and r["cpu_ms"] >= 0 and r["main_thread_ms"] >= 0


def _row(env, steps_per_s, reference=None, cpu=10.0, **extra):
    rounds = [{"steps_per_s": s, "cpu_ms": cpu, "main_thread_ms": cpu} for s in steps_per_s]
    return {"env": env, "env_id": env.split()[0], "reference": reference, "obs_mode": "rgb", "width": 224,
            "height": 224, "num_envs": 1, "torch_threads": "1", "steps_per_s": bench._summary(steps_per_s),
            "cpu_ms": bench._summary([cpu] * len(steps_per_s)), "main_thread_ms": bench._summary([cpu]),
            "rounds": rounds, "peak_rss_mb": 700.0, **extra}


def _result(**over):
    machine = {k: "x" for k in ("cpu", "python", "render_device", "driver", "compat_layer", "robot_meshes",
                                "vla_ood_envs", "mani-skill", "sapien", "torch", "gymnasium", "render_on")}
    machine.update(cores=2, torch_threads=2)
    load = {"start": [1.5, 1.0, 1.0], "end": [2.5, 1.0, 1.0]}
    table = {"mode": "rgb 224", "rounds": 3, "steps": 60, "load": load, "rows": [
        _row("VLAPick-v0", [40.0, 44.0, 42.0]), _row("PickCube-v1 defaults", [20.0, 22.0, 21.0], "defaults"),
        _row("PickCube-v1 500/5 Hz", [20.0, 20.0, 21.0], "500/5 Hz")]}
    conditions = {"bare": "VLAPick-v0", "rounds": 3, "steps": 60, "load": load, "rows": [
        _row("VLAPick-v0", [40.0, 40.0, 40.0]),
        _row("VLAPick-DynamicNoiseWeak-v0", [38.0, 38.0, 38.0], cpu=10.5, perturbation_ms=0.7)]}
    threads = {"rounds": 3, "steps": 60, "load": load, "rows": [_row("VLAPick-v0", [40.0] * 3),
                                                                 _row("VLAPick-v0 (torch threads: keep)", [30.0] * 3)]}
    vec = {"env": "VLAPick-v0", "mode": "rgb 224", "num_envs": 2, "steps": 60, "ours": 70.0, "reference": 35.0,
           "ratio": 2.0, "ours_worker_peak_mb": 700.0, "reference_worker_peak_mb": 800.0, "load": load}
    result = {"date": "2026-01-01", "quick": False, "rounds": 3, "steps": 60, "size": 224, "machine": machine,
              "tables": [table], "conditions": [conditions], "threads": threads, "vector": [vec],
              "gpu": {"skipped": "no CUDA device visible to torch"}}
    result.update(over)
    return result


def test_markdown_has_ranges_ratios_load_and_notes():
    md = bench.markdown(_result())
    assert "| VLAPick-v0 | 42.0 (40.0-44.0) | 10.0 | 2.00x (2.00-2.00) | 2.10x (2.00-2.20) |" in md
    assert "load average (1 min) 1.5 at the start, 2.5 at the end" in md
    assert "| VLAPick-DynamicNoiseWeak-v0 | 38.0 (38.0-38.0) | 10.5 | +5.3% (+5.3 to +5.3) | +5.0% | 0.70 |" in md
    assert "torch's default (2 here) 30.0 (30.0-30.0) steps/s" in md
    assert "| VLAPick-v0 | rgb 224 | 2 | 70.0 | 35.0 | 2.00x | 1.5 / 2.5 |" in md
    assert "GPU simulation rows skipped: no CUDA device" in md and "QUICK MODE" not in md
    assert "QUICK MODE" in bench.markdown(_result(quick=True))
    json.dumps(_result())  # the JSON file holds the same structure


def test_ratio_pairs_rounds():
    a, b = _row("a", [10.0, 30.0]), _row("b", [10.0, 10.0])
    assert bench.ratio(a, b) == {"median": 2.0, "min": 1.0, "max": 3.0}


def test_compare_runs_each_env_in_its_own_process(tmp_path):
    """Two state envs in two fresh worker processes, alternating rounds; a failing env (or a `tree` that is not a
    checkout) names itself."""
    specs = [bench.EnvSpec("VLAPick-v0", "state"), bench.EnvSpec(bench.REFERENCE, "state", reference="500/5 Hz")]
    t = bench.compare(specs, rounds=2, steps=2)
    assert [r["env"] for r in t["rows"]] == ["VLAPick-v0", "PickCube-v1 500/5 Hz"]
    for r in t["rows"]:
        assert len(r["rounds"]) == 2 and r["steps_per_s"]["min"] <= r["steps_per_s"]["median"] > 0
        assert r["cpu_ms"]["median"] > 0 and r["peak_rss_mb"] is None or r["peak_rss_mb"] > 100
    assert t["load"]["start"] and t["load"]["end"]
    assert all(r["package"] == str(Path(bench.__file__).parents[1]) for r in t["rows"])  # the package dir
    with pytest.raises(bench.BenchError, match="NoSuchEnv-v0"):
        bench.compare([bench.EnvSpec("NoSuchEnv-v0", "state")], rounds=1, steps=1)
    with pytest.raises(bench.BenchError, match="not a checkout of vla_ood_envs"):
        bench.compare([bench.EnvSpec("VLAPick-v0", "state", tree=str(tmp_path))], rounds=1, steps=1)


def test_docs_block_is_replaced_and_the_text_around_it_kept(tmp_path):
    docs = tmp_path / "performance.md"
    bench._write_docs(docs, "first table\n")
    text = docs.read_text().replace(bench.DOCS_END, bench.DOCS_END + "\n\nHand-written analysis.\n")
    docs.write_text("# Performance\n\nIntro.\n\n" + text.split("\n\n", 2)[2])
    bench._write_docs(docs, "second table\n")
    out = docs.read_text()
    assert "second table" in out and "first table" not in out
    assert "Intro." in out and "Hand-written analysis." in out


def test_gpu_rows_are_skipped_with_a_note_without_cuda(monkeypatch):
    from vla_ood_envs.runtime import device

    monkeypatch.setattr(device, "gpu_simulation_available", lambda: False)
    assert "no CUDA device" in bench.gpu_throughput(steps=1)["skipped"]


# ---------------------------------------------------------------------------------------------- light robot meshes
def _triangles(glb: Path) -> int:
    import trimesh

    return sum(len(g.faces) for g in trimesh.load(str(glb), force="scene", process=False).geometry.values())


def test_light_panda_urdf_swaps_only_visual_meshes(monkeypatch):
    monkeypatch.delenv(lod.ENV_VAR, raising=False)
    path = Path(lod.panda_urdf())
    assert path != lod.source_urdf() and path.with_suffix(".srdf").is_file()
    light, original = ET.parse(path).getroot(), ET.parse(lod.source_urdf()).getroot()
    assert [link.get("name") for link in light.iter("link")] == [link.get("name") for link in original.iter("link")]
    for kind in ("visual", "collision"):
        files = [m.get("filename") for e in light.iter(kind) for m in e.iter("mesh")]
        assert files and all(Path(f).is_absolute() and Path(f).is_file() for f in files)
        assert all(Path(f).is_relative_to(lod.MESH_DIR) == (kind == "visual") for f in files)
    visual = sorted({Path(m.get("filename")).name for e in light.iter("visual") for m in e.iter("mesh")})
    src = lod.source_urdf().parent / "franka_description" / "meshes" / "visual"
    assert sum(_triangles(lod.MESH_DIR / n) for n in visual) < 0.3 * sum(_triangles(src / n) for n in visual)
    monkeypatch.setenv(lod.ENV_VAR, "full")
    assert lod.panda_urdf() == str(lod.source_urdf())


def test_light_meshes_are_single_sided():
    import trimesh

    for glb in lod.MESH_DIR.glob("*.glb"):
        for g in trimesh.load(str(glb), force="scene", process=False).geometry.values():
            assert g.visual.material.doubleSided is False, glb.name


def _frames(make, n_steps: int = 4):
    """First and a later frame (image, segmentation) of two seeds of a small VLAPick env."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = make()
    out = []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        out.append((obs["image"], obs["segmentation"]))
        for _ in range(n_steps):
            obs, *_ = env.step(np.array([0.03, 0.0, -0.03, 0.1, 0.0, 0.2, 1.0], np.float32))
        out.append((obs["image"], obs["segmentation"]))
    env.close()
    return out


def _make(**kw):
    return lambda: gym.make("VLAPick-v0", obs_mode="rgb+segmentation", camera_width=96, camera_height=96, **kw)


def test_light_robot_renders_the_same_picture(monkeypatch):
    from vla_ood_envs.tasks import robots

    monkeypatch.setattr(robots.PandaVLA, "urdf_path", str(lod.source_urdf()), raising=False)
    full = _frames(_make())
    monkeypatch.setattr(robots.PandaVLA, "urdf_path", lod.panda_urdf(), raising=False)
    light = _frames(_make())
    for (a, sa), (b, sb) in zip(full, light):
        mse = ((a.astype(float) - b.astype(float)) ** 2).mean()
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 30  # measured 32-40 dB at 224x224
        assert (sa == sb).mean() > 0.995  # same links, same segmentation ids, same silhouettes within a pixel


def test_two_triangle_floor_renders_like_maniskills_grid(monkeypatch):
    from mani_skill.utils.building.ground import build_ground

    from vla_ood_envs.tasks import scene as scene_lib

    altitude = -2 * scene_lib.TABLE_HALF_SIZE[2]
    monkeypatch.setattr(scene_lib, "build_floor", lambda s: build_ground(s, altitude=altitude))
    grid = _frames(_make(), n_steps=0)
    monkeypatch.setattr(scene_lib, "build_floor", lambda s: scene_lib.build_ground_fast(s, altitude=altitude))
    quad = _frames(_make(), n_steps=0)
    for (a, sa), (b, sb) in zip(grid, quad):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
        assert (sa == sb).all()


# ---------------------------------------------------------------------------------------------- torch threads
_THREADS = """
import json, torch
from vla_ood_envs.runtime import device
choice = device.select_render_backend()
before = torch.get_num_threads()
device.claim_renderer(choice)
print(json.dumps({"before": before, "after": torch.get_num_threads(), "cpu": device.renders_on_cpu(choice)}))
"""


@pytest.mark.parametrize("setting", [None, "keep", "1", "2"])
def test_cpu_rendering_limits_torch_threads_only_when_told(setting):
    """A user's process keeps its torch threads; env worker processes (which set VLA_OOD_TORCH_THREADS=1) and an
    explicit setting get what they ask for."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VLA_OOD_TORCH_THREADS")}
    if setting is not None:
        env["VLA_OOD_TORCH_THREADS"] = setting
    proc = subprocess.run([sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if not r["cpu"]:
        pytest.skip("renders on a GPU: torch threads are left alone")
    expected = {None: r["before"], "keep": r["before"], "1": 1, "2": 2}[setting]
    assert r["after"] == expected
