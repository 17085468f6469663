"""The policy protocol: what every model (scripted expert, tiny VLA, OpenVLA adapter) implements and what the
rollout loop, the trainers and the evaluator consume.

Inputs are batched (docs: ../shared/docs/training-design.md, "The policy protocol"):

- images: (B, H, W, 3) uint8, numpy or torch, the env's `obs["image"]` (any size; a model resizes itself);
- instructions: a sequence of B strings;
- proprio: optional (B, 8) float32 (layout in `vla_ood_envs.spec`), only for policies that ask for it.

`act` returns a `PolicyOutput`; learnable policies also fill tokens, log_prob, entropy and value, and
`evaluate(images, instructions, tokens)` re-scores given tokens with gradients at the same temperature.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from .. import spec


class PolicyInputError(ValueError):
    """A policy was given inputs of the wrong shape, dtype or count."""


@dataclass
class PolicyOutput:
    """One batched decision.

    actions: (B, 7) float32 numpy array in the env's units (`vla_ood_envs.spec`).
    tokens: (B, 7) int64 action-token ids (learnable policies; None otherwise).
    log_prob: (B,) float32, sum over the 7 dimensions of the log-softmax restricted to the action tokens at the
        sampling temperature (None for scripted policies).
    entropy: (B,) float32, mean per-dimension entropy of that restricted distribution (None for scripted).
    value: (B,) float32 value-head estimate (None where the policy has no value head).
    """

    actions: np.ndarray
    tokens: torch.Tensor | None = None
    log_prob: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    value: torch.Tensor | None = None


def check_inputs(images: Any, instructions: Sequence[str], proprio: Any = None) -> int:
    """Validate a batch against the protocol; returns B.

    Raises PolicyInputError naming the problem: images not (B, H, W, 3) uint8, instructions not B strings,
    proprio not (B, 8).
    """
    shape = tuple(images.shape) if hasattr(images, "shape") else None
    dtype = getattr(images, "dtype", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise PolicyInputError(f"images must be a batch of RGB frames of shape (B, H, W, 3), got shape {shape}; "
                               f"add the batch axis for a single frame (images[None])")
    if dtype not in (np.uint8, torch.uint8):
        raise PolicyInputError(f"images must be uint8 (0-255 RGB as the env returns them), got {dtype}")
    if isinstance(instructions, str) or not all(isinstance(s, str) for s in instructions):
        raise PolicyInputError("instructions must be a list of B strings, one per image")
    if len(instructions) != shape[0]:
        raise PolicyInputError(f"got {shape[0]} images but {len(instructions)} instructions; one instruction per "
                               f"image")
    if proprio is not None:
        pshape = tuple(proprio.shape)
        if pshape != (shape[0], spec.PROPRIO_DIM):
            raise PolicyInputError(f"proprio must have shape ({shape[0]}, {spec.PROPRIO_DIM}), got {pshape}")
    return shape[0]


class Policy(abc.ABC):
    """A policy of the protocol. Subclasses set `name` and implement `act`.

    learnable: has parameters, tokens, log-probabilities and `evaluate` (trainers need it).
    privileged: reads the env's simulator state (a scripted expert): it needs an env in the same process,
        given through `reset(env)` at every episode start, and ignores the images.
    needs_proprio: `act` must be given proprio (the env then needs `include_proprio=True`).
    """

    name: str = "policy"
    learnable: ClassVar[bool] = False
    privileged: ClassVar[bool] = False
    needs_proprio: bool = False

    def reset(self, env: Any = None, env_idx: torch.Tensor | None = None) -> None:
        """Called by the rollout loop after every env reset (env_idx: which sub-envs started an episode)."""

    @abc.abstractmethod
    def act(self, images: Any, instructions: Sequence[str], proprio: Any = None, *,
            greedy: bool = False) -> PolicyOutput:
        """Choose actions for a batch; greedy=True takes the most likely action (evaluation)."""


class ScriptedPolicy(Policy):
    """A task's scripted expert behind the protocol (privileged: it reads the unwrapped task's state).

    Works on an in-process env: a single env (`gym.make(ID)`) or ManiSkill's batched mode (`num_envs=N`); for
    `make_vec` worker processes run one loop per worker instead (the demo generator and evaluator do).
    Actions are float32 (B, 7); tokens, log_prob and value are None.
    """

    privileged = True

    def __init__(self, expert: Any = None):
        self.expert = expert
        self.env = None
        self.name = "scripted"

    def reset(self, env: Any = None, env_idx: torch.Tensor | None = None) -> None:
        import gymnasium as gym

        if env is None:
            raise PolicyInputError("a scripted policy reads the simulator: pass the in-process env to reset(env)")
        if isinstance(env, gym.vector.VectorEnv):
            raise PolicyInputError(
                "a scripted expert reads privileged simulator state, which a make_vec worker process keeps to "
                "itself; run it on an in-process env (gym.make(ID), or num_envs=N for ManiSkill's batched mode), "
                "one rollout loop per worker process")
        if self.expert is None:
            from ..experts import expert_for

            self.expert = expert_for(env)
            self.name = f"scripted-{env.unwrapped.TASK_NAME}"
        self.env = env
        self.expert.reset(env, env_idx)

    def act(self, images: Any = None, instructions: Sequence[str] = (), proprio: Any = None, *,
            greedy: bool = False) -> PolicyOutput:
        if self.env is None:
            raise PolicyInputError("call reset(env) before act: the scripted expert reads the env's state")
        return PolicyOutput(actions=self.expert.act(self.env).cpu().numpy().astype(np.float32))

    def phase_names(self) -> list[str]:
        return self.expert.phase_names()


@dataclass
class TokenScores:
    """`evaluate`'s result for given action tokens, with gradients.

    log_prob: (B,) sum over the 7 dimensions of the log-softmax restricted to the 256 action ids, at the
        temperature used; entropy: (B,) mean per-dimension entropy of that distribution; value: (B,) or None.
    """

    log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor | None = None


class LearnablePolicy(Policy, torch.nn.Module):
    """A trainable policy of the protocol (tiny VLA, OpenVLA adapter).

    Action tokens are vocabulary ids in OpenVLA's layout (`policies.tokenizer.ActionTokenizer`: 256 bins on the
    last 256 ids of the vocabulary, id = vocab_size - bin). `act` samples at `self.temperature` (or takes the
    argmax with greedy=True) without gradients; `evaluate` re-scores given tokens with gradients at the same
    temperature, so for the same inputs and tokens it returns the log_prob `act` reported.

    Subclasses implement `act`, `evaluate`, `save_pretrained` and `from_pretrained`, and `parameter_groups`
    (names -> parameters, e.g. {"policy": [...], "value_head": [...]}, for separate learning rates).
    """

    learnable = True

    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        self.temperature = 1.0

    @abc.abstractmethod
    def evaluate(self, images: Any, instructions: Sequence[str], tokens: torch.Tensor, proprio: Any = None, *,
                 temperature: float | None = None) -> TokenScores:
        """Score `tokens` (B, 7) int64 for the batch, with gradients (temperature None: self.temperature)."""

    def value(self, images: Any, instructions: Sequence[str], proprio: Any = None) -> torch.Tensor:
        """(B,) value estimates without gradients (bootstrapping a truncated return)."""
        with torch.no_grad():
            out = self.act(images, instructions, proprio, greedy=True)
        if out.value is None:
            raise NotImplementedError(f"{type(self).__name__} has no value head")
        return out.value

    @abc.abstractmethod
    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """Trainable parameters by group ("policy", "value_head"), for per-group learning rates."""

    @abc.abstractmethod
    def save_pretrained(self, path: str) -> None:
        """Write config.json, model.safetensors and the action statistics to the folder `path`."""

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> "LearnablePolicy":
        """Load a folder written by save_pretrained. Raises FileNotFoundError/ValueError naming what is missing."""
