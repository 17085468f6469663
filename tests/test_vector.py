"""Vector envs as RL libraries drive them: distinct sub-env episodes, the episode length given to make_vec,
Gymnasium's autoreset modes, forking refused at once, and no worker left behind by a dead parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, timeout: float) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (this checkout first on the path); a hang shows as a test failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {timeout} s (hung): {exc.stderr}")


def test_same_step_autoreset_length_and_distinct_seeds():
    venv = gym.make_vec("VLAPick-v0", num_envs=2, obs_mode="state", max_episode_steps=2,
                        autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert venv.spec.max_episode_steps == 2
        _, info = venv.reset()  # no seed: each sub-env draws its own
        first = list(info["manifest"]["seed"])
        assert first[0] != first[1]
        zeros = np.zeros((2, 7), dtype=np.float32)
        _, _, _, truncated, info = venv.step(zeros)
        assert not truncated.any()
        obs, _, _, truncated, info = venv.step(zeros)
        assert truncated.all()  # at the length given to make_vec, not the default 80
        assert np.stack(info["final_obs"]).shape == obs.shape
        assert list(info["final_info"]["manifest"]["seed"]) == first
        second = list(info["manifest"]["seed"])  # the episodes that autoreset started
        assert len(set(first + second)) == 4, (first, second)
        # Each recorded seed replays its episode.
        _, replay = venv.reset(seed=second)
        assert list(replay["manifest"]["object"]) == list(info["manifest"]["object"])
    finally:
        venv.close()


def test_autoreset_mode_is_checked():
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        gym.make_vec("VLAPick-v0", num_envs=2, obs_mode="state", autoreset_mode="sometimes")


def test_async_mode_is_refused_at_once_instead_of_hanging():
    out = _python("""
        import gymnasium as gym, vla_ood_envs
        try:
            gym.make_vec("VLAPick-v0", num_envs=2, vectorization_mode="async", obs_mode="state")
        except ValueError as exc:
            print("REFUSED", exc)
    """, timeout=120)
    assert "REFUSED" in out.stdout, out.stderr
    assert "vector_entry_point" in out.stdout and "spawn" in out.stdout


def test_a_forked_process_refuses_to_build_an_env_instead_of_hanging():
    out = _python("""
        import os, gymnasium as gym, vla_ood_envs
        gym.make("VLAPick-v0", obs_mode="state").close()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                gym.make("VLAPick-v0", obs_mode="state")
                os.write(write, b"BUILT")
            except RuntimeError as exc:
                os.write(write, ("REFUSED " + str(exc)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.read(read, 4096).decode())
    """, timeout=180)
    assert "REFUSED" in out.stdout and "spawn" in out.stdout, (out.stdout, out.stderr)


def test_workers_end_when_the_parent_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time, gymnasium as gym, vla_ood_envs
        venv = gym.make_vec("VLAPick-v0", num_envs=2, obs_mode="state")
        venv.reset(seed=0)
        print(" ".join(str(p.pid) for p in venv.processes), flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 30
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if _alive(p)]
    assert not alive, f"workers {alive} outlived their parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
