"""Procedural table appearances and overlay textures (numpy + pillow, deterministic from a fixed seed).

Table appearances (16 train + 5 held-out) are materials a tabletop can plausibly have: wood grains, stone,
cloth, laminate. Overlay textures (16) are the busy patterns the dynamic-texture and dynamic-noise conditions
blend over the image. Everything is drawn with numpy from seeded generators, so files are identical across
runs and machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SIZE = 256


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: random lattice values, bicubic-like (smoothstep) interpolation, tileable."""
    grid = rng.random((cells, cells))
    t = np.arange(size) * cells / size
    i0 = np.floor(t).astype(int)
    f = t - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % cells
    a = grid[i0][:, i0] * (1 - f)[None, :] + grid[i0][:, i1] * f[None, :]
    b = grid[i1][:, i0] * (1 - f)[None, :] + grid[i1][:, i1] * f[None, :]
    return a * (1 - f)[:, None] + b * f[:, None]


def _fbm(rng: np.random.Generator, size: int, base: int, octaves: int = 4) -> np.ndarray:
    total, amp, norm = np.zeros((size, size)), 1.0, 0.0
    for o in range(octaves):
        total += amp * _value_noise(rng, size, base * 2**o)
        norm += amp
        amp *= 0.5
    return total / norm


def _mix(c0, c1, t: np.ndarray) -> np.ndarray:
    c0, c1 = np.asarray(c0, float), np.asarray(c1, float)
    return c0 + (c1 - c0) * t[..., None]


def _hex(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))


def wood(rng, light: str, dark: str, rings: float = 18.0) -> np.ndarray:
    n = _fbm(rng, SIZE, 4)
    y = np.linspace(0, 1, SIZE)[:, None]
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (y * rings + 3.0 * n))
    fine = _fbm(rng, SIZE, 32, 2)
    t = np.clip(0.75 * grain + 0.25 * fine, 0, 1)
    return _mix(_hex(light), _hex(dark), t)


def stone(rng, base: str, vein: str, speckle: float = 0.0) -> np.ndarray:
    n = _fbm(rng, SIZE, 4, 5)
    veins = np.abs(np.sin(2 * np.pi * (n * 4.0 + np.linspace(0, 1, SIZE)[None, :])))
    t = np.clip(1 - veins**0.3, 0, 1)
    img = _mix(_hex(base), _hex(vein), t)
    if speckle:
        dots = rng.random((SIZE, SIZE)) < speckle
        img[dots] = img[dots] * 0.45
    return img


