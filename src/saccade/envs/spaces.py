"""Action <-> viewpoint mapping of the glimpse environments.

An action is a point of [-1, 1]^3 = (a_y, a_x, a_s). The scale is affine in a_s: s = s_min + (a_s + 1) / 2
* (s_max - s_min); the centre is (a_y, a_x) * (1 - s), so every action is a crop inside the scene, and
a_y = a_x = -1 puts the crop in the top-left corner whatever its scale. Actions outside the box are clipped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from saccade.geometry import Viewpoint

__all__ = ["action_to_viewpoint", "check_scale_bounds", "viewpoint_to_action"]


def check_scale_bounds(min_scale: float, max_scale: float) -> None:
    if not 0.0 < min_scale <= max_scale <= 1.0:
        raise ValueError(f"scale bounds must satisfy 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")


def action_to_viewpoint(actions: Tensor, *, min_scale: float, max_scale: float) -> Viewpoint:
    """Actions [B, 3] in [-1, 1] (clipped) -> Viewpoints [B] inside the scene."""
    check_scale_bounds(min_scale, max_scale)
    if actions.ndim != 2 or actions.shape[1] != 3:
        raise ValueError(f"actions must be [B, 3] (y, x, scale) in [-1, 1], got {tuple(actions.shape)}")
    if not bool(torch.isfinite(actions).all()):
        raise ValueError("actions must be finite")
    actions = actions.float().clamp(-1.0, 1.0)
    scales = min_scale + (actions[:, 2] + 1.0) / 2.0 * (max_scale - min_scale)  # [B]
    centers = actions[:, :2] * (1.0 - scales[:, None])  # [B, 2] (y, x)
    return Viewpoint(centers=centers, scales=scales)


def viewpoint_to_action(viewpoint: Viewpoint, *, min_scale: float, max_scale: float) -> Tensor:
    """Viewpoints [B] (inside the scene, scales in [min_scale, max_scale]) -> actions [B, 3]; inverse of the above."""
    check_scale_bounds(min_scale, max_scale)
    scales = viewpoint.scales.float()  # [B]
    span = max_scale - min_scale
    a_s = 2.0 * (scales - min_scale) / span - 1.0 if span > 0 else torch.zeros_like(scales)  # [B]
    room = (1.0 - scales)[:, None]  # [B, 1]
    a_yx = torch.where(room > 0, viewpoint.centers.float() / room.clamp_min(1e-12), torch.zeros_like(room))  # [B, 2]
    return torch.cat([a_yx, a_s[:, None]], dim=1).clamp(-1.0, 1.0)  # [B, 3]
