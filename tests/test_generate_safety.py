"""`vla-ood generate` never loses finished episodes: it refuses to shrink a finished dataset silently, checks the
folder (writable, enough space) before any worker starts, resumes gaps left by parallel workers to the same
dataset, byte for byte, and ends an interrupt or a dead worker with one line that says how to resume."""

import errno
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vla_ood_envs import DatasetError
from vla_ood_envs.cli import main
from vla_ood_envs.demos import DemoDataset, GenerateConfig, generate
from vla_ood_envs.demos.store import episode_path

generate_mod = importlib.import_module("vla_ood_envs.demos.generate")

# The settings of conftest's tiny_demos: two episodes from seed 10 at 32x32.
TINY = ["--seed", "10", "--size", "32", "32"]


def _cfg(out, **kw):
    return GenerateConfig(out=str(out), **{"episodes": 2, "seed": 10, "image_height": 32, "image_width": 32, **kw})


@pytest.fixture
def no_workers(monkeypatch):
    """Fail the test if generate gets as far as starting workers."""
    class NoRunner:
        def __init__(self, cfg):
            raise AssertionError("workers were started")

    monkeypatch.setattr(generate_mod, "_Runner", NoRunner)


def _copy(src: Path, dst: Path, index: bool = True) -> Path:
    shutil.copytree(src, dst)
    if not index:
        (dst / "dataset.json").unlink()
    return dst


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "episodes").glob("*.h5"))}


