"""The one rollout loop: env(s) x policy -> trajectories with their manifests.

Demo generation, pictures, the expert helper (`run_expert_episode`), evaluation and RL collection all call
`collect` (a batch of episodes, one per sub-env, started together) or `run_episodes` (any number of seeds, batch
after batch).

Envs it drives, all through the same code:
- a single env (`gym.make(ID)`: unbatched numpy observations), batch size 1;
- a Gymnasium vector env (`gym.make_vec(ID, num_envs=N)`: spawned worker processes, batched numpy);
- ManiSkill's batched mode (`gym.make(ID, num_envs=N)`: torch tensors on the simulation device).

Policies follow `vla_ood_envs.policies.base.Policy`: they get (B, H, W, 3) uint8 images, B instructions and,
when they ask for it, (B, 8) proprio, and return (B, 7) actions. Privileged policies (scripted experts) read the
simulator through `reset(env)` and so need an in-process env (a single env or ManiSkill's batched mode).

Each sub-env plays exactly one episode per `collect`; a sub-env whose episode has ended keeps stepping (its
next-step autoreset, or the batched env's lockstep) but nothing more is recorded for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from .policies.base import Policy, PolicyOutput, ScriptedPolicy

# Per-step info flags recorded for every env (when the task reports them), as bool arrays. `distractor_grasped`
# (VLAPick) lets the evaluation tell a grasp of the wrong object at any step.
INFO_FLAGS = ("success", "is_grasped", "grasped_ever", "held_ever", "distractor_grasped")


@dataclass
class Trajectory:
    """One episode as played.

    Step t holds the observation the policy saw (images[t], proprio[t]), what it chose (actions[t], tokens[t],
    log_probs[t], values[t], entropies[t]) and what followed (rewards[t], flags[name][t] read after the step).

    actions: (T, 7) float32, env units; rewards: (T,) float32; images: (T, H, W, 3) uint8 or None (not recorded);
    proprio: (T, 8) float32 or None; tokens: (T, 7) int64 or None; log_probs/values/entropies: (T,) float32 or
    None; flags: name -> (T,) bool (INFO_FLAGS the task reports).
    final_image / final_proprio: the observation after the last action (for bootstrapping a truncated return).
    terminated / truncated: how the episode ended (both False when the loop stopped it: `stop_after_success`
    or `max_steps`).
    """

    seed: int | None
    instruction: str
    manifest: dict
    actions: np.ndarray
    rewards: np.ndarray
    flags: dict[str, np.ndarray]
    images: np.ndarray | None = None
    proprio: np.ndarray | None = None
    tokens: np.ndarray | None = None
    log_probs: np.ndarray | None = None
    values: np.ndarray | None = None
    entropies: np.ndarray | None = None
    final_image: np.ndarray | None = None
    final_proprio: np.ndarray | None = None
    final_info: dict = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def success(self) -> bool:
        """Success at the last step (the study's rule)."""
        s = self.flags.get("success")
        return bool(s[-1]) if s is not None and len(s) else False

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())


# ------------------------------------------------------------------ env adapters
def env_kind(env: Any) -> str:
    """'vector' (Gymnasium vector env), 'batched' (ManiSkill num_envs > 1, torch) or 'single'."""
    if isinstance(env, gym.vector.VectorEnv):
        return "vector"
    if getattr(env.unwrapped, "num_envs", 1) > 1:
        return "batched"
    return "single"


def num_envs_of(env: Any) -> int:
    if isinstance(env, gym.vector.VectorEnv):
        return env.num_envs
    return int(getattr(env.unwrapped, "num_envs", 1))


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _batched_obs(obs: Any, kind: str, env: Any, n: int) -> dict:
    """Observation dict with a leading batch axis (images stay torch in batched mode). State-mode envs give
    {"image": None, "state": ...}: only privileged policies, which read the simulator, can act on them."""
    if not isinstance(obs, dict) or "image" not in obs:
        try:
            instructions = list(env.unwrapped.instructions)
        except AttributeError:  # a vector env's sub-envs live in other processes
            instructions = [""] * n
        return {"image": None, "instruction": instructions, "state": obs}
    if kind == "single":
        out = {"image": obs["image"][None], "instruction": [obs["instruction"]]}
        if "proprio" in obs:
            out["proprio"] = obs["proprio"][None]
        return out
    out = {"image": obs["image"], "instruction": list(obs["instruction"])}
    if "proprio" in obs:
        out["proprio"] = obs["proprio"]
    return out