def cloth(rng, a: str, b: str, period: int = 16) -> np.ndarray:
    x = np.arange(SIZE)
    check = ((x[:, None] // period + x[None, :] // period) % 2).astype(float)
    weave = 0.08 * np.sin(2 * np.pi * x / 3.0)[:, None] * np.sin(2 * np.pi * x / 3.0)[None, :]
    return _mix(_hex(a), _hex(b), check) * (1 + weave[..., None])


def laminate(rng, color: str, noise: float = 0.08) -> np.ndarray:
    n = _fbm(rng, SIZE, 8, 3)
    return np.asarray(_hex(color), float)[None, None, :] * (1 - noise + 2 * noise * n[..., None])


def tiles(rng, tile: str, grout: str, period: int = 64) -> np.ndarray:
    x = np.arange(SIZE)
    line = ((x % period) < 3)
    mask = (line[:, None] | line[None, :]).astype(float)
    img = laminate(rng, tile, 0.05)
    return img * (1 - mask[..., None]) + np.asarray(_hex(grout), float) * mask[..., None]


# Overlay patterns: high-contrast, colourful, distinct from any table appearance.
def stripes(rng, angle: float, period: float, c0: str, c1: str) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    return _mix(_hex(c0), _hex(c1), t)


def dots(rng, period: int, radius: float, c0: str, c1: str) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    d = np.hypot((x % period) - period / 2, (y % period) - period / 2)
    return _mix(_hex(c0), _hex(c1), (d < radius).astype(float))


def blobs(rng, cells: int, palette: list[str]) -> np.ndarray:
    n = _fbm(rng, SIZE, cells, 3)
    idx = np.clip((n * len(palette) * 1.3 - 0.15 * len(palette)).astype(int), 0, len(palette) - 1)
    return np.asarray([_hex(p) for p in palette], float)[idx]


def static(rng, c0: str, c1: str) -> np.ndarray:
    t = rng.random((SIZE, SIZE))
    return _mix(_hex(c0), _hex(c1), t)


def zigzag(rng, period: int, c0: str, c1: str) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    t = ((y + np.abs((x % period) - period / 2)) // (period / 2)) % 2
    return _mix(_hex(c0), _hex(c1), t.astype(float))


@dataclass(frozen=True)
class TextureSpec:
    name: str
    kind: str  # table | overlay
    split: str  # train | test (overlays are used only at test time; their split is "test")
    draw: Callable[[np.random.Generator], np.ndarray]

    def render(self, seed: int) -> np.ndarray:
        img = self.draw(np.random.default_rng(seed))
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def table_specs() -> list[TextureSpec]:
    T, H = "train", "test"
    specs = [
        ("oak", T, lambda r: wood(r, "#c8a06e", "#8b5e34", 8)),
        ("walnut", T, lambda r: wood(r, "#7b5233", "#3e2718", 7)),
        ("pine", T, lambda r: wood(r, "#e3c79a", "#b88a55", 8)),
        ("cherry", T, lambda r: wood(r, "#a0522d", "#5c2a12", 8)),
        ("white marble", T, lambda r: stone(r, "#eeeeee", "#9e9e9e")),
        ("grey granite", T, lambda r: stone(r, "#8f8f8f", "#5a5a5a", 0.05)),
        ("blue laminate", T, lambda r: laminate(r, "#6f8fb5")),
        ("beige laminate", T, lambda r: laminate(r, "#d8cbb0")),
        ("green felt", T, lambda r: laminate(r, "#3f7a4f", 0.12)),
        ("red gingham", T, lambda r: cloth(r, "#f2f2f2", "#c94c4c")),
        ("blue gingham", T, lambda r: cloth(r, "#f2f2f2", "#4c6fc9")),
        ("grey concrete", T, lambda r: laminate(r, "#9a9a94", 0.2)),
        ("white tiles", T, lambda r: tiles(r, "#f0f0ea", "#8a8a8a")),
        ("black slate", T, lambda r: stone(r, "#3a3d40", "#25272a", 0.02)),
        ("bamboo", T, lambda r: wood(r, "#d9c27a", "#a48a3c", 10)),
        ("light grey", T, lambda r: laminate(r, "#c4c4c4", 0.04)),
        # Held-out appearances.
        ("ebony", H, lambda r: wood(r, "#4a3426", "#1b120c", 9)),
        ("terracotta tiles", H, lambda r: tiles(r, "#c0673d", "#e8dccb", 48)),
        ("yellow checker", H, lambda r: cloth(r, "#f7e27a", "#6b5a1c", 24)),
        ("pink marble", H, lambda r: stone(r, "#e8c4c0", "#a66f6a")),
        ("teal laminate", H, lambda r: laminate(r, "#2a8c8c", 0.1)),
    ]
    return [TextureSpec(n, "table", s, f) for n, s, f in specs]


def overlay_specs() -> list[TextureSpec]:
    specs = [
        ("red stripes", lambda r: stripes(r, 0.6, 18, "#ff1744", "#ffffff")),
        ("blue stripes", lambda r: stripes(r, 2.2, 10, "#2962ff", "#ffd600")),
        ("green stripes", lambda r: stripes(r, 1.3, 26, "#00c853", "#212121")),
        ("purple dots", lambda r: dots(r, 24, 7, "#ffffff", "#6a1b9a")),
        ("orange dots", lambda r: dots(r, 16, 5, "#263238", "#ff6d00")),
        ("camouflage", lambda r: blobs(r, 6, ["#4b5320", "#78866b", "#c3b091", "#2f2f1f"])),
        ("candy blobs", lambda r: blobs(r, 5, ["#ff80ab", "#80d8ff", "#ccff90", "#ffff8d", "#b388ff"])),
        ("lava", lambda r: blobs(r, 4, ["#3e0000", "#b71c1c", "#ff6f00", "#ffd54f"])),
        ("static grey", lambda r: static(r, "#000000", "#ffffff")),
        ("static color", lambda r: static(r, "#00e5ff", "#ff4081")),
        ("zigzag", lambda r: zigzag(r, 32, "#000000", "#ffeb3b")),
        ("zigzag blue", lambda r: zigzag(r, 20, "#0d47a1", "#e3f2fd")),
        ("checker", lambda r: cloth(r, "#000000", "#ffffff", 20)),
        ("rainbow", lambda r: stripes(r, 0.0, 64, "#ff0000", "#0000ff") * 0.5 + stripes(r, 1.57, 48, "#00ff00",
                                                                                         "#ff00ff") * 0.5),
        ("marble swirl", lambda r: stone(r, "#4a148c", "#f8bbd0")),
        ("wood swirl", lambda r: wood(r, "#00695c", "#ffcc80", 9)),
    ]
    return [TextureSpec(n, "overlay", "test", f) for n, f in specs]
