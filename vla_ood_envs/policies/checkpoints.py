"""Loading any learnable policy from its checkpoint folder: config.json names the "policy_type", and the type's
class (registered here) reads the rest. The OpenVLA adapter registers its own type beside the tiny VLA's."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"

# policy_type -> "module:Class" (imported only when a checkpoint of that type is loaded).
POLICY_TYPES: dict[str, str] = {"tiny_vla": "vla_ood_envs.policies.tiny_vla:TinyVLA",
                                "openvla_adapter": "vla_ood_envs.policies.openvla:OpenVLAAdapter"}


def register_policy_type(policy_type: str, target: str) -> None:
    """Make `load_policy` open checkpoints whose config.json says `policy_type`; target is "module:Class" of a
    LearnablePolicy with `from_pretrained(path, **kwargs)`."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    POLICY_TYPES[policy_type] = target


def read_config(path: str | Path) -> dict:
    """config.json of a checkpoint folder. Raises FileNotFoundError naming what is missing, ValueError for a
    config.json that is not a JSON object."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {path}")
    file = path / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_FILE}: not a policy checkpoint (a folder written by "
                                f"save_pretrained holds config.json, model.safetensors and dataset_statistics.json)")
    try:
        cfg = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{file} must hold a JSON object")
    return cfg


def load_policy(path: str | Path, **kwargs: Any):
    """Load the LearnablePolicy saved in folder `path` (its config.json's "policy_type" picks the class).

    kwargs go to that class's `from_pretrained` (e.g. device=). Raises FileNotFoundError for a folder without a
    model, ValueError for a missing or unknown policy_type (naming the known ones).
    """
    cfg = read_config(path)
    kind = cfg.get("policy_type")
    if kind is None:
        raise ValueError(f"{Path(path) / CONFIG_FILE} has no 'policy_type'; known types: {sorted(POLICY_TYPES)}")
    if kind not in POLICY_TYPES:
        raise ValueError(f"{path}: unknown policy_type {kind!r}; known types: {sorted(POLICY_TYPES)} (an extra "
                         f"that provides it may not be installed)")
    module, cls = POLICY_TYPES[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_pretrained(path, **kwargs)
