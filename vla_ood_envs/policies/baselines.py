"""Reference policies with no model: the chance floor of an evaluation table."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .. import spec
from .base import Policy, PolicyOutput, check_inputs


class RandomPolicy(Policy):
    """Uniform random actions within the action bounds (`spec.action_bounds`), ignoring the images; the gripper
    command is drawn from {-1, +1}. Draws come from torch's global generator, so seeding torch before an episode
    (the evaluation suite seeds it with the episode seed) fixes the episode. Actions: (B, 7) float32."""

    name = "random"

    def act(self, images: Any, instructions: Sequence[str], proprio: Any = None, *,
            greedy: bool = False) -> PolicyOutput:
        b = check_inputs(images, instructions, proprio)
        low, high = (torch.from_numpy(x) for x in spec.action_bounds())
        a = low + (high - low) * torch.rand(b, spec.ACTION_DIM)
        a[:, spec.GRIPPER_INDEX] = torch.where(torch.rand(b) < 0.5, spec.GRIPPER_CLOSE, spec.GRIPPER_OPEN)
        return PolicyOutput(actions=a.numpy().astype(np.float32))
