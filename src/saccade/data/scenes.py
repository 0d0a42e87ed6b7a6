"""Scenes: image files -> ImageNet-normalised square tensors [3, S, S], as the paper's teacher and student see them.

Preprocessing follows the paper (§5, App. C) and torchvision's PIL path, written with PIL + torch only:
resize the short side to S with bilinear filtering (long side `int(S * long / short)`), center-crop S x S
(offset `round((side - S) / 2)`), scale to [0, 1], normalise with the ImageNet mean and std. EXIF
orientation is applied first. Each scene carries its id and the sha256 of its file bytes, so teacher-feature
shards can be matched back to the exact file they were computed from.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "FileScenes",
    "ImageFolderScenes",
    "Scene",
    "UnreadableImageError",
    "contact_sheet",
    "denormalize",
    "normalize",
    "preprocess",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


class UnreadableImageError(ValueError):
    """An image file that cannot be read or decoded; `path` names it."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = os.fspath(path)


@dataclass(frozen=True)
class Scene:
    """One preprocessed scene and where it came from."""

    image: Tensor  # [3, S, S] float32, ImageNet-normalised
    image_id: str  # stable name, e.g. the path relative to the dataset root
    content_sha256: str  # hex sha256 of the file bytes


def preprocess(image: Image.Image, size_px: int) -> Tensor:
    """PIL image -> [3, S, S] float32: short side to S (bilinear), center crop, ImageNet normalisation."""
    image = _eight_bit(image).convert("RGB")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    resized_long = int(size_px * long / short)
    new_size = (size_px, resized_long) if width <= height else (resized_long, size_px)  # PIL sizes are (w, h)
    image = image.resize(new_size, Image.Resampling.BILINEAR)
    width, height = image.size
    top, left = round((height - size_px) / 2), round((width - size_px) / 2)
    image = image.crop((left, top, left + size_px, top + size_px))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # [S, S, 3]
    pixels = pixels.permute(2, 0, 1).float() / 255  # [3, S, S] in [0, 1]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (pixels - mean) / std


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale (PIL modes I;16* and I, as PIL opens 16-bit PNGs) -> mode L, 0..65535 scaled to 0..255.

    PIL's own conversion of these modes clips at 255, which turns almost every pixel white.
    """
    if image.mode.startswith("I"):
        pixels = np.asarray(image).astype(np.float64)  # [H, W]
        return Image.fromarray((pixels.clip(0, 65535) / 257).round().astype(np.uint8))
    if image.mode == "F":
        raise ValueError("image mode F (32-bit float) is not supported: save the image with 8 or 16 bits a channel")
    return image


def normalize(images: Tensor) -> Tensor:
    """uint8 (0-255) or float (0-1) images [..., 3, H, W] -> float32 ImageNet-normalised."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).reshape(3, 1, 1)
    return (x - mean) / std


def denormalize(images: Tensor) -> Tensor:
    """ImageNet-normalised [..., 3, H, W] -> [0, 1] RGB, clamped (for previews)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    return (images * std + mean).clamp(0, 1)


def contact_sheet(images: Sequence[Tensor], labels: Sequence[str], *, columns: int = 6) -> Image.Image:
    """ImageNet-normalised scenes [3, S, S] -> one RGB picture, a labelled grid (for previews)."""
    from PIL import ImageDraw

    if not images or len(images) != len(labels):
        raise ValueError(f"need as many labels as images (at least one), got {len(images)} and {len(labels)}")
    size_px, label_px = images[0].shape[-1], 12
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (min(columns, len(images)) * size_px, rows * (size_px + label_px)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        left, top = (i % columns) * size_px, (i // columns) * (size_px + label_px)
        pixels = (denormalize(image) * 255).round().byte().permute(1, 2, 0).numpy()  # [S, S, 3]
        sheet.paste(Image.fromarray(pixels), (left, top))
        draw.text((left + 2, top + size_px), label[: size_px // 6], fill="black")
    return sheet


def _decode(data: bytes, path: Path) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decode now, so truncated files fail here and not later
            return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(path, f"{type(err).__name__}: {err}") from err


class FileScenes(Dataset):
    """A fixed list of (image_id, file) pairs as scenes [3, S, S]; item i -> `Scene`."""

    def __init__(
        self, files: Sequence[tuple[str, str | os.PathLike]], *, size_px: int, source: dict | None = None
    ) -> None:
        """`source` (JSON-able) says how to rebuild this list, e.g. {"kind": "image-folder", "root": ...}."""
        if size_px < 1:
            raise ValueError(f"size_px must be >= 1, got {size_px}")
        ids = [image_id for image_id, _ in files]
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"image ids must be unique, got duplicates {duplicates[:5]}")
        self.files = [(image_id, Path(path)) for image_id, path in files]
        self.size_px = size_px
        self.source = source

    @property
    def image_ids(self) -> list[str]:
        return [image_id for image_id, _ in self.files]

    def path(self, index: int) -> Path:
        return self.files[index][1]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Scene:
        image_id, path = self.files[index]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise UnreadableImageError(path, f"{type(err).__name__}: {err}") from err
        image = preprocess(_decode(data, path), self.size_px)
        return Scene(image=image, image_id=image_id, content_sha256=hashlib.sha256(data).hexdigest())

    def fingerprint(self) -> dict[str, object]:
        """What fixes the scene tensors: ids (digest), size and normalisation; recorded in feature shards."""
        ids_sha256 = hashlib.sha256("\n".join(self.image_ids).encode()).hexdigest()
        preprocessing = f"short-side bilinear + center crop; mean {IMAGENET_MEAN}, std {IMAGENET_STD}"
        return {"num_images": len(self), "ids_sha256": ids_sha256, "size_px": self.size_px, "preprocess": preprocessing}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, size_px={self.size_px})"


class ImageFolderScenes(FileScenes):
    """Every jpg / png / webp under `root` (recursive, sorted, hidden files skipped); ids are posix paths from root."""

    def __init__(self, root: str | os.PathLike, *, size_px: int, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"scene folder {self.root} does not exist or is not a folder")
        suffixes = {ext.lower() for ext in extensions}
        files = sorted(
            (path.relative_to(self.root).as_posix(), path)
            for path in self.root.rglob("*")
            if path.suffix.lower() in suffixes
            and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        )
        if not files:
            raise ValueError(f"no {'/'.join(sorted(suffixes))} images under {self.root}")
        source = {"kind": "image-folder", "root": str(self.root.resolve()), "extensions": sorted(suffixes)}
        super().__init__(files, size_px=size_px, source=source)
