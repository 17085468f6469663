"""Lighter render meshes for the Panda: the same look from about a fifth of the triangles.

Why: ManiSkill's Panda visual meshes (panda_v2.urdf) have about 135,000 triangles and 400,000 unshared
vertices. On a CPU renderer (lavapipe) every one of them is transformed, clipped, set up and binned on one
thread for every frame, whatever the image size: at 224x224 the robot alone cost about 28 of the 35 ms of a
frame. Decimated copies whose surface stays within `MAX_ERROR_M` of the original (about a pixel at 640x480,
under half a pixel at 224x224, from the study's camera), with the original's shading normals carried over,
render the same picture at a fraction of the cost. Their materials are single-sided, so the renderer culls the
back faces of these closed shells (ManiSkill's files mark every material double-sided, which turns culling off).
Collision meshes, kinematics and link names are untouched, so physics, IK and segmentation ids are exactly
those of ManiSkill's Panda.

The meshes ship in `panda_lod/` next to this file, made by `python -m vla_ood_envs.tasks.robot_meshes.lod`
(needs the development-only package fast-simplification; the shipped files were made with 0.2.0, and two runs give
identical files). `panda_urdf()` returns a URDF that differs from ManiSkill's only in the visual mesh paths; it
is written once into the user cache. Images must not depend on the machine, so the light meshes are used on
every render device; VLA_OOD_ROBOT_MESHES=full selects ManiSkill's originals (for example for close-up,
high-resolution renders).
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

ENV_VAR = "VLA_OOD_ROBOT_MESHES"
MESH_DIR = Path(__file__).resolve().parent / "panda_lod"
MAX_ERROR_M = 0.002  # 2 mm: about a pixel at 640x480 (half a pixel at 224x224) for the robot 1 m from the camera
MIN_FACES = 400  # parts this small (fingers, coloured markers) are kept as they are
_VISUAL = re.compile(r'filename="franka_description/meshes/visual/([^"]+)"')


def source_urdf() -> Path:
    from mani_skill import PACKAGE_ASSET_DIR

    return Path(PACKAGE_ASSET_DIR) / "robots" / "panda" / "panda_v2.urdf"


def mode() -> str:
    value = os.environ.get(ENV_VAR, "lod").strip().lower()
    if value not in ("lod", "full"):
        raise ValueError(f"{ENV_VAR} must be 'lod' or 'full', got {value!r}")
    return value


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vla_ood_envs" / "robots"


def panda_urdf() -> str:
    """Path of the Panda URDF to load: ManiSkill's panda_v2 with the light visual meshes (or the original one when
    VLA_OOD_ROBOT_MESHES=full or the light meshes are missing)."""
    if mode() == "full":
        return str(source_urdf())
    return _light_urdf()


@functools.lru_cache(maxsize=None)
def _light_urdf() -> str:
    src = source_urdf()
    text = src.read_text()
    names = sorted(set(_VISUAL.findall(text)))
    if not names or not all((MESH_DIR / n).is_file() for n in names):
        return str(src)
    base = src.parent
    text = _VISUAL.sub(lambda m: f'filename="{MESH_DIR / m.group(1)}"', text)
    # Every other relative mesh path (the collision meshes) points back into ManiSkill's package.
    text = re.sub(r'filename="(?!/)([^"]+)"', lambda m: f'filename="{base / m.group(1)}"', text)
    key = hashlib.sha256(text.encode() + b"".join((MESH_DIR / n).read_bytes() for n in names)).hexdigest()[:16]
    out = _cache_root() / f"panda_v2_lod-{key}"
    urdf = out / "panda_v2.urdf"
    if urdf.is_file():
        return str(urdf)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written in a private folder and renamed into place: concurrent processes never read a half-written file.
    work = Path(tempfile.mkdtemp(prefix="tmp-", dir=out.parent))
    try:
        (work / "panda_v2.urdf").write_text(text)
        srdf = src.with_suffix(".srdf")  # ManiSkill's loader reads the .srdf next to the .urdf
        if srdf.is_file():
            shutil.copyfile(srdf, work / "panda_v2.srdf")
        try:
            os.replace(work, out)
        except OSError:
            if not urdf.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(urdf)


# ---------------------------------------------------------------------------------------------- generation
def surface_error(a, b, samples: int = 20000, seed: int = 0) -> float:
    """Two-sided distance between two surfaces (99.9th percentile, metres): points sampled on each are measured
    against the tangent plane of the nearest of many points sampled on the other."""
    import trimesh
    from scipy.spatial import cKDTree

    def one_way(src, dst, s):
        p, _ = trimesh.sample.sample_surface(src, samples, seed=s)
        q, face = trimesh.sample.sample_surface(dst, 8 * samples, seed=s + 1)
        q = np.vstack([q, dst.vertices])
        n = np.vstack([dst.face_normals[face], dst.vertex_normals])
        _, idx = cKDTree(q).query(p, k=4)
        plane = np.abs(np.einsum("ckj,ckj->ck", p[:, None, :] - q[idx], n[idx])).min(1)
        return plane

    return float(np.percentile(np.concatenate([one_way(a, b, seed), one_way(b, a, seed + 7)]), 99.9))


def _decimate(mesh, keep: float):
    import fast_simplification
    import trimesh

    v, f = fast_simplification.simplify(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64),
                                        target_reduction=1.0 - keep, agg=7)
    return trimesh.Trimesh(v, f, process=True)


def _transfer_normals(mesh, corners_src: np.ndarray, normals_src: np.ndarray):
    """Per-corner shading normals taken from the original mesh: for each corner of the light mesh, the normal of the
    nearby original corner that best agrees with the light face (keeps the original's smooth areas and creases)."""
    import trimesh
    from scipy.spatial import cKDTree

    corners = mesh.vertices[mesh.faces].reshape(-1, 3)
    face_n = np.repeat(mesh.face_normals, 3, axis=0)
    k = min(16, len(corners_src))
    dist, idx = cKDTree(corners_src).query(corners, k=k)
    dist, idx = dist.reshape(len(corners), k), idx.reshape(len(corners), k)
    cand = normals_src[idx]
    score = np.einsum("ckj,cj->ck", cand, face_n) - 50.0 * (dist - dist[:, :1])  # aligned first, then close
    best = cand[np.arange(len(corners)), score.argmax(1)]
    best /= np.linalg.norm(best, axis=1, keepdims=True).clip(1e-12)
    key = np.round(np.hstack([corners * 1e5, best * 1e3])).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return trimesh.Trimesh(corners[first], inverse.reshape(-1, 3), vertex_normals=best[first], process=False)


def generate(out: Path = MESH_DIR, max_error: float = MAX_ERROR_M, min_faces: int = MIN_FACES) -> list[dict]:
    """Write the light visual meshes of ManiSkill's Panda into `out`; one row of statistics per mesh part."""
    import trimesh

    try:
        import fast_simplification  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("regenerating the light meshes needs fast-simplification: "
                           "pip install fast-simplification==0.2.0 (the shipped meshes were made with it)") from exc

    src_dir = source_urdf().parent / "franka_description" / "meshes" / "visual"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(src_dir.glob("*.glb")):
        scene = trimesh.load(str(path), force="scene", process=False)
        parts = {}
        for name, geom in list(scene.geometry.items()):
            corners_src, normals_src = np.asarray(geom.vertices), np.asarray(geom.vertex_normals)
            welded = trimesh.Trimesh(geom.vertices, geom.faces, process=False)
            welded.merge_vertices(merge_tex=True, merge_norm=True)
            light, keep, err = welded, 1.0, 0.0
            if len(welded.faces) > min_faces:
                lo, hi = min_faces / len(welded.faces), 1.0
                best = None
                for _ in range(9):  # bisection on the kept fraction: the lightest within max_error
                    mid = (lo + hi) / 2
                    cand = _decimate(welded, mid)
                    e = surface_error(welded, cand)
                    if e <= max_error:
                        best, hi = (cand, mid, e), mid
                    else:
                        lo = mid
                if best is not None:
                    light, keep, err = best
            light = _transfer_normals(light, corners_src, normals_src)
            material = copy.deepcopy(geom.visual.material)
            # The originals are marked double-sided, which turns back-face culling off: every hidden back face of
            # these closed shells is then rasterised too (about 30% of a 224x224 frame on lavapipe).
            material.doubleSided = False
            light.visual = trimesh.visual.TextureVisuals(material=material)
            parts[name] = light
            rows.append({"mesh": path.name, "part": name, "faces": len(geom.faces), "light_faces": len(light.faces),
                         "vertices": len(geom.vertices), "light_vertices": len(light.vertices),
                         "error_mm": 1000 * err})
        # A fresh scene with node names taken from the parts (trimesh invents random ones): reproducible files.
        light_scene = trimesh.Scene()
        for node in sorted(scene.graph.nodes_geometry, key=lambda n: scene.graph[n][1]):
            transform, name = scene.graph[node]
            light_scene.add_geometry(parts[name], geom_name=name, node_name=name, transform=transform)
        light_scene.export(str(out / path.name))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the light Panda visual meshes "
                                                 "(needs fast-simplification).")
    parser.add_argument("--out", default=str(MESH_DIR))
    parser.add_argument("--max-error-mm", type=float, default=1000 * MAX_ERROR_M)
    args = parser.parse_args(argv)
    rows = generate(Path(args.out), args.max_error_mm / 1000)
    print("| mesh | part | faces | light faces | vertices | light vertices | error (mm, 99.9%) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mesh']} | {r['part']} | {r['faces']} | {r['light_faces']} | {r['vertices']} | "
              f"{r['light_vertices']} | {r['error_mm']:.2f} |")
    print(f"| total | | {sum(r['faces'] for r in rows)} | {sum(r['light_faces'] for r in rows)} | "
          f"{sum(r['vertices'] for r in rows)} | {sum(r['light_vertices'] for r in rows)} | |")


if __name__ == "__main__":
    main()
