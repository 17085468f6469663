"""Rules for the processes that hold envs: workers are spawned, never forked (a forked child inherits the parent's
SAPIEN/Vulkan renderer threads and deadlocks in its first render call), and a worker ends with its parent.

`registry.make_env` calls `refuse_fork` and `refuse_forked_renderer` before building anything; the package's vector
env (`vla_ood_envs.vector`) starts each worker with `exit_with_parent`.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time

import gymnasium as gym

from ..errors import ForkedProcessError, VectorEnvError

WATCH_INTERVAL_S = 0.5


def exit_with_parent(parent_pid: int, interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """End this process (exit status 1) once `parent_pid` is no longer its parent, checked every `interval` s on a
    daemon thread. A worker blocked in its pipe already ends when the pipe closes; this covers one that is busy
    (building its env, stepping) when the parent dies."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="vla-ood-parent-watch", daemon=True)
    thread.start()
    return thread


def refuse_fork() -> None:
    """Raise VectorEnvError when called (through `gymnasium.make`) from an AsyncVectorEnv that will fork its
    workers: their SAPIEN renderer would deadlock (see the module docstring), and the parent would wait forever."""
    frame = sys._getframe(1)
    init = gym.vector.AsyncVectorEnv.__init__.__code__
    while frame is not None and frame.f_code is not init:
        frame = frame.f_back
    if frame is None:
        return
    context = frame.f_locals.get("context")
    method = multiprocessing.get_context(context).get_start_method()
    if method == "fork":
        raise VectorEnvError(
            "gymnasium.make_vec(..., vectorization_mode='async') starts its workers with fork here, and a forked "
            "worker deadlocks in SAPIEN's renderer. Use the package's vector env, which spawns them: "
            "gymnasium.make_vec(ID, num_envs=N) (vectorization_mode='vector_entry_point', the default; it takes "
            "autoreset_mode= as a keyword), or vectorization_mode='sync' (one process), or "
            "vectorization_mode='async' with vector_kwargs={'context': 'spawn'}")


def refuse_forked_renderer(claimed_pid: int | None) -> None:
    """Raise ForkedProcessError (a RuntimeError) in a process forked from one whose SAPIEN renderer had started (`claimed_pid`): the
    renderer's threads did not survive the fork, and building an env would hang."""
    if claimed_pid is not None and claimed_pid != os.getpid():
        raise ForkedProcessError(
            f"this process was forked from process {claimed_pid}, which had already started SAPIEN's renderer; a "
            f"renderer does not survive fork (building an env here would hang). Start env processes with the "
            f"'spawn' start method (multiprocessing.get_context('spawn')), or use gymnasium.make_vec(ID, num_envs=N)")