def _batched_info(env: Any, info: dict, kind: str, n: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """(flags name -> (n,) bool, manifests list of n dicts) from a step or reset info."""
    flags = {}
    for name in INFO_FLAGS:
        if name in info:
            flags[name] = _np(info[name]).reshape(-1).astype(bool) if kind != "single" else \
                np.array([bool(info[name])])
    if kind == "single":
        manifests = [info.get("manifest", {})]
    elif kind == "vector":
        m = info.get("manifest")
        manifests = [_index(m, i) for i in range(n)] if m is not None else [{} for _ in range(n)]
    else:
        manifests = env.unwrapped.manifests()
    return flags, manifests


def _index(v: Any, i: int) -> Any:
    """Element i of a batched info value; Gymnasium's vector envs turn a dict value (the manifest) into a dict of
    per-env arrays, with "_key" masks beside each key."""
    if isinstance(v, dict):
        return {k: _index(x, i) for k, x in v.items() if not k.startswith("_")}
    if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 1 and len(v) > i:
        x = v[i]
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray) and x.dtype != object:
            return x.item() if x.size == 1 and x.ndim == 0 else x
        return x.item() if isinstance(x, np.generic) else x
    return v


def _unbatch_info(info: dict, kind: str, i: int) -> dict:
    if kind == "single":
        return dict(info)
    if kind == "batched" and hasattr(info, "items"):
        out = {k: _index(v, i) for k, v in info.items()}
    else:
        out = {k: _index(v, i) for k, v in info.items()
               if not k.startswith("_") and k not in ("final_obs", "final_info", "final_observation")}
    return out


