"""Tiny tar shards with precomputed targets for the streaming tests: seeded PNG scenes and random fp16 targets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from saccade.data.tar_shards import _write_tar, tar_shard_name

GRID, DIM, SIZE_PX = 4, 16, 64


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_members(position: int, rng: np.random.Generator) -> dict[str, bytes]:
    """The members of sample `position`: a 32 px PNG (decoded at 64 px), json, patches [4, 4, 16] and CLS [16]."""
    key = f"{position:08d}"
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((32, 32), Image.Resampling.BILINEAR))
    patches = np.tanh(rng.standard_normal((GRID, GRID, DIM))).astype(np.float16)
    meta = {"image_id": f"scene-{position:04d}.png", "size_px": SIZE_PX}
    return {
        f"{key}.png": _png(pixels),
        f"{key}.json": json.dumps(meta).encode(),
        f"{key}.patches.npy": _npy(patches),
        f"{key}.cls.npy": _npy(patches.astype(np.float32).mean(axis=(0, 1))),
    }


def write_target_shards(folder: Path, *, num_samples: int, shard_size: int, seed: int = 0) -> Path:
    """`folder` filled with shard-000000.tar ... holding `num_samples` samples, `shard_size` a shard."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = [sample_members(position, rng) for position in range(num_samples)]
    for shard, start in enumerate(range(0, num_samples, shard_size)):
        _write_tar(folder / tar_shard_name(shard), samples[start : start + shard_size])
    return folder
