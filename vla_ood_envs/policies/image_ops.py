"""Image preprocessing shared by the tiny VLA and its trainer, so training and evaluation see the same pixels.

Pipeline: (B, H, W, 3) uint8 -> `resize_images` to the model's square resolution (uint8, what the SFT data loader
keeps in memory) -> `crop_resize` of one box per image back to that resolution (float 0..255): a random box while
training with augmentation (`random_boxes`, OpenVLA's random-resized-crop), the centre box of the same area at
evaluation (`centre_boxes`; OpenVLA evaluates with a 0.9-area centre crop after training with 0.9-area random
crops: docs ../shared/docs/training-design.md, "Lessons from the anchors").

Boxes are (B, 4) float tensors (cx, cy, w, h): centre in [-1, 1] image coordinates and size as fractions of the
image's width and height.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def as_uint8_nhwc(images: Any, device: torch.device | str) -> torch.Tensor:
    """numpy or torch (B, H, W, 3) uint8 -> torch uint8 on `device` (no copy when it is already there)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    return images.to(device, non_blocking=True)


def resize_images(images: Any, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 (numpy or torch) -> (B, 3, size, size) uint8 on `device`.

    Bilinear with antialiasing, rounded back to uint8 (so frames kept in memory for training and frames resized
    at act time are the same numbers). Non-square frames are stretched to the square. Frames already at `size`
    pass through unchanged.
    """
    x = as_uint8_nhwc(images, device).permute(0, 3, 1, 2)
    if x.shape[-2:] == (size, size):
        return x.contiguous()
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def centre_boxes(n: int, area: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 4) boxes of `area` (fraction of the image, square) centred on the image."""
    side = math.sqrt(area)
    return torch.tensor([[0.0, 0.0, side, side]], device=device).expand(n, 4).contiguous()


def random_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 4) random boxes: area uniform in `scale` (fractions of the image), aspect ratio w/h log-uniform in
    `ratio`, position uniform over the places the box fits (torchvision's RandomResizedCrop without its retries;
    sides are clipped to the image)."""
    u = torch.rand((n, 4), generator=generator, dtype=torch.float64)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)
    cy = (2 * u[:, 3] - 1) * (1 - h)
    return torch.stack([cx, cy, w, h], 1).float().to(device)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop each (B, 3, S, S) uint8 image to its box and resample it to S x S (bilinear): float32 in 0..255.

    A full box (0, 0, 1, 1) returns the image's own values exactly.
    """
    b = x.shape[0]
    boxes = boxes.to(x.device, torch.float32)
    theta = torch.zeros((b, 2, 3), device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = boxes[:, 2]
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 0, 2] = boxes[:, 0]
    theta[:, 1, 2] = boxes[:, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
