"""The declaration table of registered environment IDs, and the factory Gymnasium calls for each.

One row per ID: base task, wrapper stack, axis and display name. Registration, `vla-ood list` and (later) the
evaluation suite all read `DECLARATIONS`; adding an OOD condition means adding a row.

An ID whose stack holds a wrapper that declares a severity (`Perturbation.SEVERITY`) has one: `severity_of(ID)` says
which argument, its value in the row and its range, and `gym.make(ID, severity=value)` builds the ID with another
value, so an evaluation can sweep any ID without knowing its wrapper.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gymnasium as gym

from .errors import ConfigError

TASKS = ("VLAPick", "VLAOpen")
AXES = ("IND", "vision", "semantics", "execution")


class SeveritySetting(NamedTuple):
    """An ID's severity: the wrapper argument, its value in the ID's row (or the wrapper's default) and its range
    (low, high) in the argument's unit. A distance band's value is a (lo, hi) pair, each end in the range."""

    param: str
    default: float | tuple[float, float]
    range: tuple[float, float]


@dataclass(frozen=True)
class EnvDeclaration:
    env_id: str
    task: str
    axis: str
    display_name: str
    description: str
    wrappers: tuple[tuple[str, dict[str, Any]], ...] = ()  # (wrapper class name in vla_ood_envs.wrappers, kwargs)
    task_kwargs: dict[str, Any] = field(default_factory=dict)

    def severity_wrapper(self) -> int | None:
        """Index in `wrappers` of the one wrapper that declares a severity; None when none does. Raises ValueError
        when several do (a sweep would not know which to change)."""
        found = [i for i, (name, _) in enumerate(self.wrappers) if wrapper_class(name).SEVERITY is not None]
        if len(found) > 1:
            raise ValueError(f"{self.env_id} stacks several wrappers with a severity "
                             f"({', '.join(self.wrappers[i][0] for i in found)}); give it one")
        return found[0] if found else None

    @property
    def severity(self) -> SeveritySetting | None:
        """The ID's severity (None for an ID whose perturbations have no strength, e.g. a pool swap)."""
        i = self.severity_wrapper()
        if i is None:
            return None
        name, kwargs = self.wrappers[i]
        cls = wrapper_class(name)
        sev = cls.SEVERITY
        default = kwargs.get(sev.param, inspect.signature(cls.__init__).parameters[sev.param].default)
        return SeveritySetting(sev.param, sev.check(default), (sev.low, sev.high))


def _w(name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    return (name, kwargs)


def _row(task: str, env_id: str, axis: str, display: str, description: str, *wrappers) -> EnvDeclaration:
    return EnvDeclaration(env_id, task, axis, display, description, tuple(wrappers))


_pick = functools.partial(_row, "VLAPick")
_open = functools.partial(_row, "VLAOpen")


# The study's 16 evaluation conditions of the pick-and-place task (docs: ../shared/docs/study.md, section 2).
DECLARATIONS: tuple[EnvDeclaration, ...] = (
    _pick("VLAPick-v0", "IND", "IND",
          "Training distribution: 16 objects, the plate, 16 table appearances, the 6x6 grid, 1 template."),
    _pick("VLAPick-UnseenTable-v0", "vision", "Unseen table", "Table appearance from the 5 held-out ones.",
          _w("UnseenTable", mode="scene")),
    _pick("VLAPick-DynamicTextureWeak-v0", "vision", "Dyn. texture weak",
          "Texture over robot+object pixels, anchored to their moving box, alpha 0.3.",
          _w("DynamicTexture", alpha=0.3)),
    _pick("VLAPick-DynamicTextureStrong-v0", "vision", "Dyn. texture strong",
          "Texture over robot+object pixels, anchored to their moving box, alpha 0.5.",
          _w("DynamicTexture", alpha=0.5)),
    _pick("VLAPick-DynamicNoiseWeak-v0", "vision", "Dyn. noise weak",
          "Double-size texture over the whole frame, offset following the arm/object, alpha 0.3.",
          _w("DynamicNoise", alpha=0.3)),
    _pick("VLAPick-DynamicNoiseStrong-v0", "vision", "Dyn. noise strong",
          "Double-size texture over the whole frame, offset following the arm/object, alpha 0.5.",
          _w("DynamicNoise", alpha=0.5)),
    _pick("VLAPick-UnseenObjects-v0", "semantics", "Unseen objects", "Target object from the 9 held-out objects.",
          _w("ObjectSampler", pool="test")),
    _pick("VLAPick-UnseenReceptacles-v0", "semantics", "Unseen receptacles",
          "Receptacle from the 16 held-out receptacles.", _w("ReceptacleSampler", pool="test")),
    _pick("VLAPick-UnseenInstructions-v0", "semantics", "Unseen instructions",
          "Instruction phrased with one of the 16 held-out templates.", _w("InstructionParaphrase", pool="test")),
    _pick("VLAPick-MultiObjectSeen-v0", "semantics", "Multi-object (both seen)",
          "A second training object > 15 cm from the target; the instruction names the target.",
          _w("DistractorObject", pool="train")),
    _pick("VLAPick-MultiObjectUnseen-v0", "semantics", "Multi-object (both unseen)",
          "Held-out target and a held-out distractor object > 15 cm away.",
          _w("ObjectSampler", pool="test"), _w("DistractorObject", pool="test")),
    _pick("VLAPick-DistractiveReceptacle-v0", "semantics", "Distractive receptacle",
          "A held-out receptacle > 15 cm from the plate.", _w("DistractorReceptacle", pool="test")),
    _pick("VLAPick-MultiReceptacleUnseen-v0", "semantics", "Multi-receptacle (both unseen)",
          "Held-out target receptacle and a held-out distractor receptacle > 15 cm away.",
          _w("ReceptacleSampler", pool="test"), _w("DistractorReceptacle", pool="test")),
    _pick("VLAPick-UnseenPosition-v0", "execution", "Unseen position",
          "Object and receptacle on the ring 3 cm outside the training square; yaws at odd multiples of pi/8.",
          _w("PlacementSampler", region="ring")),
    _pick("VLAPick-UnseenRobotInitPose-v0", "execution", "Unseen robot init pose",
          "Joint offsets: joints 1-5 in {0, +-0.08, +-0.15} rad, wrist {0, +-0.3, +-0.6} rad, not all zero.",
          _w("RobotInitPose")),
    _pick("VLAPick-MidEpisodeReposition-v0", "execution", "Mid-episode reposition",
          "After action 5 the object is teleported once to a cell 15-21 cm away.",
          _w("MidEpisodeReposition", at_step=5)),
    # The articulated-open task's conditions (docs: ../shared/docs/study.md, section 3).
    _open("VLAOpen-v0", "IND", "IND",
          "Training distribution: 8 door objects, 16 table appearances, the training placements, 1 template."),
    _open("VLAOpen-UnseenBackground-v0", "vision", "New background", "Table appearance from the 5 held-out ones.",
          _w("UnseenTable", mode="scene")),
    _open("VLAOpen-DynamicNoise-v0", "vision", "Dyn. noise",
          "Double-size texture over the whole frame, offset following the arm/object, alpha 0.5.",
          _w("DynamicNoise", alpha=0.5)),
    _open("VLAOpen-UnseenObjects-v0", "semantics", "Unseen art. objects",
          "Articulated object from the 6 held-out door objects.", _w("ObjectSampler", pool="test")),
    _open("VLAOpen-UnseenInstructions-v0", "semantics", "Re-phrased",
          "Instruction phrased with one of the 16 held-out templates.", _w("InstructionParaphrase", pool="test")),
    _open("VLAOpen-UnseenObjectPose-v0", "execution", "Object pose",
          "Object on the ring 3 cm outside the training placements, yaw offset +-15 or +-20 deg.",
          _w("PlacementSampler", region="test")),
    _open("VLAOpen-UnseenRobotInitPose-v0", "execution", "EE pose",
          "Joint offsets: joints 1-5 in {0, +-0.08, +-0.15} rad, wrist {0, +-0.3, +-0.6} rad, not all zero.",
          _w("RobotInitPose")),
)


def wrapper_class(name: str):
    from . import wrappers

    cls = getattr(wrappers, name, None)
    if cls is None:
        raise ValueError(f"unknown perturbation wrapper {name!r}")
    return cls


def declaration(env_id: str) -> EnvDeclaration:
    for d in DECLARATIONS:
        if d.env_id == env_id:
            return d
    known = ", ".join(d.env_id for d in DECLARATIONS)
    raise gym.error.UnregisteredEnv(f"{env_id!r} is not a vla_ood_envs ID; registered IDs: {known}")


def severity_of(env_id: str) -> SeveritySetting:
    """(param, default, (low, high)) of `env_id`'s severity, e.g. ("alpha", 0.5, (0.0, 1.0)) for
    VLAPick-DynamicNoiseStrong-v0. Raises ValueError for an ID without one, naming the IDs that have one."""
    d = declaration(env_id)
    if d.severity is None:
        raise _no_severity(d)
    return d.severity


def _no_severity(d: EnvDeclaration) -> ValueError:
    what = ", ".join(name for name, _ in d.wrappers) or "no perturbation"
    return ValueError(f"{d.env_id} has no severity to sweep ({what}); IDs with one: {', '.join(severity_ids())}")


def severity_ids() -> tuple[str, ...]:
    """The registered IDs that have a severity, in table order."""
    return tuple(d.env_id for d in DECLARATIONS if d.severity is not None)


def _task_class(task: str):
    if task == "VLAPick":
        from .tasks.pick import VLAPickEnv

        return VLAPickEnv
    if task == "VLAOpen":
        from .tasks.open import VLAOpenEnv

        return VLAOpenEnv
    raise ValueError(f"unknown task {task!r}; tasks: {TASKS}")


_STATE_MODES = ("state", "state_dict", "none")
# The observation modes the envs document (VLAObservation's layout, or ManiSkill's flat / dict state).
OBS_MODES = ("rgb", "rgb+segmentation", "state", "state_dict")
_GPU_SIM_BACKENDS = ("auto", "gpu", "cuda", "physx_cuda")  # sim_backend values that can mean GPU simulation


def _gym_make_episode_steps(caller) -> int | None:
    """The `max_episode_steps` given to `gymnasium.make` when `caller` (the frame that called make_env) is
    gymnasium.make; None otherwise.

    gymnasium.make keeps that argument to itself and only wraps the env it gets back in a TimeLimit, so the
    task would go on truncating at its own length; reading it from make's frame (as ManiSkill's TimeLimitWrapper
    does, mani_skill/utils/registration.py) gives the task the same length as the TimeLimit and the spec.
    """
    if caller is None or caller.f_code is not gym.envs.registration.make.__code__:
        return None
    value = caller.f_locals.get("max_episode_steps")
    return None if value == -1 else value


def make_env(
    env_id: str,
    num_envs: int = 1,
    obs_mode: str = "rgb",
    render_mode: str | None = None,
    render_backend: str | None = None,
    sim_backend: str = "auto",
    include_proprio: bool = False,
    severity: Any = None,
    wrapper_overrides: dict[str, dict[str, Any]] | None = None,
    **task_kwargs: Any,
) -> gym.Env:
    """Build a registered env: the task, its OOD wrappers, and (for num_envs=1) the numpy single-env view.

    obs_mode: one of OBS_MODES: "rgb" (image + instruction), "rgb+segmentation", or ManiSkill's
        "state"/"state_dict" (no cameras). Anything else (depth, point clouds) raises ValueError.
    render_backend: None picks the device automatically (no cameras for state modes without a render_mode);
        "none" disables rendering; "cpu", "cuda" or "pci:<alias>" force a device.
    wrapper_overrides: wrapper name -> arguments replacing the declaration's, e.g.
        {"DynamicNoise": {"alpha": 0.7}} for a severity sweep; ValueError for a wrapper the ID does not have.
    severity: a value for the ID's severity argument in place of the row's (see `severity_of`; applied after
        `wrapper_overrides`); ValueError for an ID without a severity, PerturbationError for a value outside its
        declared range.
    max_episode_steps (a task argument; through gymnasium.make, its own argument): the episode length, which the
        task truncates at (batched-safe) and the spec reports.

    Raises ValueError for an unknown obs_mode or a bad episode length, RuntimeError for batched GPU simulation
    without CUDA, PhysXGpuLibraryError when SAPIEN's PhysX GPU library is missing and cannot be downloaded,
    VectorEnvError when called from a vector env that forks its workers.
    """
    from .runtime.device import (
        RenderDeviceError, claim_renderer, ensure_physx_gpu_library, gpu_simulation_available, renderer_pid,
        select_render_backend,
    )
    from .runtime.processes import refuse_fork, refuse_forked_renderer
    from .tasks.base import check_episode_steps
    from .wrappers.observation import SingleEnvNumpy, VLAObservation

    steps = _gym_make_episode_steps(sys._getframe(1))
    decl = declaration(env_id)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if obs_mode not in OBS_MODES:
        raise ConfigError(f"obs_mode must be one of {list(OBS_MODES)}, got {obs_mode!r} (depth and point clouds are "
                         f"not supported)")
    if steps is not None:
        if num_envs > 1:
            raise ConfigError(
                f"gymnasium.make({env_id!r}, num_envs={num_envs}, max_episode_steps={steps}) would wrap the batched "
                f"env in Gymnasium's TimeLimit, which counts steps for the whole batch and returns one bool. Give "
                f"the length to the task instead: vla_ood_envs.registry.make_env({env_id!r}, num_envs={num_envs}, "
                f"max_episode_steps={steps}) (it truncates each env itself)")
        task_kwargs["max_episode_steps"] = check_episode_steps(steps)
    refuse_fork()
    refuse_forked_renderer(renderer_pid())
    # ManiSkill's "auto" means GPU simulation for more than one env.
    if sim_backend in _GPU_SIM_BACKENDS and (num_envs > 1 or sim_backend != "auto"):
        if not gpu_simulation_available():
            raise RuntimeError(
                f"num_envs={num_envs}, sim_backend={sim_backend!r} runs ManiSkill's batched GPU simulation, but no "
                f"CUDA device is visible. On a CPU machine use Gymnasium's vector API instead: "
                f"gymnasium.make_vec({env_id!r}, num_envs={num_envs}) (one process per env).")
        ensure_physx_gpu_library()
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
    stack = [(wrapper_class(name), wkw) for name, wkw in _wrapper_arguments(decl, wrapper_overrides)]
    if severity is not None:
        i = decl.severity_wrapper()
        if i is None:
            raise _no_severity(decl)
        cls, wkw = stack[i]
        wkw[cls.SEVERITY.param] = cls.SEVERITY.check(severity)
    # Image perturbations read the segmentation image; render it even when the user did not ask to see it.
    needs_seg = any(cls.requires_segmentation(**wkw) for cls, wkw in stack)
    internal_obs_mode = obs_mode
    if needs_seg and obs_mode == "rgb":
        internal_obs_mode = "rgb+segmentation"
    elif needs_seg and "rgb" not in obs_mode:
        raise ValueError(f"{env_id} perturbs images; it needs obs_mode 'rgb' or 'rgb+segmentation', not {obs_mode!r}")
    env = _task_class(decl.task)(num_envs=num_envs, obs_mode=internal_obs_mode, render_mode=render_mode,
                                 render_backend=backend, sim_backend=sim_backend, **kwargs)
    env = VLAObservation(env, include_proprio=include_proprio, expose_segmentation=internal_obs_mode == obs_mode)
    for cls, wkw in stack:
        env = cls(env, **wkw)
    if num_envs == 1:
        env = SingleEnvNumpy(env)
    return env


def _wrapper_arguments(decl: EnvDeclaration, overrides: dict[str, dict[str, Any]] | None
                       ) -> list[tuple[str, dict[str, Any]]]:
    """The declaration's wrappers with their arguments, `overrides` merged over them."""
    overrides = dict(overrides or {})
    names = [name for name, _ in decl.wrappers]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"{decl.env_id} has no wrapper {', '.join(unknown)} to override; its wrappers: "
                         f"{', '.join(names) or 'none'}")
    return [(name, {**wkw, **overrides.get(name, {})}) for name, wkw in decl.wrappers]


def make_vector_env(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """`gymnasium.make_vec(ID, num_envs=N)`: N single envs, one spawned process each (see vla_ood_envs.vector)."""
    from .vector import make_vector_env as make

    return make(make_env, env_id, num_envs, **kwargs)


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
