"""The scene frame: viewpoints, grid cell centres and crop boxes (paper §3, App. B).

The scene spans [-1, 1] on both axes. Every point is (row, col) = (y, x); (-1, -1) is the top-left
corner of the top-left pixel and (0, 0) the centre. A viewpoint is a centre c = (y, x) and a scale s,
the half side of the square crop [y - s, y + s] x [x - s, x + s], which covers s^2 of the scene.
Everything here is float32 and parameter-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Viewpoint", "crop_box_px", "glimpse_patch_positions", "grid_coords"]

SCALES_MESSAGE = "Viewpoint.scales must lie in (0, 1]"
CENTERS_MESSAGE = "Viewpoint.centers must be finite"


@dataclass(frozen=True)
class Viewpoint:
    """Where each batch item looks: `centers` [B, 2] as (y, x), finite (in [-1, 1] inside the scene), `scales` [B]
    in (0, 1]. Values are checked at construction, except while torch.compile or torch.export traces (an
    exported step calls `assert_valid_at_run_time`)."""

    centers: Tensor  # [B, 2] (y, x)
    scales: Tensor  # [B]

    def __post_init__(self) -> None:
        for name in ("centers", "scales"):
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise TypeError(f"Viewpoint.{name} must be a torch.Tensor, got {type(value).__name__}")
            if not value.is_floating_point():
                raise TypeError(f"Viewpoint.{name} must be a floating-point tensor, got {value.dtype}")
        if self.centers.ndim != 2 or self.centers.shape[1] != 2:
            raise ValueError(f"Viewpoint.centers must be [B, 2] (y, x), got {tuple(self.centers.shape)}")
        if self.scales.shape != (self.centers.shape[0],):
            raise ValueError(
                f"Viewpoint.scales must be [B] = [{self.centers.shape[0]}] to match centers "
                f"{tuple(self.centers.shape)}, got {tuple(self.scales.shape)}"
            )
        if self.centers.device != self.scales.device:
            raise ValueError(f"Viewpoint tensors on different devices: {self.centers.device}, {self.scales.device}")
        if not torch.compiler.is_compiling() and self.scales.numel() > 0:
            bad_scales, bad_centers = self._invalid_items()
            if not bool((bad_scales | bad_centers).any()):  # one host sync per viewpoint (once per glimpse)
                return
            if bool(bad_scales.any()):
                raise ValueError(
                    f"{SCALES_MESSAGE}, got {self.scales[bad_scales][:4].tolist()} "
                    f"at items {bad_scales.nonzero().flatten()[:4].tolist()}"
                )
            raise ValueError(
                f"{CENTERS_MESSAGE}, got {self.centers[bad_centers][:4].tolist()} "
                f"at items {bad_centers.nonzero().flatten()[:4].tolist()}"
            )

    def _invalid_items(self) -> tuple[Tensor, Tensor]:
        """[B] bool each: a scale outside (0, 1] or not finite; a centre with a coordinate that is not finite."""
        bad_scales = (self.scales <= 0) | (self.scales > 1) | ~torch.isfinite(self.scales)  # [B]
        return bad_scales, ~torch.isfinite(self.centers).all(dim=1)  # [B], [B]

    def assert_valid_at_run_time(self) -> None:
        """The construction checks as runtime asserts of a traced graph (torch.export), where they cannot raise
        in Python: the exported program fails with the same message, without the offending values."""
        bad_scales, bad_centers = self._invalid_items()
        torch._assert_async(~bad_scales.any(), SCALES_MESSAGE)
        torch._assert_async(~bad_centers.any(), CENTERS_MESSAGE)

    @property
    def batch_size(self) -> int:
        return self.centers.shape[0]

    @classmethod
    def full_scene(cls, batch_size: int, *, device: torch.device | str | None = None) -> Viewpoint:
        """The whole scene, (0, 0) with scale 1, for every item."""
        return cls(
            centers=torch.zeros(batch_size, 2, device=device),
            scales=torch.ones(batch_size, device=device),
        )

    @classmethod
    def from_yxs(cls, yxs: Tensor) -> Viewpoint:
        """Build from a [B, 3] tensor of (y, x, scale) rows."""
        if yxs.ndim != 2 or yxs.shape[1] != 3:
            raise ValueError(f"expected [B, 3] (y, x, scale) rows, got {tuple(yxs.shape)}")
        return cls(centers=yxs[:, :2], scales=yxs[:, 2])

    def to_yxs(self) -> Tensor:
        """[B, 3] rows of (y, x, scale)."""
        return torch.cat([self.centers, self.scales[:, None]], dim=1)

    @classmethod
    def unchecked(cls, *, centers: Tensor, scales: Tensor) -> Viewpoint:
        """A viewpoint of values checked already (rows of checked viewpoints, on any device), without the value
        check: on an accelerator that check waits for the device (a host sync per glimpse)."""
        viewpoint = object.__new__(cls)
        object.__setattr__(viewpoint, "centers", centers)
        object.__setattr__(viewpoint, "scales", scales)
        return viewpoint

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Viewpoint:
        """The same viewpoint on `device` (itself when already there); moving does not change checked values."""
        if self.centers.device == torch.device(device) and self.scales.device == torch.device(device):
            return self
        return Viewpoint.unchecked(
            centers=self.centers.to(device, non_blocking=non_blocking),
            scales=self.scales.to(device, non_blocking=non_blocking),
        )

    def __getitem__(self, index: int | slice | Tensor) -> Viewpoint:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Viewpoint(centers=self.centers[index], scales=self.scales[index])

    def is_inside_scene(self, *, atol: float = 1e-6) -> Tensor:
        """[B] bool: does the crop stay inside the scene (|y|, |x| <= 1 - s)?"""
        limit = 1.0 - self.scales[:, None] + atol  # [B, 1]
        return (self.centers.abs() <= limit).all(dim=1)


def grid_coords(grid_size: int, *, device: torch.device | str | None = None) -> Tensor:
    """[n, n, 2] cell centres (y, x) of an n x n grid over [-1, 1]^2, 'ij' (row-major) order."""
    if grid_size < 1:
        raise ValueError(f"grid_size must be >= 1, got {grid_size}")
    axis = (torch.arange(grid_size, dtype=torch.float32, device=device) + 0.5) / grid_size * 2 - 1  # [n]
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")  # [n, n] each
    return torch.stack([ys, xs], dim=-1)  # [n, n, 2]


def glimpse_patch_positions(viewpoint: Viewpoint, grid_size: int) -> Tensor:
    """[B, g*g, 2] scene positions (y, x) of the cells of a g x g grid laid over each viewpoint's crop."""
    cells = grid_coords(grid_size, device=viewpoint.centers.device).reshape(1, -1, 2)  # [1, g*g, 2]
    centers = viewpoint.centers.float()[:, None, :]  # [B, 1, 2]
    scales = viewpoint.scales.float()[:, None, None]  # [B, 1, 1]
    return centers + scales * cells  # [B, g*g, 2]


def crop_box_px(viewpoint: Viewpoint, scene_size_px: int) -> Tensor:
    """[B, 4] crop (top, left, bottom, right) in scene pixels: (centre -/+ scale + 1) * size / 2."""
    centers = viewpoint.centers.float()  # [B, 2]
    scales = viewpoint.scales.float()[:, None]  # [B, 1]
    top_left = (centers - scales + 1) * scene_size_px / 2  # [B, 2]
    bottom_right = (centers + scales + 1) * scene_size_px / 2  # [B, 2]
    return torch.cat([top_left, bottom_right], dim=1)  # [B, 4]
