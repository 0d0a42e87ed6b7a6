"""Test stand-ins: tiny on-disk datasets in the real layouts, fake Fashion-MNIST idx files, a tiny teacher."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from saccade.evaluate.datasets import SceneTensors


class TeacherOutput:
    """Duck-typed teacher output (the saccade.teachers contract)."""

    def __init__(self, cls: Tensor, patches: Tensor) -> None:
        self.cls = cls  # [B, D]
        self.patches = patches  # [B, h, w, D]


class TinyTeacher(nn.Module):
    """A random 'ViT' without attention: patch conv + one Linear; FLOPs 2·N·(3·P²·D + D²) per image."""

    name = "tiny-teacher"

    def __init__(self, patch_size: int = 8, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.patch_size, self.dim = patch_size, dim
        self.patch = nn.Conv2d(3, dim, patch_size, patch_size)
        self.mix = nn.Linear(dim, dim)

    def forward(self, images: Tensor) -> TeacherOutput:
        patches = self.mix(self.patch(images).permute(0, 2, 3, 1))  # [B, h, w, D]
        return TeacherOutput(cls=patches.mean(dim=(1, 2)), patches=patches)

    def expected_flops(self, input_px: int) -> int:
        num_patches = (input_px // self.patch_size) ** 2
        return 2 * num_patches * (3 * self.patch_size**2 * self.dim + self.dim**2)


def tiny_teacher() -> TinyTeacher:
    """Factory for `saccade evaluate --teacher tests.evaluate.fakes:tiny_teacher`."""
    return TinyTeacher()


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """An idx.gz file (big-endian header: magic, then one int32 per dimension)."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fake_items(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[num, 28, 28] uint8 blobs (an ellipse of random size with texture) and labels [num] in 0..9."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    items = np.zeros((num, 28, 28), np.uint8)
    for i in range(num):
        ry, rx = rng.uniform(5, 13, size=2)
        inside = ((yy - 13.5) / ry) ** 2 + ((xx - 13.5) / rx) ** 2 <= 1
        items[i][inside] = rng.integers(60, 255, size=int(inside.sum()))
    return items, rng.integers(0, 10, size=num).astype(np.uint8)


def write_fake_fashion(root: Path, *, num_train: int = 40, num_test: int = 20) -> Path:
    """A folder laid out like /usr/share/datasets/fashion-mnist with fake items."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, num, seed in (("train", num_train, 0), ("t10k", num_test, 1)):
        items, labels = fake_items(num, seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", items, 2051)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return root


def fake_backgrounds(num: int = 4, seed: int = 0) -> Tensor:
    """[num, 3, 96, 120] uint8 smooth random 'photos'."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num, 3, 6, 8, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(96, 120), mode="bilinear", align_corners=False)
    return (smooth * 255).round().to(torch.uint8)


def write_background_folder(root: Path, num: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(fake_backgrounds(num)):
        Image.fromarray(photo.permute(1, 2, 0).numpy()).save(root / f"photo_{i}.png")
    return root


def write_fake_debian_backgrounds(debian_root: Path) -> Path:
    """The default background photos' Debian package unpacked under `debian_root`, with fake 'photos'."""
    from saccade.data.bundled import BUNDLED_PHOTOS, SOURCES
    from saccade.evaluate.sources import BACKGROUND_SOURCE

    folder = debian_root / SOURCES[BACKGROUND_SOURCE].locator
    folder.mkdir(parents=True, exist_ok=True)
    photos = [p for p in BUNDLED_PHOTOS if p.source == BACKGROUND_SOURCE]
    for photo, pixels in zip(photos, fake_backgrounds(len(photos)), strict=True):
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(folder / photo.relpath, format="JPEG")
    return debian_root


def default_backgrounds_installed() -> bool:
    """Whether the default background photos' Debian package is installed (tests that need it skip otherwise)."""
    from saccade.data.bundled import bundled_files
    from saccade.evaluate.sources import BACKGROUND_SOURCE

    try:
        bundled_files("all", sources=(BACKGROUND_SOURCE,))
    except FileNotFoundError:
        return False
    return True


def write_ade20k(root: Path, *, num_train: int = 3, num_val: int = 2, seed: int = 0) -> Path:
    """A tiny ADEChallengeData2016 folder: jpg images and uint8 png labels (0 = other, 1..150) of varied sizes."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    for split, num in (("training", num_train), ("validation", num_val)):
        (base / "images" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(num):
            height, width = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            stem = f"ADE_{split[:5]}_{i:08d}"
            image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(image).save(base / "images" / split / f"{stem}.jpg")
            label = rng.choice(np.array([0, 1, 7, 150], np.uint8), size=(height, width))
            Image.fromarray(label).save(base / "annotations" / split / f"{stem}.png")
    return base


def write_image_folder(root: Path, classes: tuple[str, ...] = ("n01", "n02"), per_class: int = 2) -> Path:
    """ImageNet-style root/<class>/<image>.JPEG."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 255, size=(int(rng.integers(20, 40)), int(rng.integers(20, 40)), 3), dtype=np.uint8)
            Image.fromarray(image).save(root / name / f"{name}_{i}.JPEG", format="JPEG")
    return root


def tiny_scenes(task: str, *, num: int = 8, size_px: int = 64, num_classes: int = 3, seed: int = 0) -> SceneTensors:
    """Scenes coloured by their class (channel class % 3 bright, plus noise): label maps of that class, or the class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % num_classes  # [N]
    images = torch.full((num, 3, size_px, size_px), 0.15)
    images[torch.arange(num), labels % 3] = 0.85
    images = images + 0.05 * torch.rand(num, 3, size_px, size_px, generator=generator)
    uint8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    if task == "segmentation":
        maps = labels[:, None, None].expand(num, size_px, size_px).to(torch.uint8).contiguous()  # [N, S, S]
        return SceneTensors(uint8, maps, num_classes=num_classes)
    return SceneTensors(uint8, labels, num_classes=num_classes)
