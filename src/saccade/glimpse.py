"""Glimpse extraction: bilinear point-sampling of an image or feature map at a viewpoint (paper §3).

No anti-aliasing (a full-scene 128 px glimpse of a 512 px scene is a 4x point-sample), zero padding
outside the scene, align_corners=False pixel centres, computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade._checks import positive_int
from saccade.geometry import Viewpoint, glimpse_patch_positions

__all__ = ["sample_glimpse"]


def sample_glimpse(image: Tensor, viewpoint: Viewpoint, size_px: int) -> Tensor:
    """Sample [B, C, size_px, size_px] from `image` [B, C, H, W] inside each viewpoint's crop.

    Works for RGB images and for feature maps alike; the result has the input's dtype.
    """
    if not isinstance(image, Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be [B, C, H, W], got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor, got {image.dtype}")
    if image.shape[2] < 1 or image.shape[3] < 1:
        raise ValueError(f"image must be at least 1 x 1 px, got {image.shape[2]} x {image.shape[3]}")
    positive_int("size_px", size_px)
    batch_size = image.shape[0]
    if viewpoint.batch_size != batch_size:
        raise ValueError(f"viewpoint has {viewpoint.batch_size} items but image has batch {batch_size}")
    positions = glimpse_patch_positions(viewpoint.to(image.device), size_px)  # [B, S*S, 2] (y, x)
    # grid_sample wants (x, y) in the last axis.
    grid = positions.flip(-1).reshape(batch_size, size_px, size_px, 2)  # [B, S, S, 2] (x, y)
    with torch.autocast(device_type=image.device.type, enabled=False):
        glimpse = F.grid_sample(
            image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [B, C, S, S]
    return glimpse.to(image.dtype)
