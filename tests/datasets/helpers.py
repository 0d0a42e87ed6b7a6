"""Shared test helpers: a tiny seeded teacher, tiny image folders, and the export script run in subprocesses."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saccade.teachers.base import TeacherOutput
from saccade.teachers.dinov2_bundled import DinoV2, DinoV2Spec, DinoV2Teacher

TINY_SPEC = DinoV2Spec(embed_dim=16, num_blocks=1, num_heads=2, patch_size=14, pos_grid=3)
SIZE_PX = 28  # 2x2 patches of 14 px


def tiny_teacher(seed: int = 0) -> DinoV2Teacher:
    """A random-init DINOv2 of width 16 with non-trivial position embeddings, identical for equal seeds."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vit = DinoV2(TINY_SPEC)
        with torch.no_grad():
            for param in (vit.cls, vit.pos_cls, vit.pos):
                param.normal_(0, 0.5)
    return DinoV2Teacher(vit, name="tiny-dinov2")


class SlowTeacher:
    """A teacher that sleeps before each batch, so a test can kill an export part-way."""

    def __init__(self, teacher: DinoV2Teacher, delay_s: float) -> None:
        self.teacher, self.delay_s = teacher, delay_s
        self.name, self.patch_size, self.dim = teacher.name, teacher.patch_size, teacher.dim

    def __call__(self, images: torch.Tensor) -> TeacherOutput:
        time.sleep(self.delay_s)
        return self.teacher(images)


def make_image_folder(root: Path, num_images: int, *, seed: int = 0) -> Path:
    """Random photos-to-be of varied sizes, modes and formats, some in sub-folders."""
    rng = np.random.default_rng(seed)
    formats = [("png", "RGB"), ("jpg", "RGB"), ("webp", "RGB"), ("png", "L")]
    for i in range(num_images):
        ext, mode = formats[i % len(formats)]
        height, width = int(rng.integers(28, 60)), int(rng.integers(28, 60))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        folder = root / (f"group{i % 3}" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img{i:03d}.{ext}", quality=95)
    return root


def shard_bytes(out: Path) -> dict[str, bytes]:
    """Visible shard files and the index, by name."""
    files = [*sorted(out.glob("shard-*.safetensors")), out / "index.json"]
    return {path.name: path.read_bytes() for path in files}
