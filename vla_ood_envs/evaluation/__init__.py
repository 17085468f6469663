"""Evaluation of policies on the OOD conditions: the suite runner (`suite.run_suite`), its statistics (`stats`),
the failure taxonomy (`failures`) and the report (`report.write_report`: the paper's table, figures, strips)."""

from .conditions import BASE_SEED, Condition, ConditionError, episode_seed, select_conditions, sweep_conditions
from .failures import CLASSES, classify
from .policy_spec import PolicySpec, PolicySpecError
from .suite import EvaluationError, run_suite

__all__ = ["BASE_SEED", "CLASSES", "Condition", "ConditionError", "EvaluationError", "PolicySpec", "PolicySpecError",
           "classify", "episode_seed", "run_suite", "select_conditions", "sweep_conditions"]
