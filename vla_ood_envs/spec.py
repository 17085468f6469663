"""The action and proprioception layout every layer reads: envs, experts, demo stores, exporters, tokenizers, docs.

The action is the study's 7-D end-effector delta (docs: ../shared/docs/study.md section 1), played through
ManiSkill's `PDEEPoseController` in mode `pd_ee_target_delta_pose_metric` (tasks/robots.py):

    [dx, dy, dz, droll, dpitch, dyaw, gripper]

- dx, dy, dz: metres, translation of the *previous target* TCP pose, in the robot-base frame
  (ManiSkill frame "root_translation"), at most MAX_DELTA_POS per control step.
- droll, dpitch, dyaw: radians, a rotation given as intrinsic Euler angles in XYZ order
  (ManiSkill builds it with `euler_angles_to_matrix(delta, "XYZ")`, i.e. R = Rx(droll) @ Ry(dpitch) @ Rz(dyaw)),
  applied about the TCP with axes aligned to the robot base ("root_aligned_body_rotation"), at most MAX_DELTA_ROT.
  It is *not* an axis-angle vector.
- gripper: +1 opens, -1 closes (OpenVLA's Bridge data uses 1 open / 0 closed: convert at the adapter edge).

Proprioception (`include_proprio=True`): TCP position (m, world frame), TCP orientation quaternion (w, x, y, z),
gripper opening (m, sum of both finger joints).
"""

from __future__ import annotations

import numpy as np

ACTION_DIM = 7
ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
ACTION_UNITS: tuple[str, ...] = ("m", "m", "m", "rad", "rad", "rad", "+1 open / -1 close")
MAX_DELTA_POS = 0.1  # metres per control step
MAX_DELTA_ROT = 0.5  # radians per control step
GRIPPER_OPEN = 1.0
GRIPPER_CLOSE = -1.0
GRIPPER_INDEX = 6
# The controller's own names for the convention; tests check them against ManiSkill's PDEEPoseController.
ROTATION_CONVENTION = "euler_xyz"
ROTATION_EULER_ORDER = "XYZ"
CONTROLLER_FRAME = "root_translation:root_aligned_body_rotation"
CONTROL_MODE = "pd_ee_target_delta_pose_metric"

# OpenVLA normalises every dimension but the gripper with the dataset's q01/q99 (its `mask`).
NORMALIZE_MASK: tuple[bool, ...] = (True, True, True, True, True, True, False)

ACTION_DOC = ("delta TCP position xyz (m, robot-base frame), delta TCP rotation as intrinsic Euler angles XYZ "
              "(rad: roll, pitch, yaw; R = Rx Ry Rz, about the TCP with base-aligned axes), "
              "gripper command (+1 open, -1 close); applied to the previous target pose")

PROPRIO_DIM = 8
PROPRIO_NAMES: tuple[str, ...] = ("tcp_x", "tcp_y", "tcp_z", "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz", "gripper_opening")
PROPRIO_UNITS: tuple[str, ...] = ("m", "m", "m", "", "", "", "", "m")
PROPRIO_DOC = ("TCP position xyz (m, world frame), TCP orientation quaternion wxyz, gripper opening "
               "(m, sum of the two finger joints)")


def _layout(names: tuple[str, ...], units: tuple[str, ...]) -> str:
    parts, i = [], 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and units[j + 1] == units[i]:
            j += 1
        run = ", ".join(names[i:j + 1])
        parts.append(f"{run} ({units[i]})" if units[i] else run)
        i = j + 1
    return "[" + ", ".join(parts) + "]"


# One line each, for error messages and docs: "[dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper (+1 open / -1
# close)]" and the proprio vector's equivalent.
ACTION_LAYOUT = _layout(ACTION_NAMES, ACTION_UNITS)
PROPRIO_LAYOUT = _layout(PROPRIO_NAMES, PROPRIO_UNITS)


def action_bounds() -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the 7-D action, float32 arrays of shape (7,)."""
    hi = np.array([MAX_DELTA_POS] * 3 + [MAX_DELTA_ROT] * 3 + [1.0], dtype=np.float32)
    return -hi, hi


def action_features() -> list[dict]:
    """One dict per action dimension (name, unit, low, high, normalised), for dataset metadata and docs."""
    low, high = action_bounds()
    return [{"name": n, "unit": u, "low": float(lo), "high": float(h), "normalized": m}
            for n, u, lo, h, m in zip(ACTION_NAMES, ACTION_UNITS, low, high, NORMALIZE_MASK)]


def metadata() -> dict:
    """The action and proprio conventions as one JSON-ready dict, written into exported datasets (LeRobot's
    info.json, the RLDS provenance file) so a reader of the files alone knows what the numbers mean."""
    return {
        "action": {
            "names": list(ACTION_NAMES), "units": list(ACTION_UNITS), "description": ACTION_DOC,
            "rotation": ROTATION_CONVENTION, "euler_order": ROTATION_EULER_ORDER, "frame": CONTROLLER_FRAME,
            "control_mode": CONTROL_MODE, "delta_of": "previous target pose",
            "max_delta_position_m": MAX_DELTA_POS, "max_delta_rotation_rad": MAX_DELTA_ROT,
            "gripper": {"open": GRIPPER_OPEN, "close": GRIPPER_CLOSE, "index": GRIPPER_INDEX},
            "normalize_mask": list(NORMALIZE_MASK),
        },
        "proprio": {"names": list(PROPRIO_NAMES), "units": list(PROPRIO_UNITS), "description": PROPRIO_DOC},
    }
