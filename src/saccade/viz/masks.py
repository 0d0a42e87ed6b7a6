"""Label maps as pictures: a class-index mask [H, W] to a palette PNG (one fixed colour per class)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

__all__ = ["mask_palette", "save_mask"]


def mask_palette(num_classes: int = 256) -> np.ndarray:
    """[num_classes, 3] uint8 colours: the PASCAL VOC bit-interleaving, distinct for neighbouring indices."""
    index = np.arange(num_classes)
    colours = np.zeros((num_classes, 3), dtype=np.uint8)
    for shift in range(8):
        for channel in range(3):
            colours[:, channel] |= (((index >> (3 * shift + channel)) & 1) << (7 - shift)).astype(np.uint8)
    return colours


def save_mask(labels: Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a class-index mask [H, W] (or [1, H, W]) as a palette PNG whose pixel values are the class indices."""
    array = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"a mask must be [H, W] or [1, H, W], got {array.shape}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"a palette PNG holds class indices 0..255, got {array.min()}..{array.max()}")
    image = Image.fromarray(array.astype(np.uint8))  # mode L; the palette makes it P, pixel values unchanged
    image.putpalette(mask_palette().reshape(-1).tolist())
    path = Path(path)
    image.save(path)
    return path
