"""Scripted, privileged-state experts with the envs' own 7-D action (demonstrators for SFT data)."""

from __future__ import annotations


def expert_for(env):
    """The scripted expert of the task under `env` (a fresh instance; call its reset(env) after each env reset)."""
    task = env.unwrapped.TASK_NAME
    if task == "VLAPick":
        from .pick_expert import PickExpert

        return PickExpert()
    if task == "VLAOpen":
        from .open_expert import OpenExpert

        return OpenExpert()
    raise ValueError(f"no scripted expert for task {task!r}")



def __getattr__(name: str):
    # run_expert_episode moved to vla_ood_envs.rollout (the loop's layer); the old name warns for one release.
    from .._moved import moved_attribute

    return moved_attribute(__name__, name)
