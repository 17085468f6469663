"""The failure taxonomy (vla_ood_envs.evaluation.failures) and the VLAPick info it reads."""

import numpy as np
import pytest
import torch

from mani_skill.utils.structs.pose import Pose

from vla_ood_envs.evaluation.failures import CLASSES, EpisodeOutcome, classify, outcome_of
from vla_ood_envs.factors import Placement, PickFactors
from vla_ood_envs.policies import ScriptedPolicy
from vla_ood_envs.rollout import Trajectory, collect

OPEN = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)


@pytest.mark.parametrize("expected, outcome", [
    ("success", EpisodeOutcome(True, True, True, False, receptacle_gap=0.0)),
    # Success wins over a distractor that was touched on the way.
    ("success", EpisodeOutcome(True, True, True, False, distractor_grasped_ever=True, receptacle_gap=0.0)),
    ("wrong_receptacle", EpisodeOutcome(False, False, True, False, on_distractor_receptacle=True,
                                        receptacle_gap=0.2)),
    ("wrong_object", EpisodeOutcome(False, False, False, False, distractor_grasped_ever=True, receptacle_gap=0.1)),
    ("wrong_object", EpisodeOutcome(False, False, True, False, distractor_on_receptacle=True, receptacle_gap=0.1)),
    ("never_grasped", EpisodeOutcome(False, False, False, False, receptacle_gap=0.1)),
    ("timed_out_holding", EpisodeOutcome(False, False, True, True, receptacle_gap=0.01)),
    ("placed_off_target", EpisodeOutcome(False, False, True, False, receptacle_gap=0.03)),
    # Placed, then knocked off again to just beside the plate.
    ("placed_off_target", EpisodeOutcome(False, True, True, False, receptacle_gap=0.0)),
    ("grasped_then_dropped", EpisodeOutcome(False, False, True, False, receptacle_gap=0.12)),
    # VLAOpen has no receptacle: a released handle is a drop.
    ("grasped_then_dropped", EpisodeOutcome(False, False, True, False, receptacle_gap=None)),
])
def test_classifier_on_constructed_outcomes(expected, outcome):
    assert expected in CLASSES
    assert classify(outcome) == expected


def test_outcome_of_a_constructed_trajectory():
    flags = {"success": np.array([0, 1, 1, 0], bool), "is_grasped": np.array([1, 1, 0, 0], bool),
             "grasped_ever": np.array([1, 1, 1, 1], bool), "distractor_grasped": np.zeros(4, bool)}
    traj = Trajectory(seed=1, instruction="put apple on plate", manifest={}, actions=np.zeros((4, 7), np.float32),
                      rewards=np.zeros(4, np.float32), flags=flags,
                      final_info={"receptacle_gap": np.float32(0.02), "on_distractor_receptacle": False})
    o = outcome_of(traj)
    assert (o.success, o.ever_succeeded, o.grasped_ever, o.grasped_at_end) == (False, True, True, False)
    assert o.receptacle_gap == pytest.approx(0.02)
    assert classify(o) == "placed_off_target"


def _record(**changes):
    base = dict(object="toy block", receptacle="plate", table="oak", template="put {O} on {R}",
                object_xy=(0.075, 0.075), receptacle_xy=(-0.075, -0.075), object_yaw=0.0)
    return PickFactors(**{**base, **changes})


def _set_on(base, actor, rec_pose, rec_height):
    p = rec_pose.p.clone()
    p[:, 2] = p[:, 2] + rec_height + 0.005
    actor.set_pose(Pose.create_from_pq(p))


def test_info_reports_a_distractor_object_on_the_receptacle(state_env):
    f = _record(distractor_objects=(Placement("apple", (0.075, -0.075)),))
    _, info = state_env.reset(seed=0, options={"factors": f})
    assert not info["distractor_on_receptacle"] and not info["on_distractor_receptacle"]
    assert float(info["receptacle_gap"]) > 0.05
    base = state_env.unwrapped
    apple = base.objects[base._object_index["apple"]]
    _set_on(base, apple, base.receptacle_pose(), base._rec_height[base.target_receptacle])
    for _ in range(2):
        _, _, _, _, info = state_env.step(OPEN)
    assert bool(info["distractor_on_receptacle"]) and not bool(info["success"])
    assert not bool(info["distractor_grasped"])


def test_info_reports_the_object_on_a_distractor_receptacle(state_env):
    f = _record(distractor_receptacles=(Placement("saucer", (0.075, -0.075)),))
    state_env.reset(seed=0, options={"factors": f})
    base = state_env.unwrapped
    k = base._receptacle_index["saucer"]
    saucer = base.receptacles[k]
    _set_on(base, base.objects[int(base.target_object[0])], saucer.pose, base._rec_height[k])
    for _ in range(2):
        _, _, _, _, info = state_env.step(OPEN)
    assert bool(info["on_distractor_receptacle"]) and not bool(info["success"])
    assert float(info["receptacle_gap"]) > 0.05  # 15 cm between the centres, less the plate's half-width


def test_a_grasp_of_the_distractor_is_flagged(state_env):
    """The expert's actions that grasp the apple as the target, replayed where the apple is a distractor (same
    place and yaw, another target elsewhere), grasp the distractor: the per-step flag the rollout records."""
    first = _record(object="apple", object_xy=(0.0, 0.045))
    traj = collect(state_env, ScriptedPolicy(), [0], options={"factors": first}, max_steps=14,
                   record_images=False)[0]
    assert traj.flags["is_grasped"].any() and not traj.flags["distractor_grasped"].any()
    swapped = _record(object="toy block", object_xy=(0.075, -0.075),
                      distractor_objects=(Placement("apple", (0.0, 0.045), 0.0),))
    state_env.reset(seed=0, options={"factors": swapped})
    grasped, target = [], []
    for a in traj.actions:
        _, _, _, _, info = state_env.step(a)
        grasped.append(bool(info["distractor_grasped"]))
        target.append(bool(info["is_grasped"]))
    assert any(grasped) and not any(target)
    assert torch.equal(state_env.unwrapped._distractor_objects.cpu(),
                       torch.tensor([[state_env.unwrapped._object_index["apple"]]]))
