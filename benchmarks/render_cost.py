"""Where the time of one camera frame goes: SAPIEN's calls, and the cost of each part of the scene.

Builds VLAPick-v0 twice in one process (ManiSkill's Panda meshes and the light ones of
vla_ood_envs.tasks.robot_meshes.lod, chosen through VLA_OOD_ROBOT_MESHES), then times frames in alternating rounds:

- per call: scene.update_render, camera.take_picture (submits), get_picture (waits for lavapipe and copies),
  and ManiSkill's whole `_get_obs_sensor_data` (adds the torch copy of the picture);
- per part: the frame with everything, without the robot, without the floor, without the table, and with
  nothing drawn (the fixed cost of a frame), by switching render bodies off.

    python benchmarks/render_cost.py [--size 224] [--height 224] [--frames 30]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224, help="width (and height unless --height)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    width, height = args.size, args.height or args.size

    import sapien.render

    from vla_ood_envs.tools.bench import make_ours
    from vla_ood_envs.tasks.robot_meshes import lod

    envs = {}
    for meshes in ("full", "lod"):
        os.environ[lod.ENV_VAR] = meshes
        env = make_ours("VLAPick-v0", "rgb", width, height)
        env.reset(seed=0)
        envs[meshes] = env.unwrapped
    os.environ.pop(lod.ENV_VAR)

    def bodies(u):
        out = []
        for e in u.scene.sub_scenes[0].entities:
            b = e.find_component_by_type(sapien.render.RenderBodyComponent)
            if b is not None and b.is_enabled:
                out.append((e.name, b))
        return out

    parts = {
        "everything": lambda n: True,
        "without robot": lambda n: not n.startswith("panda"),
        "without floor": lambda n: "ground" not in n,
        "without table": lambda n: "table" not in n,
        "nothing drawn": lambda n: False,
    }

    def frame_ms(u, fn, n):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1000

    calls: dict = {}
    part_ms: dict = {}
    for _ in range(args.rounds):
        for meshes, u in envs.items():
            scene = u.scene.sub_scenes[0]
            cam = next(iter(u.scene.sensors.values())).camera._render_cameras[0]
            body_list = bodies(u) if meshes not in part_ms else part_ms[meshes]["_bodies"]
            part_ms.setdefault(meshes, {"_bodies": body_list})
            timings = {"update_render": [], "take_picture": [], "get_picture": []}
            for _ in range(args.frames):
                t0 = time.perf_counter()
                scene.update_render()
                t1 = time.perf_counter()
                cam.take_picture()
                t2 = time.perf_counter()
                cam.get_picture("Color")
                t3 = time.perf_counter()
                for k, v in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
                    timings[k].append(v * 1000)
            for k, v in timings.items():
                calls.setdefault((meshes, k), []).append(float(np.median(v)))
            calls.setdefault((meshes, "_get_obs_sensor_data"), []).append(
                frame_ms(u, u._get_obs_sensor_data, args.frames))
            for label, keep in parts.items():
                for name, body in body_list:
                    body.enable() if keep(name) else body.disable()
                part_ms[meshes].setdefault(label, []).append(frame_ms(u, u._get_obs_sensor_data, args.frames))
            for _, body in body_list:
                body.enable()

    print(f"\nms per {width}x{height} rgb frame, VLAPick-v0 seed 0, median of {args.rounds} alternating rounds\n")
    print("| call | ManiSkill Panda meshes | light meshes |")
    print("|---|---|---|")
    for k in ("update_render", "take_picture", "get_picture", "_get_obs_sensor_data"):
        print(f"| {k} | {np.median(calls[('full', k)]):.2f} | {np.median(calls[('lod', k)]):.2f} |")
    print("\n| scene drawn | ManiSkill Panda meshes | light meshes |")
    print("|---|---|---|")
    for label in parts:
        print(f"| {label} | {np.median(part_ms['full'][label]):.2f} | {np.median(part_ms['lod'][label]):.2f} |")


if __name__ == "__main__":
    main()