# ------------------------------------------------------------------ the loop
def collect(env: Any, policy: Policy, seeds: Sequence[int] | None = None, *, options: dict | None = None,
            max_steps: int | None = None, stop_after_success: int = 0, greedy: bool = False,
            record_images: bool = True, record_final_obs: bool = False,
            on_step: Callable[[int, dict, PolicyOutput], None] | None = None) -> list[Trajectory]:
    """Play one episode in every sub-env of `env` with `policy`, all started by one reset.

    seeds: one per sub-env (repeats allowed: equal seeds give equal episodes, e.g. a GRPO group), or None for
        seedless resets. options: passed to reset (e.g. {"reconfigure": True}, {"factors": record}).
    max_steps: steps to play at most (default: the task's episode length).
    stop_after_success: stop recording a sub-env after this many consecutive success steps (0: never).
    greedy: ask the policy for its most likely actions.
    record_images: keep the (T, H, W, 3) frames (RL and demos need them; evaluation does not).
    record_final_obs: keep the observation after the last action (value bootstrap at truncation).
    on_step: called as on_step(t, batched_obs, output) before each step (pictures, progress).

    Returns one Trajectory per sub-env, in sub-env order.

    Raises ValueError for a seeds list of the wrong length, and PolicyInputError (from the policy) for a
    privileged policy on a vector env.
    """
    kind = env_kind(env)
    n = num_envs_of(env)
    if seeds is not None and len(seeds) != n:
        raise ValueError(f"collect needs one seed per sub-env: {n} sub-envs, got {len(seeds)} seeds")
    if kind == "single":
        reset_seed = None if seeds is None else int(seeds[0])
    else:
        reset_seed = None if seeds is None else [int(s) for s in seeds]
    obs, info = env.reset(seed=reset_seed, options=options)
    policy.reset(env)
    if max_steps is None:
        max_steps = _episode_length(env)
    per_env: list[dict[str, list]] = [{k: [] for k in ("image", "proprio", "action", "token", "log_prob",
                                                       "value", "entropy", "reward")} for _ in range(n)]
    flags_acc: list[dict[str, list]] = [{} for _ in range(n)]
    active = np.ones(n, dtype=bool)
    streak = np.zeros(n, dtype=np.int64)
    ended = [(False, False)] * n
    instructions: list[str] = []
    manifests: list[dict] = [{} for _ in range(n)]
    final_infos: list[dict] = [{} for _ in range(n)]
    final_obs: list[tuple[Any, Any]] = [(None, None)] * n
    done_by_env = np.zeros(n, dtype=bool)
    for t in range(max_steps):
        b = _batched_obs(obs, kind, env, n)
        if t == 0:
            instructions = list(b["instruction"])
        if b["image"] is None and not policy.privileged:
            raise ValueError(f"{policy.name} acts on images, but this env returns state observations; make it "
                             f"with obs_mode='rgb'")
        out = policy.act(b["image"], b["instruction"], b.get("proprio") if policy.needs_proprio else None,
                         greedy=greedy)
        if on_step is not None:
            on_step(t, b, out)
        actions = np.asarray(out.actions, dtype=np.float32)
        images = _np(b["image"]) if record_images and b["image"] is not None else None
        proprio = _np(b["proprio"]) if "proprio" in b else None
        extras = {k: (None if getattr(out, a) is None else _np(getattr(out, a)))
                  for k, a in (("token", "tokens"), ("log_prob", "log_prob"), ("value", "value"),
                               ("entropy", "entropy"))}
        for i in np.flatnonzero(active):
            rec = per_env[i]
            if images is not None:
                rec["image"].append(images[i].copy())  # vector envs reuse their observation buffers
            if proprio is not None:
                rec["proprio"].append(proprio[i].copy())
            rec["action"].append(actions[i])
            for k, v in extras.items():
                if v is not None:
                    rec[k].append(v[i])
        obs, reward, terminated, truncated, info = env.step(actions[0] if kind == "single" else actions)
        reward, terminated, truncated = (_np(x).reshape(-1) for x in (reward, terminated, truncated))
        done_by_env = terminated | truncated
        flags, step_manifests = _batched_info(env, info, kind, n)
        success = flags.get("success", np.zeros(n, dtype=bool))
        streak = np.where(success, streak + 1, 0)
        done = terminated | truncated
        if stop_after_success:
            done = done | (streak >= stop_after_success)
        if t == max_steps - 1:
            done = np.ones(n, dtype=bool)
        for i in np.flatnonzero(active):
            per_env[i]["reward"].append(np.float32(reward[i]))
            for k, v in flags.items():
                flags_acc[i].setdefault(k, []).append(bool(v[i]))
            if done[i]:
                active[i] = False
                ended[i] = (bool(terminated[i]), bool(truncated[i]))
                final_infos[i] = _final_info(info, kind, i)
                manifests[i] = final_infos[i].get("manifest") or step_manifests[i]
                if record_final_obs and b["image"] is not None:
                    fo = _final_observation(obs, info, kind, i)
                    final_obs[i] = (_np(fo["image"]).copy(), None if "proprio" not in fo else _np(fo["proprio"]))
        if not active.any():
            break
    if kind == "vector" and bool(done_by_env.any()) and _reset_keeps_pending_autoreset(env):
        # Consume the workers' pending next-step autoreset now, or the next collect's first action is dropped.
        env.step(np.zeros((n, *env.single_action_space.shape), dtype=env.single_action_space.dtype))
    trajs = []
    for i in range(n):
        rec = per_env[i]
        opt = {k: (np.stack(rec[k]) if rec[k] else None) for k in ("image", "proprio", "token", "log_prob", "value",
                                                                  "entropy")}
        trajs.append(Trajectory(
            seed=None if seeds is None else int(seeds[i]),
            instruction=instructions[i] if instructions else "",
            manifest=manifests[i],
            actions=np.stack(rec["action"]).astype(np.float32),
            rewards=np.asarray(rec["reward"], dtype=np.float32),
            flags={k: np.asarray(v, dtype=bool) for k, v in flags_acc[i].items()},
            images=opt["image"], proprio=opt["proprio"], tokens=opt["token"],
            log_probs=opt["log_prob"], values=opt["value"], entropies=opt["entropy"],
            final_image=final_obs[i][0], final_proprio=final_obs[i][1], final_info=final_infos[i],
            terminated=ended[i][0], truncated=ended[i][1],
        ))
    return trajs


