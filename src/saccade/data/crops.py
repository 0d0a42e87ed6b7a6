"""Many scenes from few photos: random square crops, with their teacher features, cached on disk.

The small CPU recipes (and the anchor experiment of the authors' code) train on crops of a few dozen
photos: each photo's short side is first brought to `photo_short_side_px`, then a crop with side
U[min_side_frac, 1] x short side at a uniform position is resized to the scene size. The teacher sees
each scene resized to `teacher_px` (its patch grid must equal the student's canvas grid). Scenes are
kept as uint8 and normalised on access; patches as float16, like exported shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from saccade._checks import positive_int
from saccade._io import atomic_write
from saccade.data.scenes import normalize

__all__ = ["CropConfig", "CropDistillationSet", "build_crop_distillation", "load_photos", "random_crops"]


@dataclass(frozen=True, kw_only=True)
class CropConfig:
    """How crops are drawn and what the teacher sees."""

    num_crops: int
    """Scenes to draw."""
    size_px: int = 128
    """Scene side in pixels."""
    min_side_frac: float = 0.4
    """Smallest crop side as a fraction of the photo's short side (the largest is 1)."""
    photo_short_side_px: int = 320
    """Photos are first downscaled (LANCZOS) to this short side (never upscaled)."""
    teacher_px: int = 112
    """Side of the teacher's input (a multiple of its patch size)."""
    seed: int = 0
    """Seeds the crop draws."""
    photo_order: Literal["uniform", "round_robin"] = "uniform"
    """Photo of each crop: drawn uniformly, or photos in turn (equal counts, for small test sets)."""
    hflip_prob: float = 0.0
    """Mirror a crop left-right with this probability (before the teacher sees it: targets are recomputed)."""
    color_jitter: float = 0.0
    """Brightness, contrast and saturation each scaled by U[1 - j, 1 + j] (before the teacher sees the crop)."""
    mosaic_prob: float = 0.0
    """With this probability a scene is a 2 x 2 mosaic of four independent crops (photo index: the top-left one's)."""

    def __post_init__(self) -> None:
        for name in ("num_crops", "size_px", "photo_short_side_px", "teacher_px"):
            positive_int(f"CropConfig.{name}", getattr(self, name))
        if not 0 < self.min_side_frac <= 1:
            raise ValueError(f"CropConfig.min_side_frac must be in (0, 1], got {self.min_side_frac}")
        if not 0 <= self.mosaic_prob <= 1:
            raise ValueError(f"CropConfig.mosaic_prob must be in [0, 1], got {self.mosaic_prob}")
        if self.mosaic_prob and self.size_px % 2:
            raise ValueError(f"CropConfig.size_px must be even for mosaics, got {self.size_px}")
        if not 0 <= self.hflip_prob <= 1 or not 0 <= self.color_jitter < 1:
            raise ValueError(
                f"CropConfig.hflip_prob must be in [0, 1] and color_jitter in [0, 1), got {self.hflip_prob}, "
                f"{self.color_jitter}"
            )
        if self.photo_order not in ("uniform", "round_robin"):
            raise ValueError(f"CropConfig.photo_order must be 'uniform' or 'round_robin', got {self.photo_order!r}")


def load_photos(paths: Sequence[str | os.PathLike], *, short_side_px: int = 320) -> list[Image.Image]:
    """RGB photos, downscaled (LANCZOS) so the short side is at most `short_side_px`."""
    photos = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        scale = short_side_px / min(rgb.size)
        if scale < 1:
            rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
        photos.append(rgb)
    return photos


def random_crops(photos: Sequence[Image.Image], config: CropConfig) -> tuple[Tensor, Tensor]:
    """(scenes uint8 [N, 3, S, S], photo index [N]): photo (uniform or in turn), then side and position."""
    if not photos:
        raise ValueError("random_crops needs at least one photo")
    rng = np.random.default_rng(config.seed)
    size = config.size_px
    scenes = torch.empty(config.num_crops, 3, size, size, dtype=torch.uint8)
    indices = torch.empty(config.num_crops, dtype=torch.long)
    for n in range(config.num_crops):
        index = n % len(photos) if config.photo_order == "round_robin" else int(rng.integers(len(photos)))
        if config.mosaic_prob and rng.uniform() < config.mosaic_prob:
            scene = Image.new("RGB", (size, size))
            half = size // 2
            for k, (top, left) in enumerate(((0, 0), (0, half), (half, 0), (half, half))):
                tile_index = index if k == 0 else int(rng.integers(len(photos)))
                scene.paste(_random_crop(photos[tile_index], half, config, rng), (left, top))
        else:
            scene = _random_crop(photos[index], size, config, rng)
        scenes[n] = torch.from_numpy(np.array(scene)).permute(2, 0, 1)  # [3, S, S]
        indices[n] = index
    return scenes, indices


