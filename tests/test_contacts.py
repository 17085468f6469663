"""The one-query contact reading and grasp test give exactly what ManiSkill's per-pair calls give."""

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from vla_ood_envs.tasks.contacts import grasp_test, pair_forces

# Expert actions of recorded episodes (tests/data/record_step_infos.py): they touch, grasp and place.
STORED = np.load(Path(__file__).parent / "data" / "step_infos.npz")


def _env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, obs_mode="state")


@pytest.mark.parametrize("env_id", ["VLAPick-v0", "VLAOpen-v0"])
def test_pair_forces_and_grasp_match_maniskill_every_step(env_id):
    env = _env(env_id)
    base = env.unwrapped
    env.reset(seed=0)
    grasps = touches = 0
    for action in STORED[f"{env_id}/0/actions"][:50]:
        agent, k = base.agent, int(base.target_object[0])
        target = base.objects[k] if env_id.startswith("VLAPick") else base.moving_links[k]
        pairs = [(agent.finger1_link, target), (agent.finger2_link, target)]
        if env_id.startswith("VLAPick"):
            pairs.append((target, base.receptacles[int(base.target_receptacle[0])]))
        ours = pair_forces(base.scene, pairs)
        theirs = [base.scene.get_pairwise_contact_forces(a, b) for a, b in pairs]
        for a, b in zip(ours, theirs):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        grasped = grasp_test(agent, ours[0], ours[1], 0.5, 85)
        assert torch.equal(grasped, agent.is_grasping(target, 0.5, 85))
        grasps += int(grasped.any())
        touches += int(any(bool(f.abs().sum() > 0) for f in ours))
        env.step(action)
    env.close()
    assert touches > 0 and grasps > 0  # the comparison saw contacts and grasps, not only zeros


def test_grasp_test_matches_maniskill_on_arbitrary_forces(monkeypatch):
    """Forces at, below and above the threshold, tiny and zero ones, in every direction, for both fingers."""
    env = _env("VLAPick-v0")
    base = env.unwrapped
    env.reset(seed=1)
    agent, obj = base.agent, base.objects[int(base.target_object[0])]
    rng = np.random.default_rng(0)
    cases = [np.zeros(3), np.full(3, 1e-8), np.array([0.0, 0.5, 0.0]), np.array([0.0, -0.5, 0.0]),
             np.array([0.5, 0.0, 0.0]), np.array([0.0, 0.49999997, 0.0])]
    cases += [rng.normal(size=3) * rng.choice([1e-3, 0.3, 0.5, 1.0, 30.0]) for _ in range(150)]
    forces = [torch.tensor(c, dtype=torch.float32)[None] for c in cases]
    seen = set()
    for i, left in enumerate(forces):
        right = forces[(7 * i + 3) % len(forces)] if i % 3 else -left
        replies = iter([left, right])
        monkeypatch.setattr(base.scene, "get_pairwise_contact_forces", lambda a, b: next(replies))
        want = agent.is_grasping(obj, 0.5, 85)
        monkeypatch.undo()
        got = grasp_test(agent, left, right, 0.5, 85)
        assert torch.equal(got, want), (left, right)
        seen.add(bool(want))
    env.close()
    assert seen == {True, False}


def test_distractor_grasp_from_the_one_query_matches_maniskill():
    """VLAPick's distractor-grasp info on CPU comes from the step's one contact query; ManiSkill's per-distractor
    is_grasping must agree. The grasped target object is listed as a distractor too, so True cases occur."""
    env = _env("VLAPick-v0")
    base = env.unwrapped
    env.reset(seed=0)
    seen = set()
    for action in STORED["VLAPick-v0/0/actions"][:40]:
        env.step(action)
        saved = base._distractor_objects
        k = int(base.target_object[0])
        other = (k + 1) % len(base.objects)
        base._distractor_objects = torch.tensor([[other, k, -1]])
        try:
            ours = base._contacts_and_grasps()[2]
            theirs = base._distractor_info(base.object_pose().p, base.receptacle_pose())["distractor_grasped"]
        finally:
            base._distractor_objects = saved
        assert torch.equal(ours, theirs)
        seen.add(bool(ours))
    env.close()
    assert seen == {True, False}
