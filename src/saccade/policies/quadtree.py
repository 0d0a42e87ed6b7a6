"""Quadtree glimpse policies: C2F `coarse_to_fine` and F2C `fine_to_coarse` (paper §6; spec §2).

Level l tiles the scene with 2^l x 2^l square glimpses of scale 2^-l centred at (2r + 1) / 2^l - 1,
r = 0 .. 2^l - 1 on each axis: 4^l tiles that cover the scene exactly once. C2F visits levels 0, 1, ...
and F2C the reverse; within a level each batch item visits the tiles in its own random order, so
levels 0-2 give 1 + 4 + 16 = 21 glimpses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from saccade.geometry import Viewpoint, grid_coords
from saccade.policies._common import (
    check_batch_size,
    check_generator,
    check_num_levels,
    check_step,
    draw_device,
    output_device,
)

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = [
    "QuadtreePolicy",
    "coarse_to_fine",
    "fine_to_coarse",
    "level_of_step",
    "levels_for_steps",
    "quadtree_level",
    "tile_masks",
    "z_order_index",
]

TileOrder = Literal["row_major", "z_order"]


def _check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise ValueError(f"quadtree level must be an int >= 0, got {level!r}")
    return level


def z_order_index(level: int) -> Tensor:
    """[4^l] int64: row-major tile index of the i-th tile in Z (Morton) order, row bit above col bit."""
    _check_level(level)
    z = torch.arange(4**level)  # [4^l]
    row = torch.zeros_like(z)
    col = torch.zeros_like(z)
    for bit in range(level):
        row |= ((z >> (2 * bit + 1)) & 1) << bit
        col |= ((z >> (2 * bit)) & 1) << bit
    return row * 2**level + col  # [4^l]


def quadtree_level(level: int, *, order: TileOrder = "row_major", device: torch.device | str | None = None) -> Tensor:
    """[4^l, 3] tiles (y, x, scale) of quadtree level l, in row-major or Z (Morton) order."""
    _check_level(level)
    if order not in ("row_major", "z_order"):
        raise ValueError(f"order must be 'row_major' or 'z_order', got {order!r}")
    side = 2**level
    centers = grid_coords(side, device=device).reshape(-1, 2)  # [4^l, 2] (y, x) = (2r + 1) / 2^l - 1
    scales = torch.full((side * side, 1), 1.0 / side, device=device)  # [4^l, 1]
    tiles = torch.cat([centers, scales], dim=1)  # [4^l, 3] row-major
    if order == "z_order":
        tiles = tiles[z_order_index(level).to(tiles.device)]
    return tiles


def tile_masks(grid_size: int, level: int, *, device: torch.device | str | None = None) -> Tensor:
    """[4^l, G, G] bool: which cells of a G x G canvas each level-l tile (row-major) covers.

    A cell belongs to a tile when |cell centre - tile centre| <= tile scale on both axes; G must be a
    multiple of 2^l so that every tile covers whole cells and no cell centre lies on a tile border.
    """
    _check_level(level)
    side = 2**level
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1 or grid_size % side:
        raise ValueError(f"grid_size must be a positive multiple of 2^level = {side}, got {grid_size!r}")
    tile_of_cell = torch.arange(grid_size, device=device) * side // grid_size  # [G] tile row (or col) of each cell
    tiles = torch.arange(side, device=device)  # [2^l]
    rows = tiles[:, None, None, None] == tile_of_cell[None, None, :, None]  # [2^l, 1, G, 1]
    cols = tiles[None, :, None, None] == tile_of_cell[None, None, None, :]  # [1, 2^l, 1, G]
    return (rows & cols).reshape(side * side, grid_size, grid_size)  # [4^l, G, G]


def levels_for_steps(num_steps: int) -> int:
    """Fewest quadtree levels 0 .. L-1 whose sum of 4^l tiles lasts `num_steps` steps (21 steps: 3 levels)."""
    levels, steps = 0, 0
    while steps < num_steps:
        steps += 4**levels
        levels += 1
    return max(levels, 1)


def level_of_step(t: int, levels: list[int]) -> tuple[int, int]:
    """(level, index within that level) of step t when `levels` are visited in that order."""
    start = 0
    for level in levels:
        if t < start + 4**level:
            return level, t - start
        start += 4**level
    raise ValueError(f"step t={t} is beyond the {start} steps of quadtree levels {levels}")


class QuadtreePolicy:
    """C2F / F2C: quadtree levels in a fixed order, each item's tiles shuffled within every level.

    Every permutation is drawn when the policy is built (or reset): for each level in visiting order
    (levels of one tile draw nothing), one randperm(4^l) per batch item in item order. C2F permutes the
    Z-order enumeration of a level and F2C the row-major one. Either gives a uniformly random order;
    the enumeration and the draw order only matter for reproducing the authors' seeded sequences.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        fine_first: bool,
        num_levels: int = 3,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.num_levels = check_num_levels(num_levels)
        self.fine_first = bool(fine_first)
        self.name = "fine_to_coarse" if fine_first else "coarse_to_fine"
        self.levels = list(range(num_levels))[::-1] if fine_first else list(range(num_levels))
        self.num_steps: int | None = sum(4**level for level in self.levels)
        self.generator = check_generator(generator)
        self.device = output_device(generator, device)
        self.reset()

    def reset(self) -> None:
        """Draw a fresh tile order for every item and level (the generator stream continues)."""
        order: TileOrder = "row_major" if self.fine_first else "z_order"
        where = draw_device(self.generator, self.device)
        per_level = []
        for level in self.levels:
            tiles = quadtree_level(level, order=order, device=self.device)  # [n, 3]
            if len(tiles) == 1:
                per_level.append(tiles[None].expand(1, self.batch_size, 3))  # [1, B, 3]
                continue
            perms = [torch.randperm(len(tiles), generator=self.generator, device=where) for _ in range(self.batch_size)]
            order_per_item = torch.stack(perms, dim=1).to(self.device)  # [n, B]
            per_level.append(tiles[order_per_item])  # [n, B, 3]
        self._table = torch.cat(per_level, dim=0)  # [T, B, 3] (y, x, scale)

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint for step t; any t in [0, num_steps) once the episode is drawn."""
        check_step(t, name=self.name, num_steps=self.num_steps)
        return Viewpoint.from_yxs(self._table[t].clone())


def coarse_to_fine(
    batch_size: int,
    *,
    num_levels: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> QuadtreePolicy:
    """C2F: levels 0 .. num_levels - 1, coarsest first; sum of 4^l steps (21 for 3 levels)."""
    return QuadtreePolicy(batch_size, fine_first=False, num_levels=num_levels, generator=generator, device=device)


def fine_to_coarse(
    batch_size: int,
    *,
    num_levels: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> QuadtreePolicy:
    """F2C: the C2F levels in reverse, finest first, each shuffled within itself."""
    return QuadtreePolicy(batch_size, fine_first=True, num_levels=num_levels, generator=generator, device=device)