def _random_crop(photo: Image.Image, size: int, config: CropConfig, rng: np.random.Generator) -> Image.Image:
    """A square crop of side U[min_side_frac, 1] x the short side at a uniform position, resized and augmented."""
    short = min(photo.size)
    side = max(1, round(short * rng.uniform(config.min_side_frac, 1.0)))
    top = int(rng.integers(photo.height - side + 1))
    left = int(rng.integers(photo.width - side + 1))
    crop = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    return _augment(crop, config, rng)


def _augment(crop: Image.Image, config: CropConfig, rng: np.random.Generator) -> Image.Image:
    """The crop's flip and colour jitter; no draws are made when both are off (old crop sets stay identical)."""
    if config.hflip_prob and rng.uniform() < config.hflip_prob:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if config.color_jitter:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            crop = enhancer(crop).enhance(rng.uniform(1 - config.color_jitter, 1 + config.color_jitter))
    return crop


class CropDistillationSet:
    """Crops and their teacher features: items are (scene [3, S, S] normalised, patches [h, w, D], cls [D])."""

    def __init__(self, scenes: Tensor, patches: Tensor, cls: Tensor, photo_index: Tensor) -> None:
        if not (len(scenes) == len(patches) == len(cls) == len(photo_index)):
            raise ValueError("scenes, patches, cls and photo_index must have the same length")
        self.scenes, self.patches, self.cls, self.photo_index = scenes, patches, cls, photo_index

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return normalize(self.scenes[index]), self.patches[index].float(), self.cls[index]

    def subset(self, count: int) -> CropDistillationSet:
        return CropDistillationSet(
            self.scenes[:count], self.patches[:count], self.cls[:count], self.photo_index[:count]
        )


@torch.no_grad()
def teacher_features(teacher, scenes_uint8: Tensor, *, teacher_px: int, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """(patches float16 [N, h, w, D], cls float32 [N, D]) of the teacher on scenes resized to teacher_px."""
    patches, cls = [], []
    for start in tqdm(range(0, len(scenes_uint8), batch_size), desc="teacher features", leave=False):
        images = normalize(scenes_uint8[start : start + batch_size])
        images = F.interpolate(images, size=(teacher_px, teacher_px), mode="bilinear", antialias=True)
        output = teacher(images)
        patches.append(output.patches.half())
        cls.append(output.cls.float())
    return torch.cat(patches), torch.cat(cls)


def build_crop_distillation(
    photo_paths: Sequence[str | os.PathLike],
    teacher,
    config: CropConfig,
    *,
    teacher_name: str,
    cache_dir: str | os.PathLike | None = None,
) -> CropDistillationSet:
    """Draw crops of the photos and compute their teacher features; cached by a hash of everything that matters."""
    digest = hashlib.sha256()
    for path in photo_paths:
        digest.update(Path(path).read_bytes())
    # Only the fields that differ from their defaults: a field added later (default = old behaviour) keeps old caches.
    settings = {f.name: getattr(config, f.name) for f in fields(config) if getattr(config, f.name) != f.default}
    digest.update(json.dumps({**settings, "teacher": teacher_name}, sort_keys=True).encode())
    cache_file = Path(cache_dir) / f"crops-{digest.hexdigest()[:16]}.safetensors" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        tensors = load_file(cache_file)
        return CropDistillationSet(tensors["scenes"], tensors["patches"], tensors["cls"], tensors["photo_index"])
    photos = load_photos(photo_paths, short_side_px=config.photo_short_side_px)
    scenes, photo_index = random_crops(photos, config)
    patches, cls = teacher_features(teacher, scenes, teacher_px=config.teacher_px)
    dataset = CropDistillationSet(scenes, patches, cls, photo_index)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"scenes": scenes, "patches": patches, "cls": cls, "photo_index": photo_index}
        atomic_write(cache_file, lambda tmp: save_file(tensors, tmp))
    return dataset
