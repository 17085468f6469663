"""Policies of the one protocol (`base.Policy`): scripted experts, learnable VLAs (tiny VLA, OpenVLA adapter).

This layer reads the action spec (`vla_ood_envs.spec`) and never imports the tasks; model libraries
(transformers, peft) are imported lazily by the modules that need them.
"""

from .base import LearnablePolicy, Policy, PolicyInputError, PolicyOutput, ScriptedPolicy, TokenScores
from .checkpoints import load_policy, register_policy_type

__all__ = ["LearnablePolicy", "Policy", "PolicyInputError", "PolicyOutput", "ScriptedPolicy", "TokenScores",
           "load_policy", "register_policy_type"]
