"""A Hugging Face transformers DINOv2 / DINOv3 ViT backbone, loaded from a local folder, as a teacher.

This is how the paper's teacher (DINOv3 ViT-B/16, `facebook/dinov3-vitb16-pretrain-lvd1689m`) is used when
its files are on disk: targets are `last_hidden_state` (after the final LayerNorm), token 0 is CLS, then the
registers, then the patches. Nothing is downloaded (`local_files_only=True`), and preprocessing is ours
(ImageNet normalisation in `saccade.data.scenes`), not the HF image processor. Needs the optional extra
`pip install 'saccade[hf]'` (transformers).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from saccade.teachers.base import TeacherOutput, check_images, split_tokens

__all__ = ["SUPPORTED_MODEL_TYPES", "HFTeacher", "load_hf_teacher"]

SUPPORTED_MODEL_TYPES = ("dinov2", "dinov2_with_registers", "dinov3_vit")
HF_INSTALL = "pip install 'saccade[hf]'  (or: pip install transformers)"


class HFTeacher(nn.Module):
    """A transformers ViT whose `last_hidden_state` is [B, 1 + R + h*w, D] = [cls, registers, patches]."""

    def __init__(self, model: nn.Module, *, name: str) -> None:
        super().__init__()
        config = model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"HF teacher must be one of {SUPPORTED_MODEL_TYPES}, got model_type={config.model_type!r}")
        patch_size = config.patch_size
        if isinstance(patch_size, list | tuple):
            if len(set(patch_size)) != 1:
                raise ValueError(f"HF teacher needs square patches, got patch_size={patch_size}")
            patch_size = patch_size[0]
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.patch_size = int(patch_size)
        self.dim = int(config.hidden_size)
        self.num_registers = int(getattr(config, "num_register_tokens", 0) or 0)

    @torch.no_grad()
    def forward(self, images: Tensor) -> TeacherOutput:
        grid = check_images(images, self.patch_size)
        tokens = self.model(pixel_values=images).last_hidden_state  # [B, 1 + R + h*w, D]
        return split_tokens(tokens, num_registers=self.num_registers, grid=grid)


def load_hf_teacher(path: str | os.PathLike, *, name: str | None = None) -> HFTeacher:
    """Load a DINOv2 / DINOv2-with-registers / DINOv3 ViT from a local `save_pretrained` folder (no download)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        from transformers import AutoModel
    except ImportError as err:
        raise ImportError(f"the Hugging Face teacher needs transformers: {HF_INSTALL} ({err})") from err
    model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    return HFTeacher(model, name=name or f"hf:{folder.resolve().name}")
