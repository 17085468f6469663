"""Vision OOD perturbations: table appearance (scene-side or image-side), dynamic texture, dynamic noise.

Image-side work is batched torch on the env's device: one gather and one blend per frame for all envs, no
per-env Python loop, and full-frame intermediates live in scratch buffers reused from frame to frame. The foreground (robot links + the target object) comes from the segmentation image, so
these wrappers need it; `gym.make` of a registered ID arranges that by itself, and a hand-built stack needs
`obs_mode="rgb+segmentation"`.
"""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

from .base import Perturbation, PerturbationError, Severity, resolve_names


def _load_rgb(path, size: tuple[int, int]) -> np.ndarray:
    """size = (height, width)"""
    return np.asarray(Image.open(path).convert("RGB").resize((size[1], size[0]), Image.BILINEAR))


class ImagePerturbation(Perturbation):
    """Base of the image-layer wrappers: takes the batched image + segmentation, returns the new image."""

    layer = "image"
    needs_segmentation = True

    def __init__(self, env: gym.Env, **ctor_kwargs):
        super().__init__(env, **ctor_kwargs)
        if not self.task.obs_mode_struct.visual.rgb:
            raise PerturbationError(f"{type(self).__name__} changes images; make the env with obs_mode='rgb' "
                                    f"(or 'rgb+segmentation'), not {self.task.obs_mode!r}")
        if not self.task.obs_mode_struct.visual.segmentation:
            raise PerturbationError(
                f"{type(self).__name__} needs the segmentation image to find the robot and the object: make the env "
                f"with obs_mode='rgb+segmentation', or use the registered ID, which sets this up by itself"
            )
        self.height, self.width = self.task.camera_height, self.task.camera_width
        dev = self.task.device
        self._ys = torch.arange(self.height, device=dev)
        self._xs = torch.arange(self.width, device=dev)
        self._version = -1
        self._bufs: dict[str, torch.Tensor] = {}
        self._fg_key: tuple | None = None

    def _buf(self, name: str, shape, dtype: torch.dtype) -> torch.Tensor:
        """A scratch tensor kept between frames: per frame, the image work allocates only the output image (and
        vectors of one row or column per env), never full-frame temporaries."""
        t = self._bufs.get(name)
        if t is None or t.shape != tuple(shape) or t.dtype != dtype:
            t = self._bufs[name] = torch.empty(tuple(shape), dtype=dtype, device=self.task.device)
        return t

    # ---- per-episode data (recomputed only when the task starts new episodes)
    def _episode_changed(self) -> bool:
        if self._version != self.task.episode_version:
            self._version = self.task.episode_version
            return True
        return False

    def _segmentation(self) -> torch.Tensor:
        seg = self.env.get_wrapper_attr("last_segmentation")
        if seg is None:
            raise PerturbationError("no segmentation image was produced for this frame")
        return seg

    def _foreground(self, seg: torch.Tensor) -> torch.Tensor:
        """Robot links and the target object, (N, H, W) bool (a scratch tensor, valid until the next frame)."""
        n = seg.shape[0]
        target = self.task.target_object
        key = (self.task.episode_version, n)
        if key != self._fg_key or not torch.equal(target, self._fg_target):
            # Per env: which segmentation ids are foreground (rebuilt when an episode starts).
            cls = self.task.segmentation_lut()
            self._fg_lut = (cls[None] == self.task.ROBOT_SEG) | (cls[None] == target[:, None])
            self._fg_key, self._fg_target = key, target.clone()
        ids = self._buf("seg", seg.shape, torch.long)
        ids.copy_(seg)
        fg = self._buf("fg", seg.shape, torch.bool)
        torch.gather(self._fg_lut, 1, ids.view(n, -1), out=fg.view(n, -1))
        return fg

    def _texture_crop(self, flat_index: torch.Tensor) -> torch.Tensor:
        """Texture texels at flat indices (N, H, W) into the stack of textures, as (N, H, W, 3) uint8 (scratch)."""
        tex = self._buf("tex", (*flat_index.shape, 3), torch.uint8)
        torch.index_select(self._texels, 0, flat_index.view(-1), out=tex.view(-1, 3))
        return tex

    def _blend(self, image: torch.Tensor, tex: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """image * (1 - weight) + tex * weight, rounded, as a new uint8 image. `weight` broadcasts over the image:
        (N, 1, 1, 1) for one alpha per env, (N, H, W, 1) for a per-pixel mask times alpha."""
        f = self._buf("blend", image.shape, torch.float32)
        g = self._buf("blend_tex", image.shape, torch.float32)
        f.copy_(image)
        g.copy_(tex)
        torch.lerp(f, g, weight, out=f)
        return f.round_().to(torch.uint8)

    def _box(self, fg: torch.Tensor):
        """Bounding box of the foreground per env: y0, y1, x0, x1 (inclusive) and whether it is non-empty."""
        rows, cols = fg.any(2), fg.any(1)
        has = rows.any(1)
        rows, cols = rows.to(torch.uint8), cols.to(torch.uint8)  # argmax of uint8 is cheaper than of float
        y0 = rows.argmax(1)
        y1 = self.height - 1 - rows.flip(1).argmax(1)
        x0 = cols.argmax(1)
        x1 = self.width - 1 - cols.flip(1).argmax(1)
        return y0, y1, x0, x1, has

    # Subclasses define perturb(image (N, H, W, 3) uint8, seg (N, H, W)) -> new image.

    def _apply(self, obs):
        image = obs["image"]
        batched = isinstance(image, torch.Tensor)
        img = image if batched else torch.from_numpy(np.ascontiguousarray(image))[None]
        seg = self._segmentation()
        out = self.perturb(img.to(self.task.device), seg)
        obs = dict(obs)
        obs["image"] = out if batched else out[0].cpu().numpy()
        return obs

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._apply(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._apply(obs), reward, terminated, truncated, info


class _OverlayPerturbation(ImagePerturbation):
    """Shared set-up of the texture and noise injectors: an overlay texture and its alpha are episode factors."""

    texture_scale = 1
    # alpha: the overlay's blend weight (the study: 0.3 weak, 0.5 strong); 0 would leave the image as it is.
    SEVERITY = Severity("alpha", 0.0, 1.0, low_open=True)

    def __init__(self, env: gym.Env, alpha: float, textures: str | Sequence[str], tag: str):
        super().__init__(env, alpha=alpha, textures=textures)
        cat = self.task.catalog
        names = resolve_names(textures, [], cat.names("overlays"), "overlay texture")
        self.alpha = self.severity
        self._swap_pools(f"{tag}:{alpha:g}", overlays=names, overlay_alpha=self.alpha)
        size = (self.height * self.texture_scale, self.width * self.texture_scale)
        all_names = cat.names("overlays")
        stack = np.stack([_load_rgb(cat.get("overlays", n).texture, size) for n in all_names])
        self._textures = torch.from_numpy(stack).to(self.task.device)
        self._texels = self._textures.reshape(-1, 3)  # flat, so a crop is one index_select
        self._texture_index = {n: i for i, n in enumerate(all_names)}

    def _episode_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._episode_changed():
            dev = self.task.device
            factors = self.task.factors
            self._tid = torch.tensor([self._texture_index.get(f.overlay, 0) for f in factors], device=dev)
            self._alpha = torch.tensor([f.overlay_alpha if f.overlay else 0.0 for f in factors], device=dev)
        return self._tid, self._alpha


class DynamicTexture(_OverlayPerturbation):
    """Blend a texture over the robot and target-object pixels inside their bounding box. The texture is anchored
    to the box, so it slides with the arm every frame. alpha 0.3 is the study's weak setting, 0.5 the strong."""

    def __init__(self, env: gym.Env, alpha: float = 0.5, textures: str | Sequence[str] = "test"):
        super().__init__(env, alpha, textures, "dynamic-texture")

    def perturb(self, image, seg):
        tid, alpha = self._episode_params()
        fg = self._foreground(seg)
        y0, _, x0, _, has = self._box(fg)
        th, tw = self._textures.shape[1:3]
        v = (self._ys[None, :] - y0[:, None]) % th
        u = (self._xs[None, :] - x0[:, None]) % tw
        index = self._buf("index", fg.shape, torch.long)
        torch.add((tid * th * tw)[:, None, None] + v[:, :, None] * tw, u[:, None, :], out=index)
        fg &= has[:, None, None]
        # Blending with weight alpha on the foreground and 0 elsewhere leaves the background exactly as it was
        # (lerp with weight 0 returns the start), at a fraction of the cost of a broadcast torch.where.
        weight = self._buf("weight", (*fg.shape, 1), torch.float32)
        torch.mul(fg[..., None], alpha[:, None, None, None], out=weight)
        return self._blend(image, self._texture_crop(index), weight)


class DynamicNoise(_OverlayPerturbation):
    """Blend a texture twice the image size over the whole frame; the crop's offset follows the centre of the
    robot+object box, so the pattern shifts every frame. alpha 0.3 weak, 0.5 strong (the study's settings)."""

    texture_scale = 2

    def __init__(self, env: gym.Env, alpha: float = 0.5, textures: str | Sequence[str] = "test"):
        super().__init__(env, alpha, textures, "dynamic-noise")
        # Flat offsets of an H x W window of a texture; a crop at (cy, cx) adds its corner's offset.
        self._window = self._ys[:, None] * self._textures.shape[2] + self._xs[None, :]

    def perturb(self, image, seg):
        tid, alpha = self._episode_params()
        fg = self._foreground(seg)
        y0, y1, x0, x1, has = self._box(fg)
        cy = torch.where(has, (y0 + y1) // 2, torch.full_like(y0, self.height // 2))
        cx = torch.where(has, (x0 + x1) // 2, torch.full_like(x0, self.width // 2))
        th, tw = self._textures.shape[1:3]
        index = self._buf("index", (image.shape[0], self.height, self.width), torch.long)
        torch.add(self._window[None], (tid * th * tw + cy * tw + cx)[:, None, None], out=index)
        return self._blend(image, self._texture_crop(index), alpha[:, None, None, None])


class UnseenTable(Perturbation):
    """Held-out table appearances.

    mode="scene": the table top really has a held-out material in the render (a texture swap at reset).
    mode="image": as in the study's code, every pixel that is not robot, object or receptacle is replaced by a
    held-out table photo, after rendering (needs segmentation).
    """

    layer = "scene"

    def __init__(self, env: gym.Env, pool: str | Sequence[str] = "test", mode: str = "scene"):
        if mode not in ("scene", "image"):
            raise PerturbationError(f"mode must be 'scene' or 'image', got {mode!r}")
        super().__init__(env, pool=pool, mode=mode)
        self.mode = mode
        cat = self.task.catalog
        names = resolve_names(pool, cat.names("tables", "train"), cat.names("tables", "test"), "table")
        if mode == "scene":
            self._swap_pools(f"tables:{pool if isinstance(pool, str) else 'custom'}", tables=names)
            return
        self.layer = "image"
        self._image = _Background(env, self.task, names)
        self._swap_pools(f"backgrounds:{pool if isinstance(pool, str) else 'custom'}", backgrounds=names)

    @classmethod
    def requires_segmentation(cls, **kwargs) -> bool:
        return kwargs.get("mode", "scene") == "image"

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return (self._image._apply(obs) if self.mode == "image" else obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return (self._image._apply(obs) if self.mode == "image" else obs), reward, terminated, truncated, info


class _Background(ImagePerturbation):
    """The image-side half of UnseenTable (kept separate so UnseenTable's scene mode needs no segmentation)."""

    def __init__(self, env: gym.Env, task, names: tuple[str, ...]):
        super().__init__(env)
        cat = task.catalog
        all_names = cat.names("tables")
        stack = np.stack([_load_rgb(cat.get("tables", n).texture, (self.height, self.width)) for n in all_names])
        self._photos16 = torch.from_numpy(stack).to(task.device, torch.int16)
        self._index = {n: i for i, n in enumerate(all_names)}

    def perturb(self, image, seg):
        if self._episode_changed():
            self._bid = torch.tensor([self._index[f.background] if f.background else 0 for f in self.task.factors],
                                     device=self.task.device)
        lut = self.task.segmentation_lut()
        if getattr(self, "_bg_lut_src", None) is not lut:  # which segmentation ids are background
            self._bg_lut, self._bg_lut_src = (lut == self.task.OTHER_SEG).to(torch.uint8), lut
        ids = self._buf("seg", seg.shape, torch.long)
        ids.copy_(seg)
        background = self._buf("background", (*seg.shape, 1), torch.uint8)
        torch.index_select(self._bg_lut, 0, ids.view(-1), out=background.view(-1))
        # image + background * (photo - image), in integers: exact, and no broadcast torch.where.
        out = self._buf("out16", image.shape, torch.int16)
        out.copy_(image)
        diff = self._buf("diff16", image.shape, torch.int16)
        torch.index_select(self._photos16, 0, self._bid, out=diff)
        diff -= out
        diff *= background
        out += diff
        return out.to(torch.uint8)
