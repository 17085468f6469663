"""The package's vector env (`gymnasium.make_vec(ID, num_envs=N)`) and the rules for env processes.

`VLAVectorEnv` is Gymnasium's AsyncVectorEnv with one single env per process, with three things fixed:
- workers are spawned, never forked: a forked child inherits the parent's SAPIEN/Vulkan renderer threads (the
  parent builds one env to read the spaces) and deadlocks in its first render call;
- observations travel through pipes (the instruction is text);
- a worker whose parent process dies (crash, SIGKILL) exits within a second instead of living on.

Gymnasium's own `vectorization_mode="async"` forks on Linux unless told otherwise; `refuse_fork`
(`runtime.processes`, with the other rules for env processes) stops it at once with a message naming what works. ManiSkill's GPU-batched mode is `gymnasium.make(ID, num_envs=N)` instead.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import gymnasium as gym
from gymnasium.vector import AutoresetMode

# Importable from here as before; they live with the other rules for env processes.
from .runtime.processes import VectorEnvError, exit_with_parent, refuse_fork, refuse_forked_renderer  # noqa: F401


class VLAVectorEnv(gym.vector.AsyncVectorEnv):
    """N single envs of one ID in N spawned processes (CPU simulation each).

    Observations are batched numpy arrays (instructions a tuple of strings), infos Gymnasium's batched dicts with
    each env's `manifest`. `autoreset_mode` is Gymnasium's (`AutoresetMode` or its value): "NextStep" (default:
    the step after an episode ends resets that env), "SameStep" (reset in the same step; the last observation and
    info are in `info["final_obs"]` and `info["final_info"]`), "Disabled" (reset envs yourself with
    `reset(options={"reset_mask": ...})`). `max_episode_steps` is the episode length every sub-env truncates at,
    and what `spec.max_episode_steps` reports.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], max_episode_steps: int,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP):
        try:
            mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else AutoresetMode(autoreset_mode)
        except ValueError:
            raise VectorEnvError(f"autoreset_mode must be one of {[m.value for m in AutoresetMode]} (or "
                                 f"gymnasium.vector.AutoresetMode), got {autoreset_mode!r}") from None
        self.max_episode_steps = max_episode_steps
        super().__init__(env_fns, context="spawn", shared_memory=False, autoreset_mode=mode)

    @property
    def spec(self):
        return getattr(self, "_spec", None)

    @spec.setter
    def spec(self, value) -> None:
        # make_vec copies the registered spec, whose max_episode_steps is empty (the task truncates by itself).
        if value is not None and value.max_episode_steps is None:
            import dataclasses

            value = dataclasses.replace(value, max_episode_steps=self.max_episode_steps)
        self._spec = value


def make_vector_env(make: Callable[..., gym.Env], env_id: str, num_envs: int,
                    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **kwargs: Any) -> VLAVectorEnv:
    """`gymnasium.make_vec(ID, num_envs=N, **kwargs)` (through `registry.make_vector_env`): a `VLAVectorEnv` of N
    envs, each `make(env_id, **kwargs)` (the registry's `make_env`, a module-level function the spawned workers
    import; `kwargs` are those of `gymnasium.make`, `max_episode_steps` included). Gymnasium refuses
    `vector_kwargs` for a package's own vector env, so `autoreset_mode` is a keyword here."""
    from .tasks.base import DEFAULT_EPISODE_STEPS, check_episode_steps

    kwargs.pop("vectorization_mode", None)  # present when the env is re-made from its spec
    steps = check_episode_steps(kwargs.get("max_episode_steps", DEFAULT_EPISODE_STEPS))
    fns = [functools.partial(_worker_env, make, env_id, os.getpid(), **kwargs) for _ in range(num_envs)]
    return VLAVectorEnv(fns, max_episode_steps=steps, autoreset_mode=autoreset_mode)


def _worker_env(make: Callable[..., gym.Env], env_id: str, parent_pid: int, **kwargs: Any) -> gym.Env:
    """`make(env_id, **kwargs)` in a vector-env worker process, which does nothing but step its env.
    AsyncVectorEnv also calls this once in the parent (to read the spaces); the parent is left as it is."""
    from .runtime.device import env_worker_defaults

    if os.getpid() != parent_pid:
        env_worker_defaults()
        exit_with_parent(parent_pid)
    return make(env_id, **kwargs)
