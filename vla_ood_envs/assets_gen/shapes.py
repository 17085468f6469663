"""Procedural definitions of the graspable objects and receptacles (built from convex primitives).

Each asset is a list of parts. A part is a convex primitive (box, cylinder, sphere, ellipsoid, cone, capsule)
with a pose and a colour; the union of the parts is the visual mesh, and each part is one convex piece of the
collision shape (a receptacle's part: its hull; an object's part: the coarser hull below), so no decomposer runs.
Sizes are metres; the object frame has z up, the footprint centred on the origin and the lowest point at z = 0.

Graspable objects get coarser collision hulls than their visual meshes (`AssetSpec.collision_meshes`): the
round primitives are tessellated so that each facet deviates about COLLISION_CHORD (1.5 mm) from the true
surface, with a facet (not an edge) facing down in the object's placed pose and tangent to the visual surface
there. Finely tessellated round hulls never come to rest in ManiSkill's PhysX setup: PhysX's cooking drops the
hull vertices closer than its plane tolerance (0.7 mm), leaving irregular hulls (a 16-sided capsule of 258
vertices became 112), and on top of the near-neutral rolling that leaves, the CPU PCM contact manifold (contact
normals kept in the rolling body's frame) lets friction do positive work, so a lying cucumber rocked at
3-4 rad/s for good even with angular damping. Facets with a 1.5 mm chord error are kept vertex for vertex by
PhysX and are stable resting faces; tests/test_object_rest.py checks both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from trimesh.transformations import euler_matrix, translation_matrix

RGBA = tuple[float, float, float, float]

# Chord error (m) of the round primitives' collision facets on graspable objects; see the module docstring.
COLLISION_CHORD = 0.0015


@dataclass(frozen=True)
class Part:
    kind: str  # box | cylinder | sphere | ellipsoid | cone | capsule | torus_segment
    size: tuple[float, ...]
    color: RGBA
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def mesh(self) -> trimesh.Trimesh:
        s = self.size
        if self.kind == "box":
            m = trimesh.creation.box(extents=s)
        elif self.kind == "cylinder":
            m = trimesh.creation.cylinder(radius=s[0], height=s[1], sections=32)
        elif self.kind == "cone":
            m = trimesh.creation.cone(radius=s[0], height=s[1], sections=32)
            m.apply_translation([0, 0, -s[1] / 2])  # centre it like the other primitives
        elif self.kind == "sphere":
            m = trimesh.creation.icosphere(subdivisions=3, radius=s[0])
        elif self.kind == "ellipsoid":
            m = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
            m.apply_scale(s)
        elif self.kind == "capsule":
            m = trimesh.creation.capsule(height=s[1], radius=s[0], count=[16, 16])
        else:
            raise ValueError(f"unknown primitive kind {self.kind!r}")
        m.apply_transform(translation_matrix(self.xyz) @ euler_matrix(*self.rpy))
        return m

    def collision_mesh(self, chord: float = COLLISION_CHORD) -> trimesh.Trimesh:
        """A convex hull of the part for physics: boxes as they are; the round primitives as a coarse surface of
        revolution whose facets deviate about `chord` from the true surface, with a facet centred on the direction
        that points down (-z of the object frame) and that facet tangent to the true surface, so an object
        placed as built rests on a face exactly at its visual bottom."""
        transform = translation_matrix(self.xyz) @ euler_matrix(*self.rpy)
        if self.kind == "box":
            m = trimesh.creation.box(extents=self.size)
            m.apply_transform(transform)
            return m.convex_hull
        rot = transform[:3, :3]
        down = rot.T @ np.array([0.0, 0.0, -1.0])  # the object frame's down, in the part frame
        s = self.size
        if self.kind in ("sphere", "ellipsoid"):
            radii = np.array([s[0]] * 3 if self.kind == "sphere" else s, dtype=float)
            # Revolve about the longest part axis that is not vertical, so the object rests on the equator band.
            axis = max((i for i in range(3) if abs(down[i]) < 0.9), key=lambda i: radii[i])
        elif self.kind in ("cylinder", "cone", "capsule"):
            axis = 2
        else:
            raise ValueError(f"unknown primitive kind {self.kind!r}")
        # perm: the revolution frame (axis = z) to the part frame.
        u, v = (i for i in range(3) if i != axis)
        perm = np.zeros((3, 3))
        perm[u, 0] = perm[v, 1] = perm[axis, 2] = 1.0
        d = perm.T @ down
        lying = np.hypot(d[0], d[1]) > 0.5
        if self.kind in ("sphere", "ellipsoid"):
            ru, rv, ra = radii[u], radii[v], radii[axis]
            n = _segments(min(ru, rv), chord, 2 * np.pi, 6)
            bands = _segments(min(ru, rv, ra), chord, np.pi, 3) | 1  # odd: one band straddles the equator
            phase = np.arctan2(d[1], d[0]) + np.pi / n
            profile = [(ra * np.cos(np.pi * i / bands), np.sin(np.pi * i / bands)) for i in range(bands + 1)]
            pts = _revolve(profile, n, phase)
            grow = 1.0 / (np.cos(np.pi / n) * np.cos(np.pi / (2 * bands)))  # equatorial faces tangent
            pts[:, 0] *= ru * grow
            pts[:, 1] *= rv * grow
        else:
            r, h = s[0], s[1]
            n = _segments(r, chord, 2 * np.pi, 6)
            phase = np.arctan2(d[1], d[0]) + np.pi / n if lying else 0.0
            rr = r / np.cos(np.pi / n)  # side faces tangent to the true surface
            if self.kind == "cylinder":
                profile = [(-h / 2, rr), (h / 2, rr)]
            elif self.kind == "cone":
                profile = [(-h / 2, rr), (h / 2, 0.0)]
            else:  # capsule: hemispheres of radius r on both ends of a cylinder of length h
                q = _segments(r, chord, np.pi / 2, 2)
                cap = [(h / 2 + r * np.sin(np.pi / 2 * i / q), rr * np.cos(np.pi / 2 * i / q)) for i in range(q + 1)]
                profile = [(-z, w) for z, w in reversed(cap)] + cap
            pts = _revolve(profile, n, phase)
        pts = pts @ perm.T @ rot.T + transform[:3, 3]
        return trimesh.Trimesh(pts).convex_hull


def _segments(radius: float, chord: float, angle: float, least: int) -> int:
    """How many equal segments split an arc of `angle` (rad) of a circle of `radius` so that each deviates at
    least `chord` from the arc (at least `least` segments)."""
    if radius <= chord:
        return least
    step = 2 * np.arccos(1 - chord / radius)
    return max(least, int(angle // step))


def _revolve(profile: list[tuple[float, float]], n: int, phase: float) -> np.ndarray:
    """Vertices of a surface of revolution about z: for each (z, radius) of the profile a ring of n vertices at
    angles phase + 2*pi*j/n (one vertex on the axis where the radius is 0)."""
    pts = []
    angles = phase + 2 * np.pi * np.arange(n) / n
    for z, r in profile:
        if r <= 1e-12:
            pts.append((0.0, 0.0, z))
        else:
            pts.extend((r * np.cos(a), r * np.sin(a), z) for a in angles)
    return np.array(pts, dtype=float)


@dataclass(frozen=True)
class AssetSpec:
    name: str
    category: str  # object | receptacle
    split: str  # train | test
    parts: tuple[Part, ...]
    density: float = 500.0
    friction: float = 1.0
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    @staticmethod
    def _to_origin(meshes: list[trimesh.Trimesh], visual: list[trimesh.Trimesh]) -> list[trimesh.Trimesh]:
        """`meshes` moved so the origin is at the centre of the `visual` parts' footprint, on their lowest point:
        poses then place the footprint directly."""
        lo = np.min([m.bounds[0] for m in visual], axis=0)
        hi = np.max([m.bounds[1] for m in visual], axis=0)
        shift = [-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]]
        for m in meshes:
            m.apply_translation(shift)
        return meshes

    def part_meshes(self) -> list[trimesh.Trimesh]:
        meshes = [p.mesh() for p in self.parts]
        return self._to_origin(meshes, meshes)

    def collision_meshes(self, chord: float = COLLISION_CHORD) -> list[trimesh.Trimesh]:
        """One convex hull per part (Part.collision_mesh), in the frame of `part_meshes`."""
        return self._to_origin([p.collision_mesh(chord) for p in self.parts], [p.mesh() for p in self.parts])


def _c(hex_rgb: str, a: float = 1.0) -> RGBA:
    h = hex_rgb.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return (round(r, 4), round(g, 4), round(b, 4), a)


HALF_PI = float(np.pi / 2)


def _arc(n: int, radius: float, sweep: float, r: float, color: RGBA, tip: RGBA | None = None) -> list[Part]:
    """Capsules along a circular arc in the xy plane (banana, croissant-like shapes)."""
    parts = []
    seg = 2 * radius * np.sin(sweep / (2 * n))
    for i in range(n):
        a = -sweep / 2 + (i + 0.5) * sweep / n
        x, y = radius * np.sin(a), radius * (1 - np.cos(a))
        col = tip if tip is not None and i in (0, n - 1) else color
        parts.append(Part("capsule", (r, float(seg)), col, (float(x), float(y), r), (0.0, HALF_PI, float(a))))
    return parts


def _ring(n: int, radius: float, r: float, color: RGBA, z: float) -> list[Part]:
    """A torus approximated by n capsules (convex pieces) around a circle."""
    parts = []
    seg = 2 * radius * np.sin(np.pi / n)
    for i in range(n):
        a = 2 * np.pi * (i + 0.5) / n
        parts.append(
            Part("capsule", (r, float(seg)), color,
                 (float(radius * np.cos(a)), float(radius * np.sin(a)), z), (0.0, HALF_PI, float(a + HALF_PI)))
        )
    return parts


def _tray_walls(lx: float, ly: float, h: float, t: float, color: RGBA, z0: float) -> list[Part]:
    return [
        Part("box", (lx, t, h), color, (0, ly / 2 - t / 2, z0 + h / 2)),
        Part("box", (lx, t, h), color, (0, -ly / 2 + t / 2, z0 + h / 2)),
        Part("box", (t, ly - 2 * t, h), color, (lx / 2 - t / 2, 0, z0 + h / 2)),
        Part("box", (t, ly - 2 * t, h), color, (-lx / 2 + t / 2, 0, z0 + h / 2)),
    ]


def object_specs() -> list[AssetSpec]:
    lying = (0.0, HALF_PI, 0.0)
    o = []
    T, H = "train", "test"
    o.append(AssetSpec("carrot", "object", T, (
        Part("cone", (0.02, 0.09), _c("#ed7d1a"), (0.0, 0, 0.02), (0.0, -HALF_PI, 0.0)),
        Part("cylinder", (0.008, 0.03), _c("#3f9b2e"), (-0.058, 0, 0.02), lying),
    ), density=600))
    o.append(AssetSpec("banana", "object", T, tuple(_arc(5, 0.075, 1.3, 0.016, _c("#f4d03f"), _c("#7a5c1e"))),
                       density=600))
    o.append(AssetSpec("soda can", "object", T, (
        Part("cylinder", (0.03, 0.10), _c("#c0182b"), (0, 0, 0.05)),
        Part("cylinder", (0.026, 0.006), _c("#c9c9c9"), (0, 0, 0.103)),
    ), density=350))
    o.append(AssetSpec("bottle", "object", T, (
        Part("cylinder", (0.028, 0.08), _c("#2e8b57"), (0.0, 0, 0.028), lying),
        Part("cone", (0.028, 0.03), _c("#2e8b57"), (0.055, 0, 0.028), (0.0, HALF_PI, 0.0)),
        Part("cylinder", (0.012, 0.02), _c("#f2f2f2"), (0.072, 0, 0.028), lying),
    ), density=400))
    o.append(AssetSpec("cup", "object", T, (
        Part("cylinder", (0.032, 0.08), _c("#2d6cdf"), (0, 0, 0.04)),
        Part("box", (0.012, 0.008, 0.045), _c("#2d6cdf"), (0.038, 0, 0.04)),
    ), density=350))
    o.append(AssetSpec("apple", "object", T, (
        Part("ellipsoid", (0.034, 0.034, 0.031), _c("#b3121f"), (0, 0, 0.031)),
        Part("cylinder", (0.003, 0.015), _c("#5b3a1a"), (0, 0, 0.066)),
    ), density=700))
    o.append(AssetSpec("sponge", "object", T, (
        Part("box", (0.09, 0.06, 0.025), _c("#f7dc3b"), (0, 0, 0.0125)),
        Part("box", (0.09, 0.06, 0.01), _c("#2f8f3a"), (0, 0, 0.03)),
    ), density=150))
    o.append(AssetSpec("orange", "object", T, (Part("sphere", (0.035,), _c("#f39c12"), (0, 0, 0.035)),),
                       density=700))
    o.append(AssetSpec("lemon", "object", T, (
        Part("ellipsoid", (0.038, 0.027, 0.027), _c("#f9e547"), (0, 0, 0.027)),
        Part("ellipsoid", (0.008, 0.008, 0.008), _c("#d4c21d"), (0.038, 0, 0.027)),
    ), density=700))
    o.append(AssetSpec("eggplant", "object", T, (
        Part("ellipsoid", (0.055, 0.028, 0.026), _c("#4b1e5c"), (0, 0, 0.026)),
        Part("cylinder", (0.012, 0.02), _c("#3f7d2c"), (-0.058, 0, 0.026), lying),
    ), density=500))
    o.append(AssetSpec("tomato", "object", T, (
        Part("ellipsoid", (0.032, 0.032, 0.026), _c("#e0301e"), (0, 0, 0.026)),
        Part("cylinder", (0.01, 0.006), _c("#2e7d32"), (0, 0, 0.053)),
    ), density=700))
    o.append(AssetSpec("toy block", "object", T, (Part("box", (0.045, 0.045, 0.045), _c("#1565c0"), (0, 0, 0.0225)),),
                       density=400))
    o.append(AssetSpec("marker", "object", T, (
        Part("cylinder", (0.011, 0.10), _c("#f5f5f5"), (0.0, 0, 0.011), lying),
        Part("cylinder", (0.012, 0.03), _c("#111111"), (0.062, 0, 0.012), lying),
    ), density=600))
    o.append(AssetSpec("strawberry", "object", T, (
        Part("cone", (0.024, 0.04), _c("#d7263d"), (0.0, 0, 0.024), (0.0, HALF_PI, 0.0)),
        Part("sphere", (0.024,), _c("#d7263d"), (-0.012, 0, 0.024)),
        Part("cylinder", (0.018, 0.006), _c("#3c8d2f"), (-0.034, 0, 0.024), lying),
    ), density=700))
    o.append(AssetSpec("juice box", "object", T, (
        Part("box", (0.05, 0.035, 0.09), _c("#ff8f00"), (0, 0, 0.045)),
        Part("cylinder", (0.003, 0.03), _c("#ffffff"), (0.012, 0.0, 0.1)),
    ), density=400))
    o.append(AssetSpec("potato", "object", T, (
        Part("ellipsoid", (0.045, 0.032, 0.027), _c("#a0785a"), (0, 0, 0.027)),
    ), density=700))
    # Held-out objects: shapes and colours not seen in training.
    o.append(AssetSpec("pear", "object", H, (
        Part("sphere", (0.032,), _c("#c5d646"), (0, 0, 0.032)),
        Part("sphere", (0.022,), _c("#c5d646"), (0.035, 0, 0.03)),
    ), density=700))
    o.append(AssetSpec("corn", "object", H, (
        Part("ellipsoid", (0.05, 0.024, 0.024), _c("#f6c94c"), (0, 0, 0.024)),
        Part("ellipsoid", (0.03, 0.026, 0.02), _c("#7cb342"), (-0.04, 0, 0.022)),
    ), density=500))
    o.append(AssetSpec("cucumber", "object", H, (Part("capsule", (0.02, 0.07), _c("#2e7d32"), (0, 0, 0.02), lying),),
                       density=700))
    o.append(AssetSpec("tennis ball", "object", H, (Part("sphere", (0.033,), _c("#d4e157"), (0, 0, 0.033)),),
                       density=300))
    o.append(AssetSpec("milk carton", "object", H, (
        Part("box", (0.055, 0.055, 0.085), _c("#fafafa"), (0, 0, 0.0425)),
        Part("box", (0.055, 0.02, 0.02), _c("#1e88e5"), (0, 0, 0.095)),
    ), density=350))
    o.append(AssetSpec("mushroom", "object", H, (
        Part("cylinder", (0.014, 0.04), _c("#efe6d5"), (0, 0, 0.02)),
        Part("ellipsoid", (0.035, 0.035, 0.018), _c("#8d6e63"), (0, 0, 0.045)),
    ), density=500))
    o.append(AssetSpec("donut", "object", H, tuple(_ring(8, 0.024, 0.011, _c("#c68642"), 0.011)), density=400))
    o.append(AssetSpec("chocolate bar", "object", H, (
        Part("box", (0.10, 0.045, 0.015), _c("#4e342e"), (0, 0, 0.0075)),
        Part("box", (0.04, 0.046, 0.016), _c("#c62828"), (0.02, 0, 0.0075)),
    ), density=800))
    o.append(AssetSpec("dice", "object", H, (Part("box", (0.035, 0.035, 0.035), _c("#ffffff"), (0, 0, 0.0175)),
                                            Part("box", (0.012, 0.012, 0.002), _c("#111111"), (0, 0, 0.0355))),
                       density=600))
    return o


def receptacle_specs() -> list[AssetSpec]:
    r = []
    T, H = "train", "test"
    r.append(AssetSpec("plate", "receptacle", T, (
        Part("cylinder", (0.06, 0.008), _c("#f4f4f0"), (0, 0, 0.004)),
        Part("cylinder", (0.045, 0.002), _c("#dcdcd6"), (0, 0, 0.009)),
    ), density=1500))

    def flat(name: str, lx: float, ly: float, h: float, color: str, extra: tuple[Part, ...] = ()) -> AssetSpec:
        return AssetSpec(name, "receptacle", H, (Part("box", (lx, ly, h), _c(color), (0, 0, h / 2)),) + extra,
                         density=1500)

    r.append(flat("towel", 0.14, 0.10, 0.006, "#4fa3d1", (Part("box", (0.14, 0.012, 0.0065), _c("#ffffff"),
                                                                  (0, 0.03, 0.003)),)))
    r.append(AssetSpec("tray", "receptacle", H, (Part("box", (0.14, 0.11, 0.006), _c("#6d4c41"), (0, 0, 0.003)),)
                       + tuple(_tray_walls(0.14, 0.11, 0.014, 0.006, _c("#5d4037"), 0.006)), density=1500))
    r.append(flat("cutting board", 0.14, 0.09, 0.012, "#c89f6a"))
    r.append(AssetSpec("frying pan", "receptacle", H, (
        Part("cylinder", (0.06, 0.008), _c("#2b2b2b"), (0, 0, 0.004)),
        Part("cylinder", (0.05, 0.0005), _c("#404040"), (0, 0, 0.008)),
    ), density=2000))
    r.append(flat("placemat", 0.13, 0.10, 0.003, "#9c27b0"))
    r.append(AssetSpec("shallow bowl", "receptacle", H, (Part("cylinder", (0.045, 0.008), _c("#e8d8c3"), (0, 0, 0.004)),)
                       + tuple(_ring(12, 0.052, 0.007, _c("#e8d8c3"), 0.012)), density=1500))
    r.append(AssetSpec("saucer", "receptacle", H, (Part("cylinder", (0.045, 0.007), _c("#90caf9"), (0, 0, 0.0035)),),
                       density=1500))
    r.append(flat("square plate", 0.12, 0.12, 0.008, "#fafafa", (Part("box", (0.09, 0.09, 0.0085), _c("#e0e0e0"),
                                                                         (0, 0, 0.004)),)))
    r.append(flat("book", 0.12, 0.09, 0.022, "#1a237e", (Part("box", (0.118, 0.086, 0.0225), _c("#f5f5dc"),
                                                                 (0.003, 0, 0.011)),)))
    r.append(AssetSpec("baking sheet", "receptacle", H, (Part("box", (0.14, 0.10, 0.004), _c("#b0b0b0"), (0, 0, 0.002)),)
                       + tuple(_tray_walls(0.14, 0.10, 0.008, 0.004, _c("#9e9e9e"), 0.004)), density=2500))
    r.append(flat("napkin", 0.10, 0.10, 0.003, "#ef9a9a"))
    r.append(AssetSpec("pot lid", "receptacle", H, (
        Part("cylinder", (0.055, 0.006), _c("#78909c"), (0, 0, 0.003)),
        Part("cylinder", (0.04, 0.004), _c("#90a4ae"), (0, 0, 0.008)),
    ), density=2000))
    r.append(flat("mouse pad", 0.12, 0.09, 0.004, "#212121", (Part("box", (0.05, 0.05, 0.0045), _c("#ff5722"),
                                                                      (0.03, 0.0, 0.002)),)))
    r.append(AssetSpec("wicker mat", "receptacle", H, (Part("cylinder", (0.06, 0.005), _c("#c9a26b"), (0, 0, 0.0025)),)
                       + tuple(_ring(16, 0.055, 0.004, _c("#a67c45"), 0.005)), density=1200))
    r.append(flat("clipboard", 0.09, 0.13, 0.008, "#8d6e63", (Part("box", (0.04, 0.015, 0.012), _c("#bdbdbd"),
                                                                      (0, 0.05, 0.006)),)))
    r.append(flat("serving board", 0.14, 0.10, 0.015, "#5d4037", (Part("box", (0.12, 0.08, 0.0155), _c("#795548"),
                                                                          (0, 0, 0.0075)),)))
    return r
