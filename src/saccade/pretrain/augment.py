"""Augmentations applied consistently to a scene and its teacher targets.

Horizontal flip: the scene is mirrored and the teacher's patch map is mirrored with it (column j of the
flipped scene's targets is column G-1-j of the original's); the CLS target is kept. This transforms the
targets rather than recomputing them, which is exact for a flip-equivariant teacher and close for
DINOv2, trained with flips (see docs/data-scarce.md for the measured agreement). Draws are a function of
(seed, step), so a resumed run flips the same scenes.
"""

from __future__ import annotations

import math

import torch

from saccade.pretrain.data import DistillationBatch

__all__ = ["random_hflip"]


def random_hflip(
    batch: DistillationBatch, *, prob: float, seed: int, step: int, items: slice | None = None, global_batch: int = 0
) -> DistillationBatch:
    """Mirror each scene (and its patch targets) left-right with probability `prob`.

    Draws are made for the `global_batch` and sliced with `items` (this rank's part), so data-parallel ranks
    flip exactly the scenes a single process would.
    """
    if prob <= 0:
        return batch
    B, N, D = batch.patches.shape
    G = math.isqrt(N)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
    flip = (torch.rand(max(global_batch, B), generator=generator) < prob)[items or slice(0, B)]  # [B]
    flip = flip.to(batch.scenes.device)  # drawn on the CPU, so every device flips the same scenes
    scenes = torch.where(flip[:, None, None, None], batch.scenes.flip(-1), batch.scenes)  # [B, 3, H, W]
    grid = batch.patches.view(B, G, G, D)
    patches = torch.where(flip[:, None, None, None], grid.flip(2), grid).reshape(B, N, D)  # [B, G*G, D]
    return DistillationBatch(scenes=scenes, patches=patches, cls=batch.cls)
