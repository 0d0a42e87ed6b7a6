"""Images in, scenes out: what a released model expects (ImageNet-normalised float32 [B, 3, S, S]).

`to_scene` takes a path, a PIL image, a uint8 tensor [3, H, W] / [B, 3, H, W] (0..255) or a float tensor already
normalised, and resizes it to S x S the way the authors evaluate: the whole image squeezed to S x S, no crop, for
segmentation (their ADE20K protocol), or the short side to S and a centre crop, for classification (their
ImageNet protocol). PIL images and files are resized by PIL's bilinear filter, as torchvision does for PIL input;
tensors by `F.interpolate` (bilinear, antialiased).
"""

from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Fit", "ImageLike", "normalise", "to_scene"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ImageLike = str | os.PathLike | Image.Image | Tensor
Fit = Literal["squeeze", "crop"]


def normalise(pixels: Tensor) -> Tensor:
    """[..., 3, H, W] in [0, 1] -> ImageNet-normalised float32."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(3, 1, 1)
    return (pixels.float() - mean) / std


def to_scene(image: ImageLike, size_px: int, *, fit: Fit = "squeeze") -> Tensor:
    """One image (or a batch tensor) -> [B, 3, size_px, size_px] ImageNet-normalised float32 (see module)."""
    if isinstance(image, str | os.PathLike):
        with Image.open(image) as opened:
            return to_scene(opened.convert("RGB"), size_px, fit=fit)
    if isinstance(image, Image.Image):
        resized = _fit_pil(image.convert("RGB"), size_px, fit)
        pixels = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
        pixels = pixels.view(size_px, size_px, 3).permute(2, 0, 1)  # [3, S, S]
        return normalise(pixels[None] / 255.0)
    if not isinstance(image, Tensor):
        raise TypeError(f"expected a path, a PIL image or a tensor, got {type(image).__name__}")
    batch = image[None] if image.ndim == 3 else image
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"an image tensor must be [3, H, W] or [B, 3, H, W], got {tuple(image.shape)}")
    if batch.dtype == torch.uint8:
        batch = normalise(batch / 255.0)
    return _fit_tensor(batch.float(), size_px, fit)


def _fit_pil(image: Image.Image, size: int, fit: Fit) -> Image.Image:
    if fit == "squeeze":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def _fit_tensor(batch: Tensor, size: int, fit: Fit) -> Tensor:
    """[B, 3, H, W] -> [B, 3, size, size]."""
    if fit == "crop":
        height, width = batch.shape[-2:]
        scale = size / min(height, width)
        shape = (max(size, round(height * scale)), max(size, round(width * scale)))
        batch = F.interpolate(batch, size=shape, mode="bilinear", align_corners=False, antialias=True)
        top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
        return batch[..., top : top + size, left : left + size]
    if batch.shape[-2:] == (size, size):
        return batch
    return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
