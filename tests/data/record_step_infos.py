"""Record what the tasks report at every step of fixed episodes, for tests/test_step_replay.py.

Each episode is the task's scripted expert from a seed, then replayed action by action; every step's info values,
the staged reward and the dense reward are stored in `step_infos.npz` next to this file with the actions. The
stored file was written by the code *before* the per-step speed-ups of issue 19 (commit 42b4e61), so the test
checks that those changes left success, grasp, contact force and reward exactly as they were. Rerun this script
only when a change is meant to alter the simulation, and say so in the commit.

    python tests/data/record_step_infos.py
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import vla_ood_envs  # noqa: F401  (registers the IDs)
from vla_ood_envs.rollout import run_expert_episode

OUT = Path(__file__).with_name("step_infos.npz")
EPISODES = (("VLAPick-v0", 0), ("VLAPick-v0", 5), ("VLAOpen-v0", 0), ("VLAOpen-v0", 2))


def replay(env_id: str, seed: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Step `env_id` (state observations, staged reward) from `seed` through `actions`; per-step info values,
    rewards and the dense reward, each (T,) or (T, ...) as numpy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id, obs_mode="state")
    env.reset(seed=seed)
    rows: dict[str, list] = {}
    for a in actions:
        _, reward, _, _, info = env.step(a)
        values = {k: v for k, v in info.items() if isinstance(v, (bool, int, float, np.bool_, np.number))}
        batched = {k: torch.as_tensor(np.atleast_1d(v)) for k, v in values.items()}
        dense = env.unwrapped.compute_dense_reward(obs=None, action=None, info=batched)
        values.update(reward=reward, dense_reward=float(dense[0]))
        for k, v in values.items():
            rows.setdefault(k, []).append(v)
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


def main() -> None:
    data: dict[str, np.ndarray] = {}
    for env_id, seed in EPISODES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, obs_mode="state")
        actions = run_expert_episode(env, seed)["actions"].astype(np.float32)
        env.close()
        key = f"{env_id}/{seed}"
        data[f"{key}/actions"] = actions
        for k, v in replay(env_id, seed, actions).items():
            data[f"{key}/{k}"] = v
        print(key, len(actions), "steps, success at end:", bool(data[f"{key}/success"][-1]),
              "grasped ever:", bool(data[f"{key}/is_grasped"].any()))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    data["commit"] = np.array(commit)
    np.savez_compressed(OUT, **data)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
