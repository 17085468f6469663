"""Which policy an evaluation plays, as a small picklable value that worker processes and Ray actors load.

`PolicySpec.source` is "scripted" (the task's scripted expert: privileged, it reads the simulator of the
worker's in-process env), "random" (uniform random actions, the chance floor) or the path of a checkpoint
(a `save_pretrained` folder or a weights file) loaded with `vla_ood_envs.policies.load_policy(path)`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BUILTIN = ("scripted", "random")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt")


class PolicySpecError(ValueError):
    """A policy spec names no known policy, or a checkpoint that is missing or cannot be loaded."""


@dataclass(frozen=True)
class PolicySpec:
    """source: "scripted", "random" or a checkpoint path. temperature: None evaluates greedily (the argmax action
    of a learnable policy, this suite's default); a float samples at that temperature (the study evaluated at
    0.6). device: where a learnable policy runs (None: its default). label: the policy's name in result tables
    (default: "scripted", "random", or the checkpoint's folder name with 8 hex digits of its hash)."""

    source: str
    temperature: float | None = None
    device: str | None = None
    label: str | None = None

    @property
    def kind(self) -> str:
        return self.source if self.source in BUILTIN else "checkpoint"

    def check(self) -> None:
        """Raise PolicySpecError for a checkpoint path that does not exist or a bad temperature."""
        if self.kind == "checkpoint" and not Path(self.source).exists():
            raise PolicySpecError(f"policy {self.source!r} is neither 'scripted', 'random' nor an existing "
                                  f"checkpoint (a save_pretrained folder or a weights file)")
        if self.temperature is not None and not self.temperature > 0:
            raise PolicySpecError(f"temperature must be > 0 (or None for greedy evaluation), got {self.temperature}")

    def checkpoint_sha256(self) -> str | None:
        """sha256 of the checkpoint's weights (a folder: its model.safetensors, pytorch_model.bin or model.pt;
        else every file of it, by relative path); None for built-in policies."""
        if self.kind != "checkpoint":
            return None
        return weights_sha256(Path(self.source))

    def display_label(self) -> str:
        if self.label:
            return _safe(self.label)
        if self.kind != "checkpoint":
            base = self.kind
        else:
            path = Path(self.source)
            base = f"{(path.name if path.is_dir() else path.stem) or 'checkpoint'}-{self.checkpoint_sha256()[:8]}"
        if self.temperature is not None and self.kind != "scripted":
            base += f"-t{self.temperature:g}"
        return _safe(base)

    def preferred_image_size(self) -> int | None:
        """The square image side the policy was trained at, when it declares one: `image_size` in the
        checkpoint's config.json, else the loaded policy's `image_size` attribute; None for built-ins."""
        if self.kind != "checkpoint":
            return None
        config = Path(self.source) / "config.json"
        if config.is_file():
            size = json.loads(config.read_text()).get("image_size")
            if size is not None:
                return _side(size)
        size = getattr(self.load(), "image_size", None)
        return None if size is None else _side(size)

    def load(self) -> Any:
        """The policy object (`vla_ood_envs.policies.base.Policy`), set up for evaluation: learnable policies in
        eval mode at this spec's temperature."""
        self.check()
        if self.kind == "scripted":
            from ..policies.base import ScriptedPolicy

            return ScriptedPolicy()
        if self.kind == "random":
            from ..policies.baselines import RandomPolicy

            return RandomPolicy()
        from .. import policies

        loader = getattr(policies, "load_policy", None)
        if loader is None:
            raise PolicySpecError("checkpoint policies load through vla_ood_envs.policies.load_policy, which this "
                                  "installation does not have; update the package")
        kwargs = {"device": self.device} if self.device else {}
        try:
            policy = loader(self.source, **kwargs)
        except (FileNotFoundError, ValueError) as exc:
            raise PolicySpecError(f"cannot load the checkpoint {self.source!r}: {exc}") from exc
        if getattr(policy, "learnable", False):
            policy.eval()
            if self.temperature is not None:
                policy.temperature = float(self.temperature)
        return policy

    @property
    def greedy(self) -> bool:
        return self.temperature is None

    def to_dict(self) -> dict:
        return asdict(self)


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, or of a checkpoint folder's weights (see `PolicySpec.checkpoint_sha256`)."""
    if path.is_file():
        return _file_sha256(path)
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return _file_sha256(path / name)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise PolicySpecError(f"checkpoint folder {path} holds no files")
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path)).encode() + b"\0" + _file_sha256(p).encode())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _side(size: Any) -> int:
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise PolicySpecError(f"the evaluation camera is square; the policy declares image_size {size}")
        size = size[0]
    return int(size)


def _safe(label: str) -> str:
    """A label usable as a folder name."""
    out = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("._")
    if not out:
        raise PolicySpecError(f"policy label {label!r} has no usable characters")
    return out
