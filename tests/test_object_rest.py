"""Every catalog object placed alone on the table comes to rest, and PhysX simulates the hull the catalog ships.

Finely tessellated round hulls (icospheres, 16- and 32-sided capsules and cylinders) kept rolling or rocking
for good in VLAPick: PhysX's cooking dropped their vertices closer than its plane tolerance, and the CPU
contact manifold (PCM) let friction feed energy into the near-neutral rolling that left. The generator now
gives objects coarse collision hulls (assets_gen/shapes.py, COLLISION_CHORD); these tests guard both halves.
"""

import math

import numpy as np
import pytest
import sapien

# An object counts as at rest when, 1-2 s after it is placed, it moves slower than this (the arm holds still,
# gripper open, far above the table).
MAX_SPEED = 0.005  # m/s
MAX_SPIN = 0.1  # rad/s
OPEN_STILL = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)


def _body(actor):
    return actor._objs[0].find_component_by_type(sapien.physx.PhysxRigidDynamicComponent)


def test_physx_keeps_every_collision_vertex(state_env):
    """What the catalog ships is what is simulated: cooking drops no vertex of any object's hull."""
    base = state_env.unwrapped
    for asset, actor in zip(base._object_assets, base.objects):
        shipped = sum(1 for line in asset.collision.read_text().splitlines() if line.startswith("v "))
        cooked = sum(len(shape.get_vertices()) for shape in _body(actor).collision_shapes)
        assert cooked == shipped, f"{asset.name}: PhysX cooked {cooked} of the {shipped} hull vertices"


def test_every_object_comes_to_rest_on_the_table(state_env):
    env, base = state_env, state_env.unwrapped
    _, info = env.reset(seed=0)
    manifest = dict(info["manifest"])
    moving = []
    names = [a.name for a in base.catalog.objects]
    assert {a.split for a in base.catalog.objects} == {"train", "test"}  # training and held-out objects
    for name in names:
        for yaw in (0.0, math.pi / 4):
            factors = dict(manifest, object=name, object_yaw=yaw, object_xy=(0.0, 0.075),
                           receptacle_xy=(0.0, -0.075), distractor_objects=[])
            env.reset(options={"factors": factors})
            obj = base.objects[base.target_object[0].item()]
            speeds = []
            for t in range(10):  # 10 control steps at 5 Hz: 2 s
                env.step(OPEN_STILL)
                if t >= 5:
                    speeds.append((obj.linear_velocity.norm().item(), obj.angular_velocity.norm().item()))
            v, w = np.max(speeds, axis=0)
            if v > MAX_SPEED or w > MAX_SPIN:
                moving.append(f"{name} (yaw {yaw:.2f}): {v:.3f} m/s, {w:.2f} rad/s after 1-2 s")
    assert not moving, "objects still moving on the table:\n" + "\n".join(moving)
