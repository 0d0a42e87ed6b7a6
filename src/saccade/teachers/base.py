"""The teacher contract (paper §5): ImageNet-normalised images -> CLS [B, D] and patch features [B, h, w, D].

Both outputs are taken after the teacher's final LayerNorm, as the paper's DINOv3 targets are
(`last_hidden_state`); registers are dropped. Every teacher implements `Teacher`; the helpers here check
inputs and split a ViT token sequence `[cls, registers, patches]` into a `TeacherOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["Teacher", "TeacherOutput", "check_images", "split_tokens"]


@dataclass(frozen=True)
class TeacherOutput:
    """Frozen-teacher targets for one batch of images."""

    cls: Tensor  # [B, D]
    patches: Tensor  # [B, h, w, D], row-major patch grid (y, x)


@runtime_checkable
class Teacher(Protocol):
    """A frozen feature extractor: `teacher(images [B, 3, H, W]) -> TeacherOutput`, H and W multiples of patch_size."""

    name: str  # identifies architecture and weights; recorded in feature shards
    patch_size: int  # pixels per patch side
    dim: int  # feature width D

    def __call__(self, images: Tensor) -> TeacherOutput: ...


def check_images(images: object, patch_size: int) -> tuple[int, int]:
    """Validate ImageNet-normalised images [B, 3, H, W]; return the patch grid (h, w) = (H / P, W / P)."""
    if not isinstance(images, Tensor):
        raise TypeError(f"teacher input must be a torch.Tensor [B, 3, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"teacher input must be [B, 3, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"teacher input must be a float tensor (ImageNet-normalised), got {images.dtype}")
    height, width = images.shape[-2:]
    if height % patch_size or width % patch_size or height == 0 or width == 0:
        raise ValueError(
            f"teacher input sides must be positive multiples of the patch size {patch_size}, got {height}x{width} px"
        )
    return height // patch_size, width // patch_size


def split_tokens(tokens: Tensor, *, num_registers: int, grid: tuple[int, int]) -> TeacherOutput:
    """[B, 1 + R + h*w, D] tokens ordered [cls, registers, patches] -> TeacherOutput (registers dropped)."""
    grid_h, grid_w = grid
    expected = 1 + num_registers + grid_h * grid_w
    if tokens.ndim != 3 or tokens.shape[1] != expected:
        raise ValueError(
            f"expected teacher tokens [B, {expected}, D] (1 cls + {num_registers} registers + {grid_h}x{grid_w} "
            f"patches), got {tuple(tokens.shape)}"
        )
    B, _, D = tokens.shape
    cls = tokens[:, 0]  # [B, D]
    patches = tokens[:, 1 + num_registers :].reshape(B, grid_h, grid_w, D)  # [B, h, w, D]
    return TeacherOutput(cls=cls, patches=patches)
