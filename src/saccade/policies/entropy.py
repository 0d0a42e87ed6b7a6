"""EG-C2F `entropy_coarse_to_fine`: C2F levels, tiles visited by greatest predictive entropy (paper §6; spec §2).

Step 0 is the full scene, without decoding. Then, level by level, the policy decodes the CURRENT canvas
(the state before the glimpse) with a user callable into per-cell class probabilities [B, C, G, G],
takes each cell's predictive entropy -sum_c p log p (nats), averages it over the cells of each tile of
the level (row-major tiles), and sends each batch item to its unvisited tile with the largest mean
(the first such tile on ties). The canvas grid G must be a power of two at least 2^level, so the
quadtree tiles cover whole canvas cells. The policy is deterministic given the decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.policies._common import (
    check_batch_size,
    check_generator,
    check_num_levels,
    check_step,
    output_device,
)
from saccade.policies.quadtree import level_of_step, quadtree_level

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = ["EntropyCoarseToFine", "check_canvas_grid", "predictive_entropy", "tile_mean_entropy"]


def check_canvas_grid(grid: tuple[int, int], level: int) -> None:
    """ValueError unless canvas grid (G, G) tiles into whole cells at quadtree `level`: G a power of two >= 2^level."""
    G, G2 = grid
    if G != G2 or G & (G - 1) or 2**level > G:
        raise ValueError(
            f"{EntropyCoarseToFine.name} needs a square power-of-two canvas grid G >= 2^level = {2**level}, "
            f"got G x G = {G} x {G2}"
        )


def predictive_entropy(scores: Tensor, *, from_logits: bool = False) -> Tensor:
    """[B, G, G] entropy in nats (float32) of class scores [B, C, G, G]: probabilities, or logits."""
    if scores.ndim != 4:
        raise ValueError(f"class scores must be [B, C, G, G], got {tuple(scores.shape)}")
    scores = scores.float()
    if from_logits:
        log_probs = torch.log_softmax(scores, dim=1)  # [B, C, G, G]
        return -(log_probs.exp() * log_probs).sum(dim=1)  # [B, G, G]
    return torch.special.entr(scores).sum(dim=1)  # [B, G, G]; entr(0) = 0


def tile_mean_entropy(entropy: Tensor, level: int) -> Tensor:
    """[B, 4^l] mean of per-cell `entropy` [B, G, G] over each level-l tile (row-major tiles)."""
    B, G, G2 = entropy.shape
    side = 2**level
    if G != G2 or G % side:
        raise ValueError(f"entropy must be [B, G, G] with G a multiple of 2^level = {side}, got {(B, G, G2)}")
    cells = G // side  # canvas cells per tile side
    blocks = entropy.reshape(B, side, cells, side, cells)  # [B, tile row, cell row, tile col, cell col]
    return blocks.mean(dim=(2, 4)).reshape(B, side * side)  # [B, 4^l]


class EntropyCoarseToFine:
    """EG-C2F: level 0, then per level the unvisited tile of greatest mean predictive entropy, per item.

    Args:
        canvas_to_probs: maps the model state before a glimpse to class probabilities [B, C, G, G]
            (logits with `from_logits=True`), e.g. a segmentation probe on the canvas.
        num_levels: quadtree levels 0 .. num_levels - 1; the policy lasts sum of 4^l steps.
    """

    name = "entropy_coarse_to_fine"

    def __init__(
        self,
        batch_size: int,
        *,
        canvas_to_probs: Callable[[RecurrentState], Tensor],
        from_logits: bool = False,
        num_levels: int = 3,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        # `generator` is accepted for a uniform factory signature and unused: the policy is deterministic.
        if not callable(canvas_to_probs):
            raise TypeError(f"canvas_to_probs must be callable, got {type(canvas_to_probs).__name__}")
        self.batch_size = check_batch_size(batch_size)
        self.canvas_to_probs = canvas_to_probs
        self.from_logits = bool(from_logits)
        self.num_levels = check_num_levels(num_levels)
        self.levels = list(range(num_levels))
        self.num_steps: int | None = sum(4**level for level in self.levels)
        self.device = output_device(check_generator(generator), device)
        self.reset()

    def reset(self) -> None:
        """Forget the visited tiles; the next step must be t = 0."""
        self._next_t = 0
        self._visited: Tensor | None = None  # [B, 4^l] bool for the current level
        self.last_tile_entropy: Tensor | None = None  # [B, 4^l] mean entropy of the latest decision

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint for step t, decoded from `state` (the model state before this glimpse) when t >= 1."""
        check_step(t, name=self.name, num_steps=self.num_steps, expected=self._next_t)
        level, index_in_level = level_of_step(t, self.levels)
        if level == 0:
            self._next_t += 1
            return Viewpoint.full_scene(self.batch_size, device=self.device)
        if state is None:
            raise ValueError(f"{self.name} decodes the current canvas: pass the model state to step({t}, state)")
        tile_entropy = tile_mean_entropy(self._decode_entropy(state, level), level)  # [B, 4^l]
        if index_in_level == 0:
            self._visited = torch.zeros_like(tile_entropy, dtype=torch.bool)  # [B, 4^l]
        assert self._visited is not None and self._visited.shape == tile_entropy.shape
        choice = tile_entropy.masked_fill(self._visited, -torch.inf).argmax(dim=1)  # [B], first max on ties
        self._visited[torch.arange(self.batch_size, device=choice.device), choice] = True
        self.last_tile_entropy = tile_entropy
        self._next_t += 1
        tiles = quadtree_level(level, device=choice.device)  # [4^l, 3] row-major
        return Viewpoint.from_yxs(tiles[choice]).to(self.device)

    def _decode_entropy(self, state: RecurrentState, level: int) -> Tensor:
        """[B, G, G] per-cell entropy of the decoder's output, after checking its shape."""
        with torch.no_grad():  # the choice is discrete: no gradient flows through the decoder
            scores = self.canvas_to_probs(state)
        if not isinstance(scores, Tensor) or not scores.is_floating_point() or scores.ndim != 4:
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"canvas_to_probs must return a float [B, C, G, G] tensor, got {got}")
        B, _, G, G2 = scores.shape
        if self.batch_size != B:
            raise ValueError(f"canvas_to_probs returned batch {B}, but the policy has batch_size={self.batch_size}")
        check_canvas_grid((G, G2), level)
        return predictive_entropy(scores, from_logits=self.from_logits)  # [B, G, G]