def _reset_keeps_pending_autoreset(env: Any) -> bool:
    """True for a Gymnasium AsyncVectorEnv whose workers keep their next-step autoreset flag across `reset()`.

    Gymnasium 1.4's worker clears that flag on reset only when observations travel through shared memory; this
    package's vector env sends them through pipes (the instruction text does not fit shared memory), so after an
    episode ends, a reset followed by a step makes the worker reset again, unseeded, and ignore the action: the
    next collect's episodes would not be the seeded ones (found by the RL trainer: GRPO groups stopped sharing
    their initial state, and the recorded instruction stopped matching the frames from the second collect on).
    """
    from gymnasium.vector import AsyncVectorEnv
    from gymnasium.vector.vector_env import AutoresetMode

    return (isinstance(env, AsyncVectorEnv) and not env.shared_memory
            and getattr(env, "autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.NEXT_STEP)


def _final_info(info: dict, kind: str, i: int) -> dict:
    # Gymnasium's same-step autoreset moves the finished episode's info into "final_info".
    if kind == "vector" and "final_info" in info and _np(info.get("_final_info", [False] * (i + 1)))[i]:
        return _unbatch_info(info["final_info"], kind, i)
    return _unbatch_info(info, kind, i)


def _final_observation(obs: Any, info: dict, kind: str, i: int) -> dict:
    if kind == "vector" and "final_obs" in info and _np(info.get("_final_obs", [False] * (i + 1)))[i]:
        fo = info["final_obs"][i]
        return {"image": fo["image"], **({"proprio": fo["proprio"]} if "proprio" in fo else {})}
    b = _batched_obs(obs, kind, None, 1)
    return {"image": b["image"][i], **({"proprio": b["proprio"][i]} if "proprio" in b else {})}


def _episode_length(env: Any) -> int:
    if isinstance(env, gym.vector.VectorEnv):
        try:
            return int(env.get_attr("max_episode_steps")[0])
        except Exception:  # noqa: BLE001 - an env without the attribute: Gymnasium's spec
            spec = getattr(env, "spec", None)
            if spec is not None and spec.max_episode_steps:
                return int(spec.max_episode_steps)
            raise ValueError("cannot tell this vector env's episode length; pass max_steps=")
    return int(env.unwrapped.max_episode_steps)


def run_episodes(env: Any, policy: Policy, seeds: Sequence[int], **kwargs: Any) -> list[Trajectory]:
    """Play one episode per seed, `num_envs` at a time (the last batch padded by repeating its last seed, the
    padding discarded). Keyword arguments as `collect`."""
    n = num_envs_of(env)
    seeds = [int(s) for s in seeds]
    out: list[Trajectory] = []
    for start in range(0, len(seeds), n):
        chunk = seeds[start:start + n]
        padded = chunk + [chunk[-1]] * (n - len(chunk))
        out.extend(collect(env, policy, padded, **kwargs)[:len(chunk)])
    return out


def run_expert_episode(env: Any, seed: int, expert: Any = None, options: dict | None = None,
                       max_steps: int | None = None) -> dict:
    """Roll out the task's scripted expert (`experts.expert_for(env)` unless `expert` is given) in a single
    (num_envs=1) env from `seed`; returns {"success": bool at the last step, "actions": (T, 7) float32, "info": the
    last info, "phase": the expert's last phase name}."""
    policy = ScriptedPolicy(expert)
    traj = collect(env, policy, [seed], options=options, max_steps=max_steps, record_images=False)[0]
    return {"success": traj.success, "actions": traj.actions, "info": traj.final_info,
            "phase": policy.phase_names()[0]}
