"""The failure taxonomy: one class per evaluated episode, from its per-step flags and its last info.

Classes, tested in this order (the first that holds):

- success: success at the last step (the study's rule);
- wrong_receptacle (VLAPick): the target object ended on a distractor receptacle;
- wrong_object (VLAPick): a distractor object was grasped at some step, or ended on the target receptacle;
- never_grasped: the target (VLAPick object, VLAOpen handle) was never grasped;
- timed_out_holding: still grasped at the last step;
- placed_off_target (VLAPick): released within PLACE_NEAR of the receptacle footprint (a miss, a bounce off the
  rim, an object balanced without contact, or one knocked off after a success);
- grasped_then_dropped: grasped at some step and released elsewhere (VLAOpen: let go of the handle before the
  door or drawer was open enough).

The VLAPick distractor and receptacle-distance facts come from the task's info (`receptacle_gap`,
`distractor_grasped`, `distractor_on_receptacle`, `on_distractor_receptacle`; tasks/pick.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CLASSES = ("success", "never_grasped", "grasped_then_dropped", "wrong_object", "wrong_receptacle",
           "placed_off_target", "timed_out_holding")
FAILURE_LABELS = {
    "success": "success",
    "never_grasped": "never grasped",
    "grasped_then_dropped": "grasped then dropped",
    "wrong_object": "wrong object",
    "wrong_receptacle": "wrong receptacle",
    "placed_off_target": "placed off target",
    "timed_out_holding": "timed out holding",
}
PLACE_NEAR = 0.05  # m from the receptacle footprint: released this close counts as a placement that missed


@dataclass(frozen=True)
class EpisodeOutcome:
    """What the classifier reads of an episode (all at the last step unless "ever").

    receptacle_gap: m from the object centre to the target receptacle's footprint (None: the task has none).
    """

    success: bool
    ever_succeeded: bool
    grasped_ever: bool
    grasped_at_end: bool
    distractor_grasped_ever: bool = False
    distractor_on_receptacle: bool = False
    on_distractor_receptacle: bool = False
    receptacle_gap: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def outcome_of(traj: Any) -> EpisodeOutcome:
    """The outcome of a `rollout.Trajectory` (flags per step, `final_info` of the last step)."""
    flags = traj.flags
    info = traj.final_info or {}

    def last(name: str) -> bool:
        v = flags.get(name)
        return bool(v[-1]) if v is not None and len(v) else bool(_scalar(info.get(name, False)))

    def ever(name: str) -> bool:
        v = flags.get(name)
        return bool(np.any(v)) if v is not None and len(v) else False

    gap = info.get("receptacle_gap")
    return EpisodeOutcome(
        success=last("success"),
        ever_succeeded=ever("success"),
        grasped_ever=last("grasped_ever") or ever("is_grasped"),
        grasped_at_end=last("is_grasped"),
        distractor_grasped_ever=ever("distractor_grasped"),
        distractor_on_receptacle=bool(_scalar(info.get("distractor_on_receptacle", False))),
        on_distractor_receptacle=bool(_scalar(info.get("on_distractor_receptacle", False))),
        receptacle_gap=None if gap is None else round(float(_scalar(gap)), 5),
    )


def _scalar(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if hasattr(v, "reshape") and getattr(v, "size", 1) == 1:
        return np.asarray(v).reshape(-1)[0].item()
    return v


def classify(o: EpisodeOutcome) -> str:
    """The episode's class (one of CLASSES; see the module docstring for the rules and their order)."""
    if o.success:
        return "success"
    if o.on_distractor_receptacle:
        return "wrong_receptacle"
    if o.distractor_grasped_ever or o.distractor_on_receptacle:
        return "wrong_object"
    if not o.grasped_ever:
        return "never_grasped"
    if o.grasped_at_end:
        return "timed_out_holding"
    if o.receptacle_gap is not None and o.receptacle_gap <= PLACE_NEAR:
        return "placed_off_target"
    return "grasped_then_dropped"
