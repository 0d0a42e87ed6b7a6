"""Offline sources of the bundled benchmark: Fashion-MNIST objects and natural background photos.

- Fashion-MNIST: the Debian package `dataset-fashion-mnist` installs the original idx.gz files in
  /usr/share/datasets/fashion-mnist (60k train / 10k test, 28x28 greyscale, 10 classes, MIT licence).
- Backgrounds: by default the photos of the Debian package `lomiri-wallpapers-16.04` (13 natural photos,
  CC-BY / CC-BY-SA / CC0, in /usr/share/backgrounds; its two abstract images are left out), split as the bundled
  photo catalogue `saccade.data.bundled` splits them: train scenes on its training photos, test scenes on its
  held-out photos, which no photo set of saccade trains on. Or any image folder or tensor, split by
  `test_photo_every`.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from saccade.data.bundled import bundled_files
from saccade.evaluate.datasets import IMAGE_SUFFIXES

__all__ = [
    "BACKGROUND_SOURCE",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "Backgrounds",
    "catalogue_backgrounds",
    "load_backgrounds",
    "load_fashion_mnist",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
BACKGROUND_SOURCE = "lomiri-wallpapers-16.04"
"""The source of the bundled photo catalogue (saccade.data.bundled) that the default backgrounds come from."""
_INSTALL_HINT = "apt-get install dataset-fashion-mnist lomiri-wallpapers-16.04"


def _read_idx(path: Path, *, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Array of an idx (optionally gzipped) file, its header checked."""
    if not path.is_file():
        raise FileNotFoundError(f"Fashion-MNIST file {path} is missing; install it with `{_INSTALL_HINT}`")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read Fashion-MNIST file {path}: {error}") from error
    header = 4 * (1 + 1 + len(item_shape))
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{path} is not an idx file with magic number {magic}")
    dims = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, 2 + len(item_shape))]
    if tuple(dims[1:]) != item_shape or len(data) != header + int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} for {len(data) - header} bytes; expected items of {item_shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(split: Literal["train", "test"], root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST items [N, 28, 28] uint8 and labels [N] int64 from the Debian package's idx.gz files."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root if root is not None else FASHION_MNIST_DIR)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", magic=2051, item_shape=(28, 28))
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", magic=2049, item_shape=())
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{root / f'{prefix}-labels-idx1-ubyte.gz'} holds class ids >= {len(FASHION_MNIST_CLASSES)}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _read_photo(path: Path, max_short_side: int) -> Tensor:
    """[3, H, W] uint8 photo with its short side shrunk to at most max_short_side."""
    from PIL import Image

    with Image.open(path) as image:
        scale = max_short_side / min(image.size)
        if scale < 1:
            image.draft("RGB", (round(image.size[0] * scale), round(image.size[1] * scale)))  # fast JPEG shrink
            scale = max_short_side / min(image.size)
        rgb = image.convert("RGB")
        if scale < 1:
            size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class Backgrounds:
    """Background photos and which of them train and test scenes are drawn on."""

    photos: tuple[Tensor, ...]  # [3, H, W] uint8 each
    names: tuple[str, ...]  # catalogue image ids, file names or tensor_<i>
    train: tuple[int, ...]  # indices of the photos behind train scenes
    test: tuple[int, ...]  # indices of the photos behind test scenes


def load_backgrounds(
    source: Backgrounds | str | os.PathLike | Tensor | Sequence[Tensor] | None = None,
    *,
    test_photo_every: int,
    max_short_side: int = 384,
    debian_root: str | os.PathLike = "/",
) -> Backgrounds:
    """Background photos (short side shrunk to at most max_short_side) and their split into train and test.

    Args:
        source: a Backgrounds (returned as it is); None for the bundled catalogue's photos of BACKGROUND_SOURCE
            (under `debian_root`), split as the catalogue splits them: train scenes on its training photos, test
            scenes on its held-out photos (`catalogue_backgrounds`). Else an image folder (sorted by file name), an
            [N, 3, H, W] tensor (uint8, or float in [0, 1]) or a sequence of [3, H, W] tensors, where every
            `test_photo_every`-th photo (n-1, 2n-1, ...) is test-only (a single photo is shared by both splits).
    """
    if isinstance(source, Backgrounds):
        return source
    if source is None:
        return catalogue_backgrounds(max_short_side=max_short_side, debian_root=debian_root)
    photos, names = _user_backgrounds(source, max_short_side)
    if len(photos) < 2:
        return Backgrounds(photos=tuple(photos), names=tuple(names), train=(0,), test=(0,))
    test = tuple(i for i in range(len(photos)) if i % test_photo_every == test_photo_every - 1) or (len(photos) - 1,)
    train = tuple(i for i in range(len(photos)) if i not in test)
    return Backgrounds(photos=tuple(photos), names=tuple(names), train=train, test=test)


def catalogue_backgrounds(
    *,
    train_sources: Sequence[str] = (),
    max_short_side: int = 384,
    debian_root: str | os.PathLike = "/",
) -> Backgrounds:
    """The bundled catalogue's photos of BACKGROUND_SOURCE split as the catalogue splits them (the benchmark's
    backgrounds), and the training photos of the catalogue's `train_sources` behind train scenes as well: never a
    held-out photo of any source behind a train scene."""
    rows = bundled_files("all", sources=(BACKGROUND_SOURCE,), debian_root=debian_root)
    others = [source for source in dict.fromkeys(train_sources) if source != BACKGROUND_SOURCE]
    if others:
        rows += bundled_files("train", sources=others, debian_root=debian_root)
    return Backgrounds(
        photos=tuple(_read_photo(path, max_short_side) for _, path in rows),
        names=tuple(photo.image_id for photo, _ in rows),
        train=tuple(i for i, (photo, _) in enumerate(rows) if photo.split == "train"),
        test=tuple(i for i, (photo, _) in enumerate(rows) if photo.split == "heldout"),
    )


def _user_backgrounds(
    source: str | os.PathLike | Tensor | Sequence[Tensor], max_short_side: int
) -> tuple[list[Tensor], list[str]]:
    """Photos of a folder (sorted by name) or tensor(s) as uint8 [3, H, W], with their names."""
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"background folder {folder} is missing")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise ValueError(f"no background images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        return [_read_photo(p, max_short_side) for p in paths], [p.name for p in paths]
    photos = list(source.unbind(0)) if isinstance(source, Tensor) else list(source)
    if not photos:
        raise ValueError("no background images given")
    out = []
    for index, photo in enumerate(photos):
        if not isinstance(photo, Tensor) or photo.ndim != 3 or photo.shape[0] != 3:
            raise ValueError(f"background {index} must be a [3, H, W] tensor, got {getattr(photo, 'shape', photo)!r}")
        if photo.dtype != torch.uint8:
            photo = (photo.float().clamp(0, 1) * 255).round().to(torch.uint8)
        out.append(photo)
    return out, [f"tensor_{index:03d}" for index in range(len(out))]
