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


def run_expert_episode(env, seed: int, expert=None, options: dict | None = None, max_steps: int | None = None) -> dict:
    """Roll out the task's scripted expert in a single (num_envs=1) env from `seed` (through the package's one
    rollout loop, `vla_ood_envs.rollout`); returns success at the last step, the actions (T, 7) float32, the last
    info and the expert's last phase."""
    from ..policies.base import ScriptedPolicy
    from ..rollout import collect

    policy = ScriptedPolicy(expert or expert_for(env))
    traj = collect(env, policy, [seed], options=options, max_steps=max_steps, record_images=False)[0]
    return {"success": traj.success, "actions": traj.actions, "info": traj.final_info,
            "phase": policy.phase_names()[0]}
