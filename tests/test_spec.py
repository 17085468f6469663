"""The action/proprio spec against what ManiSkill's controller really does, and the exported datasets' metadata
against the controller (not against the spec: a wrong spec and a wrong export must both fail here).

The rotation convention is measured: a pure rotation action is stepped through a real env, and the controller's
new target orientation is compared with an intrinsic Euler-XYZ reading and an axis-angle reading of the same three
numbers (rotation matrices written out by hand, so ManiSkill's own conversion is not what checks it).
"""

import json

import numpy as np
import pytest

from vla_ood_envs import spec

ROTATION = np.array([0.3, -0.25, 0.4])  # far enough from zero that the two readings differ by > 0.01


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rotvec(v):
    angle = np.linalg.norm(v)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / angle
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _quat_to_matrix(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


READINGS = {
    "euler_xyz": lambda v: _rx(v[0]) @ _ry(v[1]) @ _rz(v[2]),  # intrinsic X, then Y', then Z''
    "axis_angle": _rotvec,
}
# How a human-readable description names each reading.
PHRASES = {"euler_xyz": "Euler angles XYZ", "axis_angle": "axis-angle"}


def _target(env):
    pose = env.unwrapped.agent.controller.controllers["arm"]._target_pose.raw_pose[0].cpu().numpy().astype(np.float64)
    return pose[:3], _quat_to_matrix(pose[3:])


@pytest.fixture(scope="module")
def controller_convention(state_env):
    """(rotation reading that matches the controller, measured translation, measured gripper response)."""
    state_env.reset(seed=0)
    p0, r0 = _target(state_env)
    action = np.zeros(7, np.float32)
    action[3:6], action[6] = ROTATION, spec.GRIPPER_OPEN
    state_env.step(action)
    p1, r1 = _target(state_env)
    delta = r1 @ r0.T  # root-aligned: the delta is applied on the left, in base axes
    errors = {name: float(np.abs(delta - read(ROTATION)).max()) for name, read in READINGS.items()}
    matched = [name for name, e in errors.items() if e < 1e-4]
    assert len(matched) == 1, errors
    np.testing.assert_allclose(p1, p0, atol=1e-6)  # a pure rotation keeps the target position
    # Translation: base-frame metres, added to the previous target.
    move = np.array([0.02, -0.03, 0.01], np.float32)
    state_env.step(np.concatenate([move, [0, 0, 0, spec.GRIPPER_OPEN]]).astype(np.float32))
    p2, r2 = _target(state_env)
    np.testing.assert_allclose(p2 - p1, move, atol=1e-6)
    np.testing.assert_allclose(r2, r1, atol=1e-6)
    return matched[0]


def test_spec_states_the_controllers_rotation_convention(controller_convention, state_env):
    assert controller_convention == spec.ROTATION_CONVENTION
    assert PHRASES[controller_convention] in spec.ACTION_DOC
    arm = state_env.unwrapped.agent.controller.controllers["arm"]
    assert arm.config.frame == spec.CONTROLLER_FRAME and arm.config.use_delta and arm.config.use_target
    assert state_env.unwrapped.control_mode == spec.CONTROL_MODE
    low, high = spec.action_bounds()
    np.testing.assert_array_equal(state_env.action_space.low, low)
    np.testing.assert_array_equal(state_env.action_space.high, high)
    assert spec.ACTION_NAMES[spec.GRIPPER_INDEX] == "gripper" and not spec.NORMALIZE_MASK[spec.GRIPPER_INDEX]


def test_gripper_sign(state_env):
    """+1 opens and -1 closes (the spec's GRIPPER_OPEN / GRIPPER_CLOSE), read from the finger joints."""
    state_env.reset(seed=0)
    robot = state_env.unwrapped.agent.robot
    opening = lambda: float(robot.get_qpos()[0, -2:].sum())  # noqa: E731

    def hold(command, steps=3):
        for _ in range(steps):
            state_env.step(np.array([0, 0, 0, 0, 0, 0, command], np.float32))
        return opening()

    start = opening()
    closed = hold(spec.GRIPPER_CLOSE)
    reopened = hold(spec.GRIPPER_OPEN)
    assert closed < start - 0.02 and reopened > closed + 0.02


def test_proprio_layout():
    import gymnasium as gym

    env = gym.make("VLAPick-v0", include_proprio=True, camera_width=32, camera_height=32)
    try:
        obs, _ = env.reset(seed=0)
        base = env.unwrapped
        assert obs["proprio"].shape == (spec.PROPRIO_DIM,)
        tcp = base.agent.tcp_pose.raw_pose[0].cpu().numpy()
        np.testing.assert_allclose(obs["proprio"][:7], tcp, atol=1e-6)  # world position, quaternion wxyz
        np.testing.assert_allclose(obs["proprio"][7], base.agent.robot.get_qpos()[0, -2:].sum().item(), atol=1e-6)
    finally:
        env.close()


def test_exports_state_the_controllers_convention(controller_convention, tiny_demos, tmp_path):
    pytest.importorskip("google.protobuf")
    pytest.importorskip("google_crc32c")
    from vla_ood_envs.demos.export_lerobot import CONVENTIONS_KEY, export_lerobot
    from vla_ood_envs.demos.export_rlds import export_rlds

    other = next(name for name in PHRASES if name != controller_convention)

    rlds = export_rlds(tiny_demos, tmp_path / "rlds")
    features = json.loads((rlds / "features.json").read_text())
    step = features["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    text = step["action"]["description"]
    assert PHRASES[controller_convention] in text and PHRASES[other] not in text, text
    assert "+1 open" in text and "-1 close" in text
    state_text = step["observation"]["featuresDict"]["features"]["state"]["description"]
    assert "quaternion wxyz" in state_text
    provenance = json.loads((rlds / "vla_ood_envs.json").read_text())
    assert provenance["conventions"]["action"]["rotation"] == controller_convention

    lerobot = export_lerobot(tiny_demos, tmp_path / "lerobot")
    info = json.loads((lerobot / "meta/info.json").read_text())
    action = info[CONVENTIONS_KEY]["action"]
    assert action["rotation"] == controller_convention and action["euler_order"] == "XYZ"
    assert PHRASES[controller_convention] in action["description"]
    assert action["gripper"]["open"] == 1.0 and action["gripper"]["close"] == -1.0
    assert info["features"]["action"]["names"] == action["names"] and len(action["names"]) == 7
    assert info["features"]["observation.state"]["names"] == info[CONVENTIONS_KEY]["observation.state"]["names"]