def test_fewer_episodes_than_a_finished_dataset_is_refused_and_shrink_keeps_every_file(
        tiny_demos, tmp_path, no_workers, capsys):
    root = _copy(tiny_demos, tmp_path / "ds")
    before, index_before = _files(root), (root / "dataset.json").read_bytes()
    assert main(["generate", "--episodes", "1", "--out", str(root), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "holds a finished dataset of 2 episodes and --episodes 1 asks for fewer; nothing was changed" in err
    assert "--shrink" in err
    assert _files(root) == before and (root / "dataset.json").read_bytes() == index_before

    assert main(["generate", "--episodes", "1", "--shrink", "--out", str(root), *TINY]) == 0
    out = capsys.readouterr().out
    assert DemoDataset(root).seeds == [10]
    assert _files(root) == before  # no episode file deleted
    assert "1 more episode file in" in out and "reuses it" in out
    # Asking for the full size again lists both, without a worker (both files exist).
    assert main(["generate", "--episodes", "2", "--out", str(root), *TINY]) == 0
    assert DemoDataset(root).seeds == [10, 11]


def test_an_unwritable_folder_fails_before_any_worker_starts(tmp_path, no_workers, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert main(["generate", "--episodes", "1", "--out", str(tmp_path / "file" / "ds"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "error: cannot create the dataset folder" in err and "Not a directory" in err and "Traceback" not in err

    # A read-only dataset (a read-only mount stops root too; permission bits would not): simulated, because
    # tests run as root without the right to mount.
    root = tmp_path / "readonly"
    (root / "episodes").mkdir(parents=True)
    real_write = Path.write_bytes

    def read_only(self, data):
        if root in self.parents:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(DatasetError, match=r"cannot write to .*readonly \(Read-only file system\)"):
        generate(_cfg(root), progress=False)


def test_too_little_free_space_fails_before_any_worker_starts(tmp_path, no_workers, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(DatasetError, match=r"0\.00 GB free, and 1000 more episodes need about 0\.08 GB "
                                           r"\(0\.08 MB each at 32x32\)"):
        generate(_cfg(tmp_path, episodes=1000), progress=False)
    assert not (tmp_path / "settings.json").exists()


def test_a_resumed_run_fills_gaps_and_writes_byte_identical_files(tiny_demos, tmp_path):
    """Two workers finish out of order: seed 12 may be done before seed 11. Resuming must play 11 (the dataset is
    the first successes in seed order) and give the same file as the uninterrupted run."""
    root = _copy(tiny_demos, tmp_path / "ds", index=False)
    reference = _files(tiny_demos)
    os.replace(episode_path(root, 11), episode_path(root, 12))  # a finished look-ahead seed, 11 in flight
    generate(_cfg(root), progress=False)
    assert DemoDataset(root).seeds == [10, 11]
    files = _files(root)
    assert files["episode_00000011.h5"] == reference["episode_00000011.h5"]
    assert files["episode_00000010.h5"] == reference["episode_00000010.h5"]
    assert "episode_00000012.h5" in files  # kept, not part of the dataset


def _start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "vla_ood_envs.cli", "generate", *args], stdout=subprocess.DEVNULL,
                            stderr=err, env=env, start_new_session=True)
    return proc, err


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(c) for c in text.split()]


def _workers(pid: int) -> list[int]:
    return [c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _wait(predicate, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _finish(proc, err):
    try:
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err.seek(0)
    return rc, err.read()


def test_ctrl_c_ends_with_one_line_and_exit_130(tiny_demos, tmp_path):
    root = _copy(tiny_demos, tmp_path / "ds", index=False)
    args = ["--episodes", "4", "--workers", "2", "--out", str(root), *TINY]
    proc, err = _start(args, tmp_path)
    assert _wait(lambda: len(_workers(proc.pid)) == 2), "the workers did not start"
    time.sleep(1)
    workers = _workers(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    rc, text = _finish(proc, err)
    assert rc == 130
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    last = text.strip().splitlines()[-1]
    assert last == f"interrupted: 2 finished episodes kept in {root / 'episodes'}; resume with: vla-ood generate " \
                   + " ".join(args)
    assert _wait(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 30), "workers outlived the driver"
    assert len(_files(root)) >= 2


def test_a_dead_worker_ends_with_one_line_and_the_resume_command(tmp_path):
    root = tmp_path / "ds"
    args = ["--episodes", "3", "--workers", "2", "--out", str(root), *TINY]
    proc, err = _start(args, tmp_path)
    assert _wait(lambda: len(_workers(proc.pid)) == 2), "the workers did not start"
    os.kill(_workers(proc.pid)[0], signal.SIGKILL)  # e.g. the kernel's out-of-memory killer
    rc, text = _finish(proc, err)
    assert rc == 1 and "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: a worker process died (") and "finished episode" in last
    assert last.endswith("; resume with: vla-ood generate " + " ".join(args))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(episodes=0), r"episodes=0 is out of range; episodes must be a positive integer"),
    (dict(workers=0), r"workers=0 is out of range"),
    (dict(image_height=0), r"image_height=0 is out of range; .* from 1 to 16384"),
    (dict(seed=-1), r"seed=-1: seed must be an integer >= 0"),
    (dict(backend="threads"), r"backend='threads' is not supported; .*'processes', 'ray'"),
])
def test_bad_generation_settings_are_refused_before_anything_starts(tmp_path, no_workers, kwargs, pattern):
    from vla_ood_envs import ConfigError

    with pytest.raises(ConfigError, match=pattern):
        generate(_cfg(tmp_path / "ds", **kwargs), progress=False)
    assert not (tmp_path / "ds").exists()


def test_the_same_episode_always_gives_the_same_file(tmp_path):
    """No timestamps, deterministic compression: bytes depend on the episode only."""
    import h5py
    import numpy as np

    from vla_ood_envs.demos.store import Episode, write_episode

    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8), 2, axis=1)  # compressible
    ep = Episode(seed=3, env_id="VLAPick-v0", instruction="put apple on plate", manifest={"object": "apple"},
                 images=frames, proprio=np.zeros((12, 8), np.float32), actions=np.zeros((12, 7), np.float32),
                 rewards=np.zeros(12, np.float32), success=np.zeros(12, bool))
    files = []
    for k in range(4):
        path = write_episode(tmp_path / str(k), ep)
        files.append(path.read_bytes())
        time.sleep(0.3 if k == 0 else 0)
    assert all(f == files[0] for f in files)
    with h5py.File(path) as f:
        assert f["observation/image"].compression == "gzip"
        for name in ["", "observation", "observation/image", "action"]:
            assert h5py.h5o.get_info(f[name].id if name else f.id).ctime == 0, name
