"""The declaration table of registered environment IDs, and the factory Gymnasium calls for each.

One row per ID: base task, wrapper stack, axis and display name. Registration, `vla-ood list` and (later) the
evaluation suite all read `DECLARATIONS`; adding an OOD condition means adding a row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym

TASKS = ("VLAPick",)
AXES = ("IND", "vision", "semantics", "execution")


@dataclass(frozen=True)
class EnvDeclaration:
    env_id: str
    task: str
    axis: str
    display_name: str
    description: str
    wrappers: tuple[tuple[Callable[..., gym.Wrapper], dict[str, Any]], ...] = ()
    task_kwargs: dict[str, Any] = field(default_factory=dict)


DECLARATIONS: tuple[EnvDeclaration, ...] = (
    EnvDeclaration("VLAPick-v0", "VLAPick", "IND", "IND",
                   "Training distribution: 16 objects, the plate, 16 table appearances, the 6x6 grid, 1 template."),
)


def declaration(env_id: str) -> EnvDeclaration:
    for d in DECLARATIONS:
        if d.env_id == env_id:
            return d
    known = ", ".join(d.env_id for d in DECLARATIONS)
    raise gym.error.UnregisteredEnv(f"{env_id!r} is not a vla_ood_envs ID; registered IDs: {known}")


def _task_class(task: str):
    if task == "VLAPick":
        from .tasks.pick import VLAPickEnv

        return VLAPickEnv
    raise ValueError(f"unknown task {task!r}; tasks: {TASKS}")


_STATE_MODES = ("state", "state_dict", "none")


def make_env(
    env_id: str,
    num_envs: int = 1,
    obs_mode: str = "rgb",
    render_mode: str | None = None,
    render_backend: str | None = None,
    sim_backend: str = "auto",
    include_proprio: bool = False,
    **task_kwargs: Any,
) -> gym.Env:
    """Build a registered env: the task, its OOD wrappers, and (for num_envs=1) the numpy single-env view.

    obs_mode: "rgb" (image + instruction), "rgb+segmentation", or ManiSkill's "state"/"state_dict".
    render_backend: None picks the device automatically (no cameras for state modes without a render_mode);
        "none" disables rendering; "cpu", "cuda" or "pci:<alias>" force a device.
    """
    from .render.device import RenderDeviceError, claim_renderer, gpu_simulation_available, select_render_backend
    from .wrappers.observation import SingleEnvNumpy, VLAObservation

    decl = declaration(env_id)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if num_envs > 1 and sim_backend in ("auto", "gpu", "cuda", "physx_cuda") and not gpu_simulation_available():
        raise RuntimeError(
            f"num_envs={num_envs} runs ManiSkill's batched GPU simulation, but no CUDA device is visible. On a CPU "
            f"machine use Gymnasium's vector API instead: gymnasium.make_vec({env_id!r}, num_envs={num_envs}) "
            f"(one process per env)."
        )
    try:
        choice = select_render_backend(None if render_backend == "none" else render_backend)
    except RenderDeviceError as exc:
        raise RenderDeviceError(
            f"{exc} (ManiSkill needs a Vulkan device even for state-only envs: building a scene creates render "
            f"materials.)"
        ) from exc
    claim_renderer(choice)
    state_only = obs_mode in _STATE_MODES and render_mode is None
    # State-only envs get no cameras or render system at all ("none"), which is faster; SAPIEN's materials still
    # live on the claimed device.
    backend = "none" if render_backend == "none" or (render_backend is None and state_only) else choice.backend
    kwargs = {**decl.task_kwargs, **task_kwargs}
    env = _task_class(decl.task)(num_envs=num_envs, obs_mode=obs_mode, render_mode=render_mode,
                                 render_backend=backend, sim_backend=sim_backend, **kwargs)
    env = VLAObservation(env, include_proprio=include_proprio)
    for wrapper, wrapper_kwargs in decl.wrappers:
        env = wrapper(env, **wrapper_kwargs)
    if num_envs == 1:
        env = SingleEnvNumpy(env)
    return env


def make_vector_env(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """`gymnasium.make_vec(ID, num_envs=N)`: N single envs, one process each (CPU simulation per process).

    Processes are spawned, not forked: a forked child inherits the parent's Vulkan/lavapipe threads (the parent
    builds one env to read the spaces) and deadlocks. Observations travel through pipes rather than shared
    memory because Gymnasium's shared memory cannot hold the instruction text. ManiSkill's GPU-batched mode is
    `gymnasium.make(ID, num_envs=N)` instead.
    """
    kwargs.pop("vectorization_mode", None)
    fns = [functools.partial(make_env, env_id, **kwargs) for _ in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context="spawn", shared_memory=False)


def register_all() -> None:
    for d in DECLARATIONS:
        if d.env_id in gym.registry:
            continue
        gym.register(
            id=d.env_id,
            entry_point="vla_ood_envs.registry:make_env",
            vector_entry_point="vla_ood_envs.registry:make_vector_env",
            kwargs={"env_id": d.env_id},
            # Episodes end by truncation inside the task (batched-safe), so no TimeLimit wrapper is added here.
            max_episode_steps=None,
            # The batched mode returns torch tensors, which Gymnasium's passive checker does not understand; the
            # single-env mode is verified with gymnasium.utils.env_checker.check_env in the tests.
            disable_env_checker=True,
        )
