"""A small synthetic demo dataset in the native store's layout, written in well under a second.

Each episode shows a coloured square on a coloured table; the action moves toward the image centre from the
square's position (dx, dy), the gripper closes in the second half, and the last steps report success. A policy
that reads the image can predict the actions, so supervised training lowers the validation loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vla_ood_envs.demos.store import INDEX, Episode, statistics, write_episode, write_json_atomic
from vla_ood_envs.factors import sample_factors, train_pools


def train_manifest(seed: int) -> dict:
    """The manifest a VLAPick-v0 episode with this seed would carry (training pools)."""
    d = sample_factors(train_pools(), np.random.RandomState(seed)).to_dict()
    d.update(task="VLAPick", robot="panda_vla", seed=seed, pools="train", events=[])
    return json.loads(json.dumps(d))


def make_dataset(root: Path, episodes: int = 8, steps: int = 12, size: int = 32, seed: int = 0,
                 env_id: str = "VLAPick-v0", manifest_changes: dict | None = None) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    eps = []
    for k in range(episodes):
        s = seed + k
        manifest = train_manifest(s)
        manifest.update(manifest_changes or {})
        table = rng.integers(40, 120, size=3)
        colour = rng.integers(150, 255, size=3)
        pos = rng.uniform(4, size - 10, size=2)
        images = np.empty((steps, size, size, 3), dtype=np.uint8)
        actions = np.zeros((steps, 7), dtype=np.float32)
        for t in range(steps):
            img = np.broadcast_to(table.astype(np.uint8), (size, size, 3)).copy()
            x, y = int(pos[0]), int(pos[1])
            img[y:y + 6, x:x + 6] = colour
            images[t] = img
            delta = (size / 2 - 3 - pos) / size * 0.1
            delta = np.where(np.abs(delta) < 0.012, np.sign(delta + 1e-9) * 0.012, delta)
            actions[t, :2] = delta
            actions[t, 2] = 0.02 if t < steps // 2 else -0.02
            actions[t, 6] = 1.0 if t < steps // 2 else -1.0
            pos = np.clip(pos + delta / 0.1 * size * 0.3, 0, size - 6)
        success = np.zeros(steps, dtype=bool)
        success[-2:] = True
        eps.append(Episode(seed=s, env_id=env_id, instruction=f"put {manifest['object']} on {manifest['receptacle']}",
                           manifest=manifest, images=images, proprio=rng.normal(size=(steps, 8)).astype(np.float32),
                           actions=actions, rewards=np.zeros(steps, np.float32), success=success))
        write_episode(root, eps[-1])
    index = {"format_version": 1, "env_id": env_id, "seeds": [e.seed for e in eps],
             "num_transitions": int(sum(len(e) for e in eps)),
             "statistics": {env_id: statistics([e.actions for e in eps], [e.proprio for e in eps])}}
    write_json_atomic(root / INDEX, index)
    return root
