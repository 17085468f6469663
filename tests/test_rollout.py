"""The one rollout loop (vla_ood_envs.rollout) and the policy protocol's input checks."""

import gymnasium as gym
import numpy as np
import pytest

from vla_ood_envs.policies import Policy, PolicyInputError, PolicyOutput, ScriptedPolicy
from vla_ood_envs.policies.base import check_inputs
from vla_ood_envs.rollout import collect, run_episodes, run_expert_episode


class ConstantPolicy(Policy):
    """Acts the same open-gripper drift everywhere; records what it was shown."""

    name = "constant"

    def __init__(self):
        self.seen = []

    def act(self, images, instructions, proprio=None, *, greedy=False):
        b = check_inputs(images, instructions, proprio)
        self.seen.append((np.asarray(images).shape, list(instructions)))
        a = np.zeros((b, 7), np.float32)
        a[:, 0], a[:, 6] = 0.01, 1.0
        return PolicyOutput(actions=a)


def test_scripted_policy_through_collect_matches_expert_helper(rgb_env, state_env):
    alone = run_expert_episode(state_env, 2000)
    traj = collect(rgb_env, ScriptedPolicy(), [2000], max_steps=12)[0]
    assert traj.images.shape == (12, 64, 64, 3) and traj.images.dtype == np.uint8
    assert traj.actions.shape == (12, 7) and traj.actions.dtype == np.float32
    assert traj.rewards.shape == (12,) and set(traj.flags) >= {"success", "is_grasped", "grasped_ever"}
    assert traj.manifest["seed"] == 2000 and traj.instruction.startswith("put ")
    # The first actions of the expert do not depend on the observation mode.
    np.testing.assert_allclose(traj.actions, alone["actions"][:12], atol=1e-5)
    assert alone["success"]


def test_stop_after_success_ends_recording(state_env):
    # Fresh scenes: without them PhysX carries float-level state from the shared env's earlier episodes, and the
    # two runs of the seed drift apart by ~1e-4 after a few steps, depending on which tests ran before.
    fresh = {"reconfigure": True}
    full = collect(state_env, ScriptedPolicy(), [2001], record_images=False, options=fresh)[0]
    short = collect(state_env, ScriptedPolicy(), [2001], record_images=False, stop_after_success=3, options=fresh)[0]
    assert len(full) == 80 and full.truncated
    first = int(np.argmax(full.flags["success"]))
    assert short.success and len(short) == first + 3
    np.testing.assert_array_equal(short.actions, full.actions[: len(short)])


def test_learnable_style_policy_on_vector_env():
    env = gym.make_vec("VLAPick-v0", num_envs=2, camera_width=32, camera_height=32, include_proprio=True)
    try:
        policy = ConstantPolicy()
        trajs = collect(env, policy, [5, 6], max_steps=3, record_final_obs=True)
        assert [t.seed for t in trajs] == [5, 6]
        assert [t.manifest["seed"] for t in trajs] == [5, 6]
        assert all(t.images.shape == (3, 32, 32, 3) and t.proprio.shape == (3, 8) for t in trajs)
        assert all(t.final_image.shape == (32, 32, 3) for t in trajs)
        assert policy.seen[0][0] == (2, 32, 32, 3) and len(policy.seen) == 3
        # run_episodes pads the last batch and drops the padding.
        more = run_episodes(env, policy, [7, 8, 9], max_steps=1, record_images=False)
        assert [t.seed for t in more] == [7, 8, 9] and [t.manifest["seed"] for t in more] == [7, 8, 9]
        with pytest.raises(PolicyInputError, match="in-process env"):
            collect(env, ScriptedPolicy(), [1, 2], max_steps=1)
        with pytest.raises(ValueError, match="one seed per sub-env"):
            collect(env, policy, [1], max_steps=1)
    finally:
        env.close()


def test_image_policy_refuses_state_env(state_env):
    with pytest.raises(ValueError, match="obs_mode='rgb'"):
        collect(state_env, ConstantPolicy(), [0], max_steps=1)


@pytest.mark.parametrize("images, instructions, match", [
    (np.zeros((2, 8, 8, 3), np.float32), ["a", "b"], "uint8"),
    (np.zeros((8, 8, 3), np.uint8), ["a"], r"\(B, H, W, 3\)"),
    (np.zeros((2, 8, 8, 3), np.uint8), ["a"], "2 images but 1 instructions"),
    (np.zeros((1, 8, 8, 3), np.uint8), "a", "list of B strings"),
])
def test_protocol_input_errors(images, instructions, match):
    with pytest.raises(PolicyInputError, match=match):
        check_inputs(images, instructions)
