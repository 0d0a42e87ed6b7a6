"""Evaluation datasets in their real on-disk layouts, plus in-memory scenes (paper App. D.3-D.4; spec §4.1).

- `ADE20K`: the official `ADEChallengeData2016/` folder: `images/{training,validation}/*.jpg` beside
  `annotations/{training,validation}/*.png` (same stems; one uint8 label per pixel, 0 = "other", 1..150 the
  classes). Labels are reduced as in mmseg/DINOv3: 0 -> 255 (ignored), c -> c - 1. Evaluation squishes image
  and label to size_px x size_px (image bilinear, label nearest); training applies a simplified DINOv3
  transform: random rescale of the short side to [0.5, 2] x size_px, a random size_px crop (padded with
  label 255), horizontal flip (no photometric distortion, no category-ratio crop check).
- `ImageFolderClassification`: ImageNet-style `root/<class>/<image>` (jpg, jpeg, png, webp; any case);
  evaluation resizes the short side to resize_px and centre-crops size_px (the paper's IN1k: 512 / 512);
  training takes a random resized crop (area 35-100%) and a flip.
- `SceneTensors`: scenes already in memory as uint8 [N, 3, H, W] with masks [N, H, W] or labels [N]
  (the bundled benchmark).

Every item is (image [3, S, S] float32 ImageNet-normalised, target): a label map [S, S] int64 or a class id.
Malformed folders raise a ValueError that names the offending file: a missing image or annotation, a label
image whose size differs from its image, or a class id outside [0, 150].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from saccade._checks import positive_int
from saccade.data.scenes import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = [
    "ADE20K",
    "ADE20K_NUM_CLASSES",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolderClassification",
    "SceneTensors",
    "normalize",
]

IGNORE_INDEX = 255
ADE20K_NUM_CLASSES = 150
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _read_rgb(path: Path) -> Tensor:
    """[3, H, W] uint8 of an image file; a clear error if it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # [3, H, W]


def _read_label(path: Path) -> np.ndarray:
    """[H, W] uint8 label ids of a single-channel PNG (mode L or P: the stored indices, never a palette colour)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"label image {path} must be single-channel (mode L or P), got mode {image.mode}")
            return np.asarray(image).astype(np.int64)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read label image {path}: {error}") from error


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """[3, H, W] float -> [3, h, w] bilinear (anti-aliased when shrinking)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _resize_label(label: Tensor, size: tuple[int, int]) -> Tensor:
    """[H, W] int64 -> [h, w] nearest neighbour."""
    if tuple(label.shape) == tuple(size):
        return label
    return F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def _randint(generator: torch.Generator | None, high: int) -> int:
    """Uniform int in [0, high] inclusive."""
    return int(torch.randint(high + 1, (), generator=generator))


