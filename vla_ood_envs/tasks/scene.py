"""The tabletop shared by the VLA tasks: a textured table, the floor, lights, and the third-person camera (posed
per robot, see robots.RobotSpec).

The table top's appearance is a texture swapped per episode (and per sub-scene in batched mode) without
rebuilding the scene: every appearance of the catalog is loaded once as a render texture.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sapien
import sapien.render
import torch

from mani_skill.render.shaders import PREBUILT_SHADER_CONFIGS, ShaderConfig
from mani_skill.sensors.camera import CameraConfig

from ..assets_gen.table_geometry import TABLE_CENTER_X, TABLE_HALF_SIZE

WORKSPACE_CENTER = (-0.1, 0.0)  # centre of the placement grid; each robot stands at its own distance from it


def _minimal_shader(depth: bool) -> ShaderConfig:
    """ManiSkill's "minimal" shader pack with the same images, made without copies: position and segmentation
    are views of the PositionSegmentation picture (ManiSkill copies the segmentation channel), and the depth
    image (a negated copy) is made only when the observation mode asks for depth."""
    base = PREBUILT_SHADER_CONFIGS["minimal"]

    def position_segmentation(data: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"position": data[..., :3], "segmentation": data[..., 3:4]}
        if depth:
            out["depth"] = -data[..., [2]]
        return out

    return dataclasses.replace(base, texture_names=dict(base.texture_names), texture_transforms={
        **base.texture_transforms, "PositionSegmentation": position_segmentation})


def camera_config(width: int, height: int, pose: sapien.Pose, hfov: float, name: str = "base_camera",
                  depth: bool = True) -> CameraConfig:
    """The third-person camera at `pose` (world frame), with the study's horizontal field of view `hfov` (rad).
    depth: whether observations may ask for the depth image (False skips making it)."""
    # ManiSkill's fov is vertical; convert from the horizontal fov for the requested aspect ratio.
    fovy = 2 * np.arctan(np.tan(hfov / 2) * height / width)
    return CameraConfig(name, pose, width, height, float(fovy), 0.01, 10.0, shader_config=_minimal_shader(depth))


def zero_copy_pictures(sensors) -> None:
    """Read the pictures of the given ManiSkill sensors without a copy when rendering on the CPU.

    ManiSkill turns each CPU picture (a numpy array SAPIEN allocates for every call) into a torch tensor with a
    copy, large enough for torch to split over its thread pool; on a busy 2-core machine that copy stalls
    (issue 8, issue 19). `torch.from_numpy` shares the fresh array instead: same values, no copy. GPU rendering
    and dtypes ManiSkill converts (uint16, uint32, float64) keep ManiSkill's path.
    """
    from mani_skill.sensors.camera import Camera

    for sensor in sensors:
        if not isinstance(sensor, Camera):
            continue
        cam = sensor.camera
        if cam.scene.gpu_sim_enabled or cam.scene.backend.render_backend == "sapien_cuda":
            continue
        cameras, original = cam._render_cameras, cam.get_picture

        def get_picture(names, cameras=cameras, original=original):
            names = [names] if isinstance(names, str) else names
            out = []
            for name in names:
                picture = cameras[0].get_picture(name)
                if picture.dtype in (np.uint16, np.uint32, np.float64):
                    return original(names)
                out.append(torch.from_numpy(picture)[None, ...])
            return out

        cam.get_picture = get_picture


def build_table(scene, top_mesh: str, texture: sapien.render.RenderTexture2D):
    builder = scene.create_actor_builder()
    pose = sapien.Pose(p=[TABLE_CENTER_X, 0, -TABLE_HALF_SIZE[2]])
    builder.add_box_collision(pose=pose, half_size=TABLE_HALF_SIZE)
    body = sapien.render.RenderMaterial(base_color=[0.35, 0.3, 0.25, 1], roughness=0.9, metallic=0.0)
    builder.add_box_visual(pose=pose, half_size=[h - 0.0005 for h in TABLE_HALF_SIZE], material=body)
    top = sapien.render.RenderMaterial(base_color=[1, 1, 1, 1], roughness=0.8, metallic=0.0)
    top.base_color_texture = texture
    builder.add_visual_from_file(top_mesh, material=top)
    builder.initial_pose = sapien.Pose()
    return builder.build_static(name="table")


def build_floor(scene):
    return build_ground_fast(scene, altitude=-2 * TABLE_HALF_SIZE[2])


def set_table_texture(table, scene_index: int, texture: sapien.render.RenderTexture2D) -> None:
    """Swap the table top's texture in one sub-scene (no rebuild)."""
    entity = table._objs[scene_index]
    for comp in entity.components:
        if isinstance(comp, sapien.render.RenderBodyComponent):
            for shape in comp.render_shapes:
                if isinstance(shape, sapien.render.RenderShapeTriangleMesh):  # the top; the box is the body
                    for part in shape.parts:
                        part.material.base_color_texture = texture


def add_lights(scene) -> None:
    """Ambient plus two directional lights, no shadows (shadow maps double the CPU render cost)."""
    scene.set_ambient_light([0.35, 0.35, 0.35])
    scene.add_directional_light([0.3, 0.4, -1.0], [0.9, 0.9, 0.9], shadow=False)
    scene.add_directional_light([-0.5, -0.2, -1.0], [0.4, 0.4, 0.4], shadow=False)


def build_ground_fast(scene, altitude: float = 0.0, floor_width: int = 100, name: str = "ground",
                      texture_square_len: int = 4, mipmap_levels: int = 4):
    """ManiSkill's `build_ground` (same collision plane, texture, texture scale and material) drawn with 2 triangles
    instead of 2 * floor_width**2 = 20,000.

    The grid's uv coordinates are an affine function of x and y, so one quad interpolates them exactly as the
    100 x 100 grid does: the pictures agree to within 1/255 (rounding) at 224x224 and 640x480, while the CPU
    renderer no longer transforms, clips and bins 20,000 triangles per frame (about 1 ms of a 224x224 frame).
    """
    import os.path as osp

    from mani_skill.utils.building import ground as ms_ground

    builder = scene.create_actor_builder()
    builder.add_plane_collision(sapien.Pose(p=[0, 0, altitude], q=[0.7071068, 0, -0.7071068, 0]))
    builder.initial_pose = sapien.Pose(p=[0, 0, 0], q=[1, 0, 0, 0])
    if scene.parallel_in_single_scene:
        builder.set_scene_idxs([0])
    actor = builder.build_static(name=name)
    if scene.can_render():
        half = floor_width / 2
        xy = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        vertices = np.c_[xy, np.full(4, altitude)]
        normals = np.tile([0.0, 0.0, 1.0], (4, 1))
        uvs = (xy * (floor_width / texture_square_len) + half) / floor_width  # ManiSkill's formula
        material = sapien.render.RenderMaterial()
        material.base_color_texture = sapien.render.RenderTexture2D(
            filename=osp.join(osp.dirname(ms_ground.__file__), "assets/grid_texture.png"), mipmap_levels=mipmap_levels)
        shape = sapien.render.RenderShapeTriangleMesh(
            vertices=vertices, triangles=np.array([[0, 1, 2], [0, 2, 3]]), normals=normals, uvs=uvs, material=material)
        for obj in actor._objs:
            body = sapien.render.RenderBodyComponent()
            body.attach(shape)
            obj.add_component(body)
    return actor
