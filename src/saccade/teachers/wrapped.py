"""Any torch module as a teacher: the user says how its output maps to CLS and patch features.

The wrapped module maps ImageNet-normalised images [B, 3, H, W] either to ViT tokens [B, 1 + R + h*w, D]
ordered [cls, registers, patches] (the usual layout, e.g. a timm or DINO `forward_features` taken after the
final norm), or directly to a `TeacherOutput`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from saccade.teachers.base import TeacherOutput, check_images, split_tokens

__all__ = ["WrappedTeacher"]


class WrappedTeacher(nn.Module):
    """A frozen user module as a `Teacher`; its output is checked against `dim` and the patch grid."""

    def __init__(
        self, module: nn.Module, *, patch_size: int, dim: int, num_registers: int = 0, name: str = "wrapped"
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"WrappedTeacher wraps a torch.nn.Module, got {type(module).__name__}")
        if patch_size < 1 or dim < 1 or num_registers < 0:
            raise ValueError(
                f"need patch_size >= 1, dim >= 1, num_registers >= 0, got {patch_size}, {dim}, {num_registers}"
            )
        self.module = module.eval().requires_grad_(False)
        self.name, self.patch_size, self.dim, self.num_registers = name, patch_size, dim, num_registers

    @torch.no_grad()
    def forward(self, images: Tensor) -> TeacherOutput:
        grid_h, grid_w = check_images(images, self.patch_size)
        out = self.module(images)
        if isinstance(out, Tensor):
            out = split_tokens(out, num_registers=self.num_registers, grid=(grid_h, grid_w))
        if not isinstance(out, TeacherOutput):
            raise TypeError(
                f"wrapped teacher module must return tokens [B, N, D] or a TeacherOutput, got {type(out).__name__}"
            )
        B, D = images.shape[0], self.dim
        if tuple(out.cls.shape) != (B, D) or tuple(out.patches.shape) != (B, grid_h, grid_w, D):
            raise ValueError(
                f"wrapped teacher output must be cls [{B}, {D}] and patches [{B}, {grid_h}, {grid_w}, {D}], "
                f"got {tuple(out.cls.shape)} and {tuple(out.patches.shape)}"
            )
        return out