class ADE20K(Dataset):
    """ADE20K scene parsing (150 classes) from an `ADEChallengeData2016` folder; items (image, label map).

    Args:
        root: the `ADEChallengeData2016` folder, or a folder that contains it.
        split: 'training' or 'validation'.
        size_px: side of the square items (evaluation: the whole image squished to it).
        train_transform: random rescale, crop and flip (see the module docstring) instead of the squish.
        generator: randomness of the training transform.
    """

    num_classes = ADE20K_NUM_CLASSES

    def __init__(
        self,
        root: str | os.PathLike,
        split: Literal["training", "validation"] = "validation",
        *,
        size_px: int = 512,
        train_transform: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if split not in ("training", "validation"):
            raise ValueError(f"split must be 'training' or 'validation', got {split!r}")
        self.size_px = positive_int("size_px", size_px)
        self.train_transform = train_transform
        self.generator = generator
        root = Path(root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        image_dir, label_dir = root / "images" / split, root / "annotations" / split
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise ValueError(
                    f"ADE20K folder {folder} is missing (expected ADEChallengeData2016/{{images,annotations}}/{split})"
                )
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() == ".jpg"}
        labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
        if not images:
            raise ValueError(f"no .jpg images in {image_dir}")
        unlabelled, orphans = sorted(images.keys() - labels.keys()), sorted(labels.keys() - images.keys())
        if unlabelled:
            stem = unlabelled[0]
            raise ValueError(
                f"annotation {label_dir / (stem + '.png')} is missing for image {images[stem]} "
                f"({len(unlabelled)} image(s) without annotation)"
            )
        if orphans:
            stem = orphans[0]
            raise ValueError(
                f"image {image_dir / (stem + '.jpg')} is missing for annotation {labels[stem]} "
                f"({len(orphans)} annotation(s) without image)"
            )
        self.stems = sorted(images)
        self.image_paths = [images[s] for s in self.stems]
        self.label_paths = [labels[s] for s in self.stems]

    def __len__(self) -> int:
        return len(self.stems)

    def load_raw(self, index: int) -> tuple[Tensor, Tensor]:
        """Image [3, H, W] uint8 and reduced label map [H, W] int64 (0..149, 255 ignored) at full size, checked."""
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = _read_rgb(image_path)
        label = _read_label(label_path)
        if label.shape != tuple(image.shape[-2:]):
            raise ValueError(
                f"label image {label_path} is {label.shape[1]}x{label.shape[0]} px but its image {image_path.name} "
                f"is {image.shape[2]}x{image.shape[1]} px"
            )
        if label.size and (label.min() < 0 or label.max() > ADE20K_NUM_CLASSES):
            bad = sorted({int(v) for v in np.unique(label) if v < 0 or v > ADE20K_NUM_CLASSES})
            raise ValueError(f"label image {label_path} holds class ids {bad} outside [0, {ADE20K_NUM_CLASSES}]")
        reduced = torch.from_numpy(label) - 1  # 0 ("other") -> -1 -> ignored
        reduced[reduced < 0] = IGNORE_INDEX
        return image, reduced

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, label = self.load_raw(index)
        image = image.float() / 255.0  # [3, H, W]
        if self.train_transform:
            image, label = self._augment(image, label)
        else:
            size = (self.size_px, self.size_px)
            image, label = _resize(image, size), _resize_label(label, size)
        return normalize(image), label

    def _augment(self, image: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Random rescale (short side in [0.5, 2] x size_px), random crop with label-255 padding, flip."""
        S = self.size_px
        height, width = image.shape[-2:]
        short = S * _uniform(self.generator, 0.5, 2.0)
        factor = min(short / min(height, width), 4 * short / max(height, width))
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        image, label = _resize(image, size), _resize_label(label, size)
        pad_h, pad_w = max(0, S - size[0]), max(0, S - size[1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = _randint(self.generator, image.shape[1] - S)
        left = _randint(self.generator, image.shape[2] - S)
        image, label = image[:, top : top + S, left : left + S], label[top : top + S, left : left + S]
        if _uniform(self.generator) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return image, label

    def verify(self) -> None:
        """Read every pair once (raises on the first bad file)."""
        for index in range(len(self)):
            self.load_raw(index)


class ImageFolderClassification(Dataset):
    """ImageNet-style class folders `root/<class>/<image>`; items (image, class id).

    Args:
        class_names: the class order (e.g. the training split's); default: the sorted sub-folder names.
            A sub-folder that is not one of them is an error.
        resize_px: evaluation resizes the short side to this (default size_px), then centre-crops size_px.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        size_px: int = 512,
        resize_px: int | None = None,
        class_names: Sequence[str] | None = None,
        train_transform: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.size_px = positive_int("size_px", size_px)
        self.resize_px = positive_int("resize_px", resize_px if resize_px is not None else size_px)
        self.train_transform = train_transform
        self.generator = generator
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"image folder {root} does not exist")
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders:
            raise ValueError(f"no class folders in {root} (expected root/<class>/<image>)")
        self.class_names = list(class_names) if class_names is not None else [p.name for p in folders]
        index_of = {name: i for i, name in enumerate(self.class_names)}
        self.samples: list[tuple[Path, int]] = []
        for folder in folders:
            if folder.name not in index_of:
                raise ValueError(f"class folder {folder} is not one of the {len(self.class_names)} given class names")
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            self.samples += [(path, index_of[folder.name]) for path in files]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        image = _read_rgb(path).float() / 255.0  # [3, H, W]
        image = self._random_resized_crop(image) if self.train_transform else self._resize_center_crop(image)
        return normalize(image), label

    def _resize_center_crop(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        factor = self.resize_px / min(height, width)
        size = (max(self.size_px, round(height * factor)), max(self.size_px, round(width * factor)))
        image = _resize(image, size)
        top, left = (size[0] - self.size_px) // 2, (size[1] - self.size_px) // 2
        return image[:, top : top + self.size_px, left : left + self.size_px]

    def _random_resized_crop(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        area = _uniform(self.generator, 0.35, 1.0) * height * width
        side = min(height, width, max(1, round(area**0.5)))
        top, left = _randint(self.generator, height - side), _randint(self.generator, width - side)
        image = _resize(image[:, top : top + side, left : left + side], (self.size_px, self.size_px))
        return image.flip(-1) if _uniform(self.generator) < 0.5 else image


class SceneTensors(Dataset):
    """In-memory scenes: images [N, 3, H, W] uint8 with label maps [N, H, W] or class ids [N]."""

    def __init__(self, images: Tensor, targets: Tensor, *, num_classes: int, class_names: Sequence[str] = ()) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if targets.shape[0] != images.shape[0] or targets.ndim not in (1, 3):
            raise ValueError(
                f"targets must be [N] or [N, H, W] for {images.shape[0]} images, got {tuple(targets.shape)}"
            )
        if targets.ndim == 3 and targets.shape[1:] != images.shape[2:]:
            raise ValueError(f"label maps {tuple(targets.shape)} do not match images {tuple(images.shape)}")
        self.images = images
        self.targets = targets
        self.num_classes = num_classes
        self.class_names = list(class_names)

    @property
    def task(self) -> str:
        return "segmentation" if self.targets.ndim == 3 else "classification"

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return normalize(self.images[index]), self.targets[index].long()
