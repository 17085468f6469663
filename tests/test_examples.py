"""Every script in examples/ runs with its --tiny setting and prints what it promises."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _main(name: str):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


def test_readme_lists_every_example():
    listed = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert len(scripts) == 5 and all(f"[{name}]({name})" in listed for name in scripts)


def test_make_ood_env(capsys):
    _main("make_ood_env.py")(["--tiny", "--env", "VLAPick-DynamicNoiseStrong-v0", "--severity", "0.2"])
    out = capsys.readouterr().out
    assert "image (32, 32, 3) uint8" in out and "severity alpha=0.2 (the ID's own: 0.5" in out
    assert '"overlay_alpha": 0.2' in out and "after 2 steps" in out


def test_gymnasium_wrappers(capsys):
    _main("gymnasium_wrappers.py")(["--tiny"])
    out = capsys.readouterr().out
    assert "proprio" not in out.split("episode 0")[0]  # filtered out of the observation space
    assert "image (16, 16, 3), return" in out and "over 3 steps" in out


def test_demos_to_lerobot(capsys, tmp_path):
    _main("demos_to_lerobot.py")(["--tiny", "--out", str(tmp_path / "demos")])
    out = capsys.readouterr().out
    assert "demos: 1 episodes" in out and "expert success 100%" in out
    assert (tmp_path / "demos-lerobot" / "meta" / "info.json").is_file()
    assert "LeRobot v3.0, 1 episodes" in out and "Euler angles XYZ" in out


def test_sb3_ppo_state(capsys):
    pytest.importorskip("stable_baselines3")
    _main("sb3_ppo_state.py")(["--tiny"])
    out = capsys.readouterr().out
    assert "trained 64 steps on VLAPick-v0" in out and ("success 0/1" in out or "success 1/1" in out)


def test_vector_rollout(capsys):
    _main("vector_rollout.py")(["--tiny"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seed ")]
    assert [line.split(":")[0] for line in lines] == ["seed 0", "seed 1"]
    assert all("3 steps, frames (3, 32, 32, 3)" in line for line in lines)
