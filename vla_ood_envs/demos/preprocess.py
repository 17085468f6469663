"""The study's preprocessing of demonstrations before training (docs/study.md section 4)."""

from __future__ import annotations

import numpy as np


def keep_mask(actions: np.ndarray, min_translation: float = 0.01, min_rotation: float = 0.06) -> np.ndarray:
    """Steps to keep: those that translate at least `min_translation` m or rotate at least `min_rotation` rad, and
    every step where the gripper command toggles (open <-> close), so grasps and releases survive."""
    actions = np.asarray(actions)
    moves = (np.linalg.norm(actions[:, :3], axis=1) >= min_translation) | (
        np.linalg.norm(actions[:, 3:6], axis=1) >= min_rotation)
    gripper = np.sign(actions[:, 6])
    toggles = np.zeros(len(actions), dtype=bool)
    toggles[1:] = gripper[1:] != gripper[:-1]
    return moves | toggles


def truncate_after_success(success: np.ndarray, consecutive: int = 6) -> int:
    """Length to keep: up to and including the `consecutive`-th success step in a row (or everything)."""
    run = 0
    for t, s in enumerate(np.asarray(success, dtype=bool)):
        run = run + 1 if s else 0
        if run >= consecutive:
            return t + 1
    return len(success)
