"""Scripted, privileged-state experts with the envs' own 7-D action (demonstrators for SFT data)."""

from __future__ import annotations

import numpy as np


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


def run_expert_episode(env, seed: int, expert=None, options: dict | None = None, max_steps: int | None = None) -> dict:
    """Roll out the task's scripted expert in a single (num_envs=1) env from `seed`; returns success at the last
    step, the actions, the last info and the expert's last phase."""
    expert = expert or expert_for(env)
    obs, info = env.reset(seed=seed, options=options)
    expert.reset(env)
    actions = []
    for _ in range(max_steps or env.unwrapped.max_episode_steps):
        action = expert.act(env)[0].cpu().numpy()
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {"success": bool(info["success"]), "actions": np.asarray(actions), "info": info,
            "phase": expert.phase_names()[0]}
