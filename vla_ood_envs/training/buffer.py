"""The rollout buffer: one iteration's episodes as preallocated tensors, filled from `rollout.collect`'s
Trajectory objects and reused every iteration (allocated at the first fill, when the image size is known).

Row e holds episode e (E = episodes per iteration), column t its step t (T = the episode length); positions past
an episode's length are padding (`valid` False).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import spec
from ..rollout import Trajectory


class RolloutBuffer:
    """Preallocated (E, T, ...) tensors on `device`.

    images: (E, T, H, W, 3) uint8; tokens: (E, T, 7) int64; log_probs, values, rewards, entropies: (E, T)
    float32; lengths: (E,) int64; terminated: (E,) bool; bootstrap: (E,) float32 (value after the last step,
    0 after termination); success / grasped / held: (E,) bool (success read at the last step, the study's rule;
    grasp and hold "ever" flags at the last step); seeds: (E,) int64; groups: (E,) int64 (episodes sharing an
    initial state); instructions: list of E str; final_images: (E, H, W, 3) uint8.
    """

    def __init__(self, episodes: int, max_steps: int, device: torch.device | str = "cpu"):
        self.E, self.T = int(episodes), int(max_steps)
        self.device = torch.device(device)
        self.images: torch.Tensor | None = None
        self.final_images: torch.Tensor | None = None
        z = dict(device=self.device)
        self.tokens = torch.zeros(self.E, self.T, spec.ACTION_DIM, dtype=torch.int64, **z)
        self.log_probs = torch.zeros(self.E, self.T, **z)
        self.values = torch.zeros(self.E, self.T, **z)
        self.rewards = torch.zeros(self.E, self.T, **z)
        self.entropies = torch.zeros(self.E, self.T, **z)
        self.lengths = torch.zeros(self.E, dtype=torch.int64, **z)
        self.terminated = torch.zeros(self.E, dtype=torch.bool, **z)
        self.bootstrap = torch.zeros(self.E, **z)
        self.success = torch.zeros(self.E, dtype=torch.bool, **z)
        self.grasped = torch.zeros(self.E, dtype=torch.bool, **z)
        self.held = torch.zeros(self.E, dtype=torch.bool, **z)
        self.seeds = torch.zeros(self.E, dtype=torch.int64, **z)
        self.groups = torch.zeros(self.E, dtype=torch.int64, **z)
        self.instructions: list[str] = [""] * self.E

    @property
    def valid(self) -> torch.Tensor:
        """(E, T) bool: steps that belong to an episode."""
        return torch.arange(self.T, device=self.device)[None] < self.lengths[:, None]

    @property
    def episode_returns(self) -> torch.Tensor:
        return (self.rewards * self.valid).sum(dim=1)

    def _allocate(self, frame_shape: tuple[int, ...]) -> None:
        if self.images is None or tuple(self.images.shape[2:]) != frame_shape:
            self.images = torch.zeros(self.E, self.T, *frame_shape, dtype=torch.uint8, device=self.device)
            self.final_images = torch.zeros(self.E, *frame_shape, dtype=torch.uint8, device=self.device)

    def fill(self, start: int, trajectories: Sequence[Trajectory], groups: Sequence[int]) -> None:
        """Copy episodes into rows start, start + 1, ... Raises ValueError for a trajectory without what a
        learnable policy records (images, tokens, log_probs) or longer than T."""
        for k, (traj, group) in enumerate(zip(trajectories, groups)):
            e = start + k
            if traj.images is None or traj.tokens is None or traj.log_probs is None:
                raise ValueError("RL needs trajectories with images, tokens and log_probs: collect with "
                                 "record_images=True and a LearnablePolicy")
            n = len(traj)
            if n > self.T:
                raise ValueError(f"an episode of {n} steps does not fit the buffer's {self.T}")
            self._allocate(tuple(traj.images.shape[1:]))
            d = self.device
            self.images[e, :n] = torch.from_numpy(traj.images).to(d)
            self.tokens[e, :n] = torch.from_numpy(np.asarray(traj.tokens, dtype=np.int64)).to(d)
            self.log_probs[e, :n] = torch.from_numpy(np.asarray(traj.log_probs, dtype=np.float32)).to(d)
            if traj.values is not None:
                self.values[e, :n] = torch.from_numpy(np.asarray(traj.values, dtype=np.float32)).to(d)
            if traj.entropies is not None:
                self.entropies[e, :n] = torch.from_numpy(np.asarray(traj.entropies, dtype=np.float32)).to(d)
            self.rewards[e, :n] = torch.from_numpy(traj.rewards).to(d)
            for tail in (self.tokens, self.log_probs, self.values, self.entropies, self.rewards):
                tail[e, n:] = 0
            self.lengths[e] = n
            self.terminated[e] = bool(traj.terminated)
            self.bootstrap[e] = 0.0
            if traj.final_image is not None:
                self.final_images[e] = torch.from_numpy(traj.final_image).to(d)
            self.success[e] = traj.success
            for name, target in (("grasped_ever", self.grasped), ("held_ever", self.held)):
                f = traj.flags.get(name)
                target[e] = bool(f[-1]) if f is not None and len(f) else False
            self.seeds[e] = -1 if traj.seed is None else int(traj.seed)
            self.groups[e] = int(group)
            self.instructions[e] = traj.instruction

    @torch.no_grad()
    def compute_bootstrap(self, policy, batch_size: int = 64) -> None:
        """Fill `bootstrap` with the policy's value of each final observation for episodes that did not terminate
        (cut by the time limit or the loop), 0 for terminated ones. Needs record_final_obs=True at collection."""
        rows = torch.nonzero(~self.terminated).flatten().tolist()
        for i in range(0, len(rows), batch_size):
            idx = rows[i:i + batch_size]
            v = policy.value(self.final_images[idx], [self.instructions[j] for j in idx])
            self.bootstrap[idx] = torch.as_tensor(v, dtype=torch.float32).to(self.device)
        self.bootstrap[self.terminated] = 0.0

    def step_indices(self, episode_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(K, 2) int64 (episode, step) of every valid step, restricted to episodes where episode_mask is True."""
        valid = self.valid
        if episode_mask is not None:
            valid = valid & episode_mask[:, None]
        return torch.nonzero(valid)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        """(images (B, H, W, 3) uint8, instructions, tokens (B, 7)) at (episode, step) pairs index (B, 2)."""
        e, t = index[:, 0], index[:, 1]
        return self.images[e, t], [self.instructions[i] for i in e.tolist()], self.tokens[e, t]
