"""Procedural articulated objects for VLAOpen: cabinets, microwaves, fridges, ovens, drawers, written as URDF.

Each object is a fixed body (a box of panels open at the front) and one moving part: a door on a revolute joint
(hinged left, right or at the bottom) or a drawer on a prismatic joint, with a handle (round bar, square bar or
knob). Handles sit at least 11 cm above the table, where a hand closing vertically around a drawer's bar clears
the table top (the Panda hand is 20 cm long along its closing axis). Geometry uses URDF primitives only (box, cylinder, sphere), so every collision shape is exact and convex
and any URDF reader (SAPIEN, PyBullet, MuJoCo's importer) loads the files.

Object frame: z up, the body's footprint centred on the origin, the bottom at z = 0, the front face at
x = +depth/2 (its outward normal is +x). Left/right are as seen by someone facing the front (their right is +y).
At joint position 0 the door or drawer is closed; positive positions open it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RGBA = tuple[float, float, float, float]

WALL = 0.012  # panel thickness of the body
DOOR_THICKNESS = 0.015
GAP = 0.002  # clearance around a door or drawer front
HANDLE_STANDOFF = 0.035  # distance from the face to a bar's axis: room for the fingers behind it
BAR_RADIUS = 0.0075
KNOB_RADIUS = 0.015
MOVING_DENSITY = 400.0  # kg/m^3 of the door or drawer (light wood / thin metal box)


def _c(hex_rgb: str, a: float = 1.0) -> RGBA:
    h = hex_rgb.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, a)


@dataclass(frozen=True)
class ArticulatedSpec:
    name: str  # the noun of the instruction ("open the {name}"; drawers: "open the {name} drawer")
    split: str  # train | test
    kind: str  # door | drawer
    size: tuple[float, float, float]  # depth (x), width (y), height (z) of the body, metres
    hinge: str = "left"  # doors: left | right | bottom
    handle: str = "bar"  # bar | square | knob
    handle_length: float = 0.10  # bars
    handle_height: float = 0.6  # side-hinged doors: height of the handle as a fraction of the door
    handle_inset: float = 0.035  # distance of the handle axis from the door's free edge, metres
    drawer_span: tuple[float, float] = (0.2, 0.8)  # drawers: bottom and top of the opening, fractions of height
    body_color: RGBA = (0.8, 0.8, 0.8, 1.0)
    front_color: RGBA = (0.7, 0.7, 0.7, 1.0)
    handle_color: RGBA = (0.75, 0.75, 0.78, 1.0)
    window_color: RGBA | None = None  # a dark window on the door (microwave, oven)
    damping: float = 0.5  # joint damping: N m s/rad (doors), N s/m (drawers)
    friction: float = 0.05  # joint friction: N m (doors), N (drawers)
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def noun(self) -> str:
        return f"{self.name} drawer" if self.kind == "drawer" else self.name

    # ------------------------------------------------------------------ derived geometry (object frame)
    @property
    def depth(self) -> float:
        return self.size[0]

    @property
    def width(self) -> float:
        return self.size[1]

    @property
    def height(self) -> float:
        return self.size[2]

    def joint(self) -> dict:
        """Joint type, origin and axis in the body frame, and limits."""
        d, w, h = self.size
        if self.kind == "drawer":
            z0, z1 = self.drawer_span
            inner_depth = d - 2 * WALL
            return {"type": "prismatic", "origin": [d / 2, 0.0, h * z0], "axis": [1.0, 0.0, 0.0],
                    "limits": [0.0, round(0.85 * inner_depth, 4)]}
        if self.hinge == "right":
            return {"type": "revolute", "origin": [d / 2, w / 2, 0.0], "axis": [0.0, 0.0, 1.0],
                    "limits": [0.0, round(math.radians(110), 4)]}
        if self.hinge == "left":
            return {"type": "revolute", "origin": [d / 2, -w / 2, 0.0], "axis": [0.0, 0.0, -1.0],
                    "limits": [0.0, round(math.radians(110), 4)]}
        if self.hinge == "bottom":
            # Raised by the door's thickness: the door's outer lower edge swings below its hinge by up to that much.
            return {"type": "revolute", "origin": [d / 2, 0.0, DOOR_THICKNESS], "axis": [0.0, 1.0, 0.0],
                    "limits": [0.0, round(math.radians(85), 4)]}
        raise ValueError(f"{self.name}: hinge must be left, right or bottom, got {self.hinge!r}")

    def front_box(self) -> tuple[list[float], list[float]]:
        """Centre (in the moving link's frame) and size of the door panel or drawer front."""
        d, w, h = self.size
        t = DOOR_THICKNESS
        if self.kind == "drawer":
            z0, z1 = self.drawer_span
            fh = h * (z1 - z0) - 2 * GAP
            return [t / 2, 0.0, h * (z1 - z0) / 2], [t, w - 2 * GAP, fh]
        if self.hinge == "right":
            return [t / 2, -w / 2, h / 2], [t, w - 2 * GAP, h - 2 * GAP]
        if self.hinge == "left":
            return [t / 2, w / 2, h / 2], [t, w - 2 * GAP, h - 2 * GAP]
        return [t / 2, 0.0, (h - t) / 2], [t, w - 2 * GAP, h - t - GAP]

    def handle_frame(self) -> tuple[list[float], list[float]]:
        """Where the handle is grasped (the bar's or knob's centre) and the bar's direction, in the moving link's
        frame. A knob has no direction of its own; it reports the direction fingers should close around."""
        d, w, h = self.size
        x = DOOR_THICKNESS + HANDLE_STANDOFF
        if self.kind == "drawer":
            z0, z1 = self.drawer_span
            return [x, 0.0, h * (z1 - z0) / 2], [0.0, 1.0, 0.0]
        if self.hinge in ("left", "right"):
            side = -1.0 if self.hinge == "right" else 1.0  # the free edge is at y = side * w
            y = side * (w - GAP - self.handle_inset)
            return [x, y, h * self.handle_height], [0.0, 0.0, 1.0]
        return [x, 0.0, h - DOOR_THICKNESS - GAP - self.handle_inset], [0.0, 1.0, 0.0]


# ---------------------------------------------------------------------- URDF writing
def _f(v: float) -> str:
    s = f"{v:.5f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _v(xs) -> str:
    return " ".join(_f(x) for x in xs)


class _Link:
    def __init__(self, name: str):
        self.name = name
        self.visuals: list[str] = []
        self.collisions: list[str] = []
        self.mass = 0.0
        self.com_terms: list[tuple[float, list[float]]] = []

    def add(self, geometry: str, xyz, rpy=(0.0, 0.0, 0.0), material: str | None = None, collide: bool = True,
            volume: float = 0.0) -> None:
        origin = f'<origin xyz="{_v(xyz)}" rpy="{_v(rpy)}"/>'
        mat = f'<material name="{material}"/>' if material else ""
        self.visuals.append(f"<visual>{origin}<geometry>{geometry}</geometry>{mat}</visual>")
        if collide:
            self.collisions.append(f"<collision>{origin}<geometry>{geometry}</geometry></collision>")
        if volume:
            self.com_terms.append((volume * MOVING_DENSITY, list(xyz)))

    def box(self, center, size, material, collide=True, solid=False):
        self.add(f'<box size="{_v(size)}"/>', center, material=material, collide=collide,
                 volume=size[0] * size[1] * size[2] if solid else 0.0)

    def cylinder(self, center, radius, length, axis: str, material, solid=False):
        rpy = {"x": (0.0, math.pi / 2, 0.0), "y": (math.pi / 2, 0.0, 0.0), "z": (0.0, 0.0, 0.0)}[axis]
        self.add(f'<cylinder radius="{_f(radius)}" length="{_f(length)}"/>', center, rpy, material,
                 volume=math.pi * radius ** 2 * length if solid else 0.0)

    def sphere(self, center, radius, material, solid=False):
        self.add(f'<sphere radius="{_f(radius)}"/>', center, material=material,
                 volume=4 / 3 * math.pi * radius ** 3 if solid else 0.0)

    def inertial(self) -> str:
        """Point-mass sum of the solid parts, spread as a box: enough for a one-joint object."""
        if not self.com_terms:
            return ""
        m = sum(mi for mi, _ in self.com_terms)
        com = [sum(mi * p[k] for mi, p in self.com_terms) / m for k in range(3)]
        spread = [max(abs(p[k] - com[k]) for _, p in self.com_terms) + 0.02 for k in range(3)]
        ixx = m * (spread[1] ** 2 + spread[2] ** 2) / 3
        iyy = m * (spread[0] ** 2 + spread[2] ** 2) / 3
        izz = m * (spread[0] ** 2 + spread[1] ** 2) / 3
        return (f'<inertial><origin xyz="{_v(com)}" rpy="0 0 0"/><mass value="{_f(m)}"/>'
                f'<inertia ixx="{_f(ixx)}" ixy="0" ixz="0" iyy="{_f(iyy)}" iyz="0" izz="{_f(izz)}"/></inertial>')

    def xml(self) -> str:
        head = [f'  <link name="{self.name}">'] + (["    " + self.inertial()] if self.com_terms else [])
        return "\n".join([*head, *("    " + v for v in self.visuals), *("    " + c for c in self.collisions),
                          "  </link>"])


def _body(spec: ArticulatedSpec) -> _Link:
    d, w, h = spec.size
    t = WALL
    link = _Link("body")
    link.box([0, 0, t / 2], [d, w, t], "body")  # bottom
    link.box([0, 0, h - t / 2], [d, w, t], "body")  # top
    link.box([0, -w / 2 + t / 2, h / 2], [d, t, h - 2 * t], "body")  # sides
    link.box([0, w / 2 - t / 2, h / 2], [d, t, h - 2 * t], "body")
    link.box([-d / 2 + t / 2, 0, h / 2], [t, w - 2 * t, h - 2 * t], "body")  # back
    if spec.kind == "drawer":
        # Front panels above and below the drawer's opening, and a shelf the drawer slides on.
        z0, z1 = spec.drawer_span[0] * h, spec.drawer_span[1] * h
        if z0 > t + 1e-4:
            link.box([d / 2 - t / 2, 0, (z0 + t) / 2], [t, w - 2 * t, z0 - t], "body")
            link.box([0, 0, z0 - t / 2], [d - 2 * t, w - 2 * t, t], "body", collide=True)
        if z1 < h - t - 1e-4:
            link.box([d / 2 - t / 2, 0, (z1 + h - t) / 2], [t, w - 2 * t, h - t - z1], "body")
    return link


def _moving(spec: ArticulatedSpec) -> _Link:
    link = _Link("drawer" if spec.kind == "drawer" else "door")
    center, size = spec.front_box()
    link.box(center, size, "front", solid=True)
    if spec.kind == "drawer":
        # The drawer box behind its front: bottom, two sides and a back, inside the body's opening.
        d, w, h = spec.size
        z0, z1 = spec.drawer_span
        inner_h = h * (z1 - z0) - 2 * GAP
        dd = d - 2 * WALL - 0.01
        iw = w - 2 * WALL - 2 * GAP
        wall_h = 0.6 * inner_h
        t = 0.008
        link.box([-dd / 2, 0, GAP + t / 2], [dd, iw, t], "front", solid=True)
        link.box([-dd / 2, -iw / 2 + t / 2, GAP + wall_h / 2], [dd, t, wall_h], "front", solid=True)
        link.box([-dd / 2, iw / 2 - t / 2, GAP + wall_h / 2], [dd, t, wall_h], "front", solid=True)
        link.box([-dd + t / 2, 0, GAP + wall_h / 2], [t, iw, wall_h], "front", solid=True)
    if spec.window_color is not None:
        c, s = center, size
        link.box([c[0] + s[0] / 2 + 0.0005, c[1], c[2]], [0.001, s[1] * 0.6, s[2] * 0.55], "window", collide=False)
    _handle(spec, link)
    return link


def _handle(spec: ArticulatedSpec, link: _Link) -> None:
    p, axis = spec.handle_frame()
    face_x = DOOR_THICKNESS
    if spec.handle == "knob":
        stem = HANDLE_STANDOFF
        link.cylinder([face_x + stem / 2, p[1], p[2]], 0.006, stem, "x", "handle", solid=True)
        link.sphere(p, KNOB_RADIUS, "handle", solid=True)
        return
    along = "z" if axis[2] else "y"
    half = spec.handle_length / 2
    if spec.handle == "bar":
        link.cylinder(p, BAR_RADIUS, spec.handle_length, along, "handle", solid=True)
    elif spec.handle == "square":
        size = [2 * BAR_RADIUS] * 3
        size["xyz".index(along)] = spec.handle_length
        link.box(p, size, "handle", solid=True)
    else:
        raise ValueError(f"{spec.name}: handle must be bar, square or knob, got {spec.handle!r}")
    # Two standoffs from the face to the bar, near its ends.
    for s in (-1, 1):
        q = list(p)
        q[0] = face_x + HANDLE_STANDOFF / 2
        q["xyz".index(along)] += s * (half - 0.008)
        link.cylinder(q, 0.005, HANDLE_STANDOFF, "x", "handle", solid=True)


def urdf_text(spec: ArticulatedSpec) -> str:
    j = spec.joint()
    body, moving = _body(spec), _moving(spec)
    lo, hi = j["limits"]
    materials = [("body", spec.body_color), ("front", spec.front_color), ("handle", spec.handle_color)]
    if spec.window_color is not None:
        materials.append(("window", spec.window_color))
    lines = ['<?xml version="1.0"?>', "<!-- generated by vla_ood_envs.assets_gen (do not edit) -->",
             f'<robot name="{spec.name.replace(" ", "_")}">']
    lines += [f'  <material name="{n}"><color rgba="{_v(c)}"/></material>' for n, c in materials]
    lines += [body.xml(), moving.xml()]
    lines += [
        f'  <joint name="{moving.name}_joint" type="{j["type"]}">',
        f'    <parent link="body"/><child link="{moving.name}"/>',
        f'    <origin xyz="{_v(j["origin"])}" rpy="0 0 0"/><axis xyz="{_v(j["axis"])}"/>',
        f'    <limit lower="{_f(lo)}" upper="{_f(hi)}" effort="100" velocity="3"/>',
        f'    <dynamics damping="{_f(spec.damping)}" friction="{_f(spec.friction)}"/>',
        "  </joint>",
        "</robot>",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- the catalog's articulated objects
def articulated_specs() -> list[ArticulatedSpec]:
    """8 training and 6 held-out door objects, 4 training and 3 held-out drawer objects."""
    S = ArticulatedSpec
    door = dict(kind="door")
    drawer = dict(kind="drawer", damping=8.0, friction=0.5)
    return [
        # ---- doors, training
        S("cabinet", "train", size=(0.24, 0.28, 0.30), hinge="left", handle="bar", **door,
          body_color=_c("c8a878"), front_color=_c("b48a5a"), handle_color=_c("3a3a3a")),
        S("microwave", "train", size=(0.26, 0.36, 0.21), hinge="left", handle="bar", handle_height=0.5,
          handle_length=0.12, **door, body_color=_c("e8e8e8"), front_color=_c("d0d0d0"),
          handle_color=_c("9a9a9a"), window_color=_c("202428")),
        S("mini fridge", "train", size=(0.26, 0.26, 0.36), hinge="left", handle="bar", handle_height=0.55,
          handle_length=0.14, **door, body_color=_c("f4f4f0"), front_color=_c("eeeeea"),
          handle_color=_c("b0b0b0"), damping=1.0, friction=0.1),
        S("cupboard", "train", size=(0.22, 0.26, 0.32), hinge="right", handle="bar", **door,
          body_color=_c("6e8c6a"), front_color=_c("5d7a5a"), handle_color=_c("d8c070")),
        S("safe", "train", size=(0.24, 0.24, 0.24), hinge="left", handle="square", handle_height=0.5, **door,
          body_color=_c("44484c"), front_color=_c("3a3e42"), handle_color=_c("c0c4c8"), damping=1.5,
          friction=0.15),
        S("wall cabinet", "train", size=(0.20, 0.30, 0.28), hinge="right", handle="square", handle_height=0.5,
          **door, body_color=_c("f2efe6"), front_color=_c("e4dfd0"), handle_color=_c("5a5a5a")),
        S("bread box", "train", size=(0.22, 0.30, 0.20), hinge="left", handle="bar", handle_height=0.5,
          handle_length=0.08, **door, body_color=_c("b03a2e"), front_color=_c("a8322a"),
          handle_color=_c("e0e0e0")),
        S("storage box", "train", size=(0.22, 0.24, 0.26), hinge="right", handle="bar", handle_height=0.65,
          **door, body_color=_c("3c6e9e"), front_color=_c("335f88"), handle_color=_c("f0f0f0")),
        # ---- doors, held out: other sizes, a knob, a drop-down door, other colours
        S("toaster oven", "test", size=(0.26, 0.34, 0.20), hinge="bottom", handle="bar", handle_length=0.18,
          handle_inset=0.03, **door, body_color=_c("2a2a2a"), front_color=_c("333333"),
          handle_color=_c("c8c8c8"), window_color=_c("101214"), damping=0.8),
        S("medicine cabinet", "test", size=(0.18, 0.26, 0.30), hinge="left", handle="knob", handle_height=0.5,
          **door, body_color=_c("fafafa"), front_color=_c("dfe8ea"), handle_color=_c("a0a0a0")),
        S("wardrobe", "test", size=(0.24, 0.24, 0.38), hinge="right", handle="bar", handle_height=0.5,
          handle_length=0.16, **door, body_color=_c("5a3e2b"), front_color=_c("4d3423"),
          handle_color=_c("c9a24a"), damping=1.0),
        S("dishwasher", "test", size=(0.26, 0.30, 0.28), hinge="bottom", handle="square", handle_length=0.16,
          handle_inset=0.03, **door, body_color=_c("b8bcc0"), front_color=_c("a8acb0"),
          handle_color=_c("505050"), damping=1.0),
        S("locker", "test", size=(0.24, 0.22, 0.34), hinge="left", handle="square", handle_height=0.5,
          handle_length=0.08, **door, body_color=_c("d8a020"), front_color=_c("c89018"),
          handle_color=_c("303030")),
        S("display case", "test", size=(0.22, 0.30, 0.26), hinge="right", handle="knob", handle_height=0.5,
          **door, body_color=_c("7a2a5a"), front_color=_c("6c244e"), handle_color=_c("e8e8e8")),
        # ---- drawers, training
        S("nightstand", "train", size=(0.26, 0.30, 0.24), drawer_span=(0.45, 0.9), handle="bar", **drawer,
          body_color=_c("a07850"), front_color=_c("8c6842"), handle_color=_c("2e2e2e")),
        S("file cabinet", "train", size=(0.28, 0.26, 0.26), drawer_span=(0.5, 0.92), handle="square", **drawer,
          body_color=_c("707478"), front_color=_c("62666a"), handle_color=_c("d0d0d0")),
        S("desk", "train", size=(0.26, 0.34, 0.20), drawer_span=(0.35, 0.9), handle="bar",
          handle_length=0.14, **drawer, body_color=_c("e6e0d4"), front_color=_c("d8d0c0"),
          handle_color=_c("4a4a4a")),
        S("jewelry box", "train", size=(0.24, 0.26, 0.22), drawer_span=(0.5, 0.9), handle="square",
          handle_length=0.08, **drawer, body_color=_c("4a1f2e"), front_color=_c("5c2838"),
          handle_color=_c("d8b848")),
        # ---- drawers, held out
        S("tool chest", "test", size=(0.26, 0.32, 0.22), drawer_span=(0.3, 0.85), handle="bar",
          handle_length=0.16, **drawer, body_color=_c("c02020"), front_color=_c("a81c1c"),
          handle_color=_c("c8c8c8")),
        S("dresser", "test", size=(0.26, 0.30, 0.28), drawer_span=(0.55, 0.92), handle="knob", **drawer,
          body_color=_c("f0e8d8"), front_color=_c("e4d8c0"), handle_color=_c("8a6a3a")),
        S("spice cabinet", "test", size=(0.22, 0.24, 0.22), drawer_span=(0.45, 0.9), handle="knob", **drawer,
          body_color=_c("2e5a3a"), front_color=_c("264c30"), handle_color=_c("e0d0a0")),
    ]
