"""A fixed, user-given glimpse sequence: one Viewpoint per step for every batch item (spec §2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.policies._common import check_batch_size, check_generator, check_step, output_device

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = ["FixedPolicy"]


def _as_table(viewpoints: Tensor | Sequence[Viewpoint]) -> Tensor:
    """[T, B, 3] (y, x, scale) from a [T, B, 3] tensor or a list of T Viewpoints of batch B."""
    if isinstance(viewpoints, Tensor):
        if viewpoints.ndim != 3 or viewpoints.shape[2] != 3 or not viewpoints.is_floating_point():
            raise ValueError(
                f"viewpoints must be a float [T, B, 3] (y, x, scale) tensor, got {viewpoints.dtype} "
                f"{tuple(viewpoints.shape)}"
            )
        return viewpoints.float()
    if isinstance(viewpoints, Viewpoint) or not isinstance(viewpoints, Sequence):
        raise TypeError(
            f"viewpoints must be a [T, B, 3] tensor or a list of Viewpoint, got {type(viewpoints).__name__}"
        )
    for t, viewpoint in enumerate(viewpoints):
        if not isinstance(viewpoint, Viewpoint):
            raise TypeError(f"viewpoints[{t}] must be a Viewpoint, got {type(viewpoint).__name__}")
    if len(viewpoints) == 0:
        raise ValueError("viewpoints must hold at least one step, got an empty list")
    sizes = {viewpoint.batch_size for viewpoint in viewpoints}
    if len(sizes) != 1:
        raise ValueError(f"every Viewpoint must have the same batch size, got {sorted(sizes)}")
    return torch.stack([viewpoint.to_yxs().float() for viewpoint in viewpoints])  # [T, B, 3]


class FixedPolicy:
    """Replays a given sequence: step t returns `viewpoints[t]`; the length is the sequence's."""

    name = "fixed"

    def __init__(
        self,
        batch_size: int,
        *,
        viewpoints: Tensor | Sequence[Viewpoint],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        # `generator` is accepted for a uniform factory signature and unused: nothing is random here.
        self.batch_size = check_batch_size(batch_size)
        self.device = output_device(check_generator(generator), device)
        table = _as_table(viewpoints).to(self.device)  # [T, B, 3]
        T, B, _ = table.shape
        if T == 0:
            raise ValueError("viewpoints must hold at least one step, got T = 0")
        if batch_size != B:
            raise ValueError(f"viewpoints have batch {B} ([T, B, 3] = {tuple(table.shape)}), expected {batch_size}")
        self._viewpoints = [Viewpoint.from_yxs(row) for row in table]  # validates every scale
        self.num_steps: int | None = T

    def reset(self) -> None:
        """Nothing to reset."""

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        check_step(t, name=self.name, num_steps=self.num_steps)
        return self._viewpoints[t]
