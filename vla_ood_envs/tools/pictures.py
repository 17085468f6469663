"""Picture sheets a person can look at: first frames of episodes, and every asset of the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..sheets import grid

def episode_sheet(env_id: str, out: Path, episodes: int = 8, size: int = 224, seed: int = 0,
                  columns: int = 4, **env_kwargs) -> Path:
    """First frames of `episodes` episodes of a registered env, captioned with their instructions. `env_kwargs` go
    to gym.make (e.g. robot_uids)."""
    import gymnasium as gym

    from .. import registry  # noqa: F401

    env = gym.make(env_id, camera_width=size, camera_height=size, **env_kwargs)
    images, captions = [], []
    try:
        for k in range(episodes):
            obs, info = env.reset(seed=seed + k)
            images.append(obs["image"])
            captions.append(f"{seed + k}: {obs['instruction']} | {info['manifest']['table']}")
    finally:
        env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, columns, captions).save(out)
    return out


# Steps that show an expert episode's stages: VLAPick's grasp, lift and carry; VLAOpen's approach and pull.
STRIP_STEPS = {"VLAPick": (0, 4, 6, 10, 16, 24), "VLAOpen": (0, 8, 16, 22, 28, 36)}


def episode_strip(env_id: str, out: Path, seed: int = 0, steps: tuple[int, ...] | None = None,
                  size: int = 224, **env_kwargs) -> Path:
    """Frames of one episode driven by the scripted expert, for conditions that change during an episode
    (dynamic texture/noise follow the arm; the reposition event moves the object)."""
    import gymnasium as gym

    from .. import registry  # noqa: F401
    from ..policies import ScriptedPolicy
    from ..rollout import collect

    env = gym.make(env_id, camera_width=size, camera_height=size, **env_kwargs)
    steps = steps or STRIP_STEPS[env.unwrapped.TASK_NAME]
    try:
        traj = collect(env, ScriptedPolicy(), [seed], max_steps=max(steps) + 1)[0]
    finally:
        env.close()
    steps = [t for t in steps if t < len(traj)]  # an episode the task ends early shows what it played
    out.parent.mkdir(parents=True, exist_ok=True)
    grid([traj.images[t] for t in steps], len(steps), [f"step {t}" for t in steps]).save(out)
    return out


def overview_sheet(out: Path, size: int = 160, seed: int = 0, columns: int = 4, task: str = "VLAPick",
                   **env_kwargs) -> Path:
    """One first frame per registered ID of a task, captioned with its condition: the conditions at a glance."""
    import gymnasium as gym

    from ..registry import DECLARATIONS

    images, captions = [], []
    for d in DECLARATIONS:
        if d.task != task:
            continue
        env = gym.make(d.env_id, camera_width=size, camera_height=size, **env_kwargs)
        try:
            obs, _ = env.reset(seed=seed)
            if d.wrappers and d.wrappers[-1][0] == "MidEpisodeReposition":
                obs = env.step(np.zeros(7, dtype=np.float32))[0]
        finally:
            env.close()
        images.append(obs["image"])
        captions.append(d.display_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, columns, captions).save(out)
    return out


def _look_at(eye, target) -> "sapien.Pose":
    import sapien

    eye, target = np.asarray(eye, dtype=float), np.asarray(target, dtype=float)
    fwd = (target - eye) / np.linalg.norm(target - eye)
    left = np.cross([0, 0, 1], fwd)
    left /= np.linalg.norm(left)
    mat = np.eye(4)
    mat[:3, :3] = np.stack([fwd, left, np.cross(fwd, left)], 1)
    mat[:3, 3] = eye
    return sapien.Pose(mat)


def articulated_sheet(out: Path, size: int = 200) -> Path:
    """Every articulated object of the shipped catalog loaded from its URDF, closed and half open, captioned with
    its name, kind and split (`vla-ood assets` writes it next to the asset sheet)."""
    import sapien
    import sapien.render

    from ..catalog import default_catalog
    from ..runtime.device import claim_renderer, sapien_device, select_render_backend

    choice = select_render_backend()
    claim_renderer(choice)
    device = sapien_device(choice)
    images, captions = [], []
    for a in default_catalog().articulated:
        for fraction in (0.0, 0.45):
            scene = sapien.Scene([sapien.physx.PhysxCpuSystem(), sapien.render.RenderSystem(device)])
            scene.set_ambient_light([0.5, 0.5, 0.5])
            scene.add_directional_light([-0.3, -0.4, -1], [0.8, 0.8, 0.8])
            loader = scene.create_urdf_loader()
            loader.fix_root_link = True
            art = loader.load(str(a.urdf))
            art.set_qpos(np.array([a.joint_limits[1] * fraction], dtype=np.float32))
            floor = scene.create_actor_builder()
            floor.add_box_visual(sapien.Pose([0, 0, -0.002]), [0.6, 0.6, 0.002],
                                 sapien.render.RenderMaterial(base_color=[0.85, 0.85, 0.85, 1]))
            floor.build_kinematic()
            cam = scene.add_camera("cam", size, size, 0.8, 0.01, 10)
            h = a.size[2]
            cam.entity.set_pose(_look_at([0.75, 0.35, 0.55], [0.05, 0.0, h / 2]))
            scene.update_render()
            cam.take_picture()
            images.append((np.clip(cam.get_picture("Color")[..., :3], 0, 1) * 255).astype(np.uint8))
            state = "closed" if fraction == 0 else "open"
            captions.append(f"{a.noun} ({a.split}, {state})")
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, 8, captions).save(out)
    return out


def asset_sheet(out: Path, size: int = 160) -> Path:
    """Every object and receptacle of the shipped catalog rendered alone, plus every table and overlay texture."""
    import sapien
    import sapien.render

    from ..catalog import default_catalog
    from ..runtime.device import claim_renderer, sapien_device, select_render_backend

    choice = select_render_backend()
    claim_renderer(choice)
    device = sapien_device(choice)
    sapien.render.set_global_config(max_num_materials=64, max_num_textures=64)
    cat = default_catalog()
    images, captions = [], []
    for kind, assets in (("objects", cat.objects), ("receptacles", cat.receptacles)):
        for a in assets:
            scene = sapien.Scene([sapien.physx.PhysxCpuSystem(), sapien.render.RenderSystem(device)])
            scene.set_ambient_light([0.5, 0.5, 0.5])
            scene.add_directional_light([0.3, 0.4, -1], [0.8, 0.8, 0.8])
            b = scene.create_actor_builder()
            b.add_visual_from_file(str(a.visual), scale=[a.scale] * 3)
            b.add_box_visual(sapien.Pose([0, 0, -0.002]), [0.2, 0.2, 0.002], sapien.render.RenderMaterial(
                base_color=[0.85, 0.85, 0.85, 1]))
            b.build_kinematic()
            cam = scene.add_camera("cam", size, size, 0.7, 0.01, 10)
            dist = 0.32
            eye = np.array([dist * 0.8, dist * 0.5, dist * 0.7])
            fwd = -eye / np.linalg.norm(eye)
            left = np.cross([0, 0, 1], fwd)
            left /= np.linalg.norm(left)
            up = np.cross(fwd, left)
            mat = np.eye(4)
            mat[:3, :3] = np.stack([fwd, left, up], 1)
            mat[:3, 3] = eye
            cam.entity.set_pose(sapien.Pose(mat))
            scene.update_render()
            cam.take_picture()
            rgb = (np.clip(cam.get_picture("Color")[..., :3], 0, 1) * 255).astype(np.uint8)
            images.append(rgb)
            captions.append(f"{a.name} ({a.split})")
    for kind, textures in (("table", cat.tables), ("overlay", cat.overlays)):
        for t in textures:
            img = Image.open(t.texture).convert("RGB").resize((size, size))
            images.append(np.asarray(img))
            captions.append(f"{kind}: {t.name} ({t.split})")
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, 10, captions).save(out)
    return out
