"""Candidate viewpoints of the greedy policies (oracle, learned): quadtree cells, optionally half-offset.

Level l holds squares of scale 2^-l. Without offsets they are the 4^l quadtree tiles (the C2F cells;
levels 0-2 give 21 candidates). With `half_offsets`, centres step by half a tile side, so level l has
(2^(l+1) - 1)^2 cells that overlap by half (levels 0-2: 1 + 9 + 49 = 59), the quadtree tiles among them.
Every candidate lies inside the scene. Order: level by level, row-major within a level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["candidate_grid"]


def candidate_grid(
    levels: Sequence[int] = (0, 1, 2), *, half_offsets: bool = False, device: torch.device | str | None = None
) -> Tensor:
    """[K, 3] candidate viewpoints (y, x, scale), level by level, row-major within a level."""
    if len(levels) == 0:
        raise ValueError("candidate_grid needs at least one level")
    rows = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 8:
            raise ValueError(f"candidate levels must be ints in [0, 8], got {level!r}")
        scale = 2.0**-level
        count = 2 ** (level + 1) - 1 if half_offsets else 2**level  # positions per axis
        step = scale if half_offsets else 2 * scale
        axis = -(1 - scale) + step * torch.arange(count, dtype=torch.float32, device=device)  # [n]
        ys, xs = torch.meshgrid(axis, axis, indexing="ij")  # [n, n] each
        scales = torch.full_like(ys, scale)
        rows.append(torch.stack([ys, xs, scales], dim=-1).reshape(-1, 3))  # [n*n, 3]
    return torch.cat(rows)  # [K, 3]
