"""scripts/setup.sh waits (bounded) for the apt lock another apt/dpkg process holds instead of failing at once.

A fake `apt-get` on PATH plays the locked package manager; nothing touches the machine's apt."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
WAIT = ROOT / "scripts" / "apt-get-wait"
LOCKED = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"


@pytest.fixture
def fake_apt(tmp_path):
    """An apt-get that reports the lock as held for its first `locked` calls, then succeeds (or fails with
    `error`); it logs its arguments, one call per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"

    def make(locked: int, error: str = "") -> Path:
        script = bin_dir / "apt-get"
        script.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {log}
n=$(wc -l < {log})
if [ "$n" -le {locked} ]; then echo "{LOCKED}" >&2; echo "E: Unable to lock directory /var/lib/apt/lists/" >&2; exit 100; fi
{f'echo "{error}" >&2; exit 100' if error else 'exit 0'}
""")
        script.chmod(0o755)
        return log

    return bin_dir, make


def _run(bin_dir, *args, wait="600"):
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOCK_WAIT": wait, "APT_LOCK_POLL": "0.1"}
    return subprocess.run(["bash", str(WAIT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_waits_while_the_lock_is_held_then_runs(fake_apt):
    bin_dir, make = fake_apt
    log = make(locked=2)
    result = _run(bin_dir, "update", "-q")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls == ["-o DPkg::Lock::Timeout=600 update -q"] * 3  # apt-get also waits for the dpkg lock itself
    assert result.stderr.count("waiting up to 600 s") == 1


def test_gives_up_after_the_bound_with_a_message(fake_apt):
    bin_dir, make = fake_apt
    make(locked=10**6)
    t0 = time.monotonic()
    result = _run(bin_dir, "install", "-y", "gcc", wait="1")
    assert result.returncode == 100 and time.monotonic() - t0 < 20
    assert "held the package lock for" in result.stderr and "re-run" in result.stderr


def test_other_failures_are_not_retried(fake_apt):
    bin_dir, make = fake_apt
    log = make(locked=0, error="E: Unable to locate package nosuchpackage")
    result = _run(bin_dir, "install", "-y", "nosuchpackage")
    assert result.returncode == 100 and "Unable to locate package" in result.stderr
    assert len(log.read_text().splitlines()) == 1


@pytest.mark.parametrize("script", ["scripts/setup.sh", "vla_ood_envs/runtime/install_vulkan.sh"])
def test_the_set_up_scripts_call_apt_only_through_the_waiting_wrapper(script):
    text = (ROOT / script).read_text()
    commands = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    bare = [line for line in commands if re.search(r"(^|[\s;&|(])apt-get\s+(update|install)", line)]
    assert not bare, bare
    assert "apt-get-wait" in text or 'bash "$APT_GET"' in text
