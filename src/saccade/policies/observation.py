"""What a learned glimpse policy sees: a compact view of the model state and of the glimpses so far.

Observation [B, F] (one vector per scene, also the gym environment's observation):
  pooled canvas      the canvas patches average-pooled to pool_grid x pool_grid cells, row-major  [p*p*D_cv]
  recurrent CLS                                                                                    [D_bb]
  step               one-hot of t, capped at max_glimpses                                          [max_glimpses + 1]
  past viewpoints    (y, x, scale, 1) of the last max_glimpses glimpses, oldest first, zero-padded [4 * max_glimpses]
  coverage           per cell of a coverage_grid^2 grid: glimpses that covered it / max_glimpses,
                     and the finest zoom -log2(scale) that covered it (-1 if never seen)           [2 * c*c]
Candidate features [B, K, F_c] (per candidate viewpoint, for the gain regressor):
  encoding           (y, x, scale, -log2 scale)                                                    [4]
  coverage           over the coverage cells inside the candidate: mean visits, mean and min zoom,
                     fraction never seen, candidate zoom - mean zoom                               [5]
  canvas             mean of the canvas patches whose cell centres lie inside the candidate        [D_cv]
A cell belongs to a viewpoint when its centre lies in the closed crop square.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.geometry import grid_coords

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = [
    "NUM_CANDIDATE_SCALARS",
    "ObservationConfig",
    "candidate_features",
    "cells_inside",
    "coverage_maps",
    "observation_features",
]

NUM_CANDIDATE_SCALARS = 9  # encoding (4) + coverage (5)


@dataclass(frozen=True, kw_only=True)
class ObservationConfig:
    """Sizes of the observation and candidate features."""

    max_glimpses: int = 10
    """Viewpoints kept in the history (the most recent ones); t is one-hot up to this value."""
    pool_grid: int = 2
    """The canvas is average-pooled to pool_grid x pool_grid cells (must divide the canvas grid)."""
    coverage_grid: int = 8
    """Side of the grid on which the coverage of past glimpses is tracked."""

    def __post_init__(self) -> None:
        for name in ("max_glimpses", "pool_grid", "coverage_grid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ObservationConfig.{name} must be a positive int, got {value!r}")

    def observation_dim(self, *, canvas_dim: int, cls_dim: int) -> int:
        """F, the width of `observation_features`."""
        T, p, c = self.max_glimpses, self.pool_grid, self.coverage_grid
        return p * p * canvas_dim + cls_dim + (T + 1) + 4 * T + 2 * c * c

    def candidate_dim(self, *, canvas_dim: int) -> int:
        """F_c, the width of `candidate_features`."""
        return NUM_CANDIDATE_SCALARS + canvas_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationConfig:
        return cls(**data)


def _check_history(history: Tensor, batch_size: int) -> None:
    if history.ndim != 3 or history.shape[0] != batch_size or history.shape[2] != 3:
        raise ValueError(f"history must be [B={batch_size}, t, 3] (y, x, scale), got {tuple(history.shape)}")


def cells_inside(viewpoints: Tensor, grid_size: int) -> Tensor:
    """[..., g*g] bool: which cells of a g x g grid have their centre inside each viewpoint [..., 3]."""
    cells = grid_coords(grid_size, device=viewpoints.device).reshape(-1, 2)  # [g*g, 2]
    offsets = (cells - viewpoints[..., None, :2]).abs()  # [..., g*g, 2]
    return (offsets <= viewpoints[..., None, 2:3] + 1e-6).all(dim=-1)  # [..., g*g]


def coverage_maps(history: Tensor, grid_size: int) -> tuple[Tensor, Tensor]:
    """(visits [B, g*g], finest zoom [B, g*g]) of the viewpoints history [B, t, 3]; zoom -1 where unseen."""
    B, t, _ = history.shape
    if t == 0:
        zeros = history.new_zeros(B, grid_size * grid_size)
        return zeros, zeros - 1
    inside = cells_inside(history, grid_size)  # [B, t, g*g]
    visits = inside.float().sum(dim=1)  # [B, g*g]
    zoom = -torch.log2(history[..., 2])  # [B, t]
    zoom_if_seen = torch.where(inside, zoom[..., None], torch.full_like(zoom[..., None], -1.0))  # [B, t, g*g]
    return visits, zoom_if_seen.amax(dim=1)  # [B, g*g] each


def observation_features(state: RecurrentState, history: Tensor, config: ObservationConfig) -> Tensor:
    """[B, F] observation of the state and the viewpoint history [B, t, 3] (float32)."""
    canvas = state.canvas_patch_grid().float()  # [B, G, G, D_cv]
    B, G, _, _ = canvas.shape
    _check_history(history, B)
    T, p = config.max_glimpses, config.pool_grid
    if G % p:
        raise ValueError(f"ObservationConfig.pool_grid={p} must divide the canvas grid G={G}")
    history = history.float()
    pooled = F.adaptive_avg_pool2d(canvas.permute(0, 3, 1, 2), p)  # [B, D_cv, p, p]
    pooled = pooled.permute(0, 2, 3, 1).reshape(B, -1)  # [B, p*p*D_cv] row-major cells
    step = F.one_hot(torch.tensor(min(history.shape[1], T), device=canvas.device), T + 1).float()  # [T + 1]
    recent = history[:, -T:] if history.shape[1] else history  # [B, <=T, 3]
    past = torch.zeros(B, T, 4, device=canvas.device)
    past[:, : recent.shape[1], :3] = recent
    past[:, : recent.shape[1], 3] = 1.0
    visits, zoom = coverage_maps(history, config.coverage_grid)  # [B, c*c] each
    parts = [pooled, state.recurrent_cls[:, 0].float(), step.expand(B, -1), past.reshape(B, -1), visits / T, zoom]
    return torch.cat(parts, dim=1)  # [B, F]


def candidate_features(state: RecurrentState, history: Tensor, candidates: Tensor, config: ObservationConfig) -> Tensor:
    """[B, K, F_c] features of candidate viewpoints [K, 3] given the state and history [B, t, 3]."""
    canvas = state.canvas_patches.float()  # [B, G*G, D_cv]
    B, _, _ = canvas.shape
    _check_history(history, B)
    if candidates.ndim != 2 or candidates.shape[1] != 3:
        raise ValueError(f"candidates must be [K, 3] (y, x, scale), got {tuple(candidates.shape)}")
    candidates = candidates.float().to(canvas.device)
    K = candidates.shape[0]
    zoom_candidate = -torch.log2(candidates[:, 2])  # [K]
    encoding = torch.cat([candidates, zoom_candidate[:, None]], dim=1)  # [K, 4]

    visits, zoom = coverage_maps(history.float(), config.coverage_grid)  # [B, c*c]
    inside = cells_inside(candidates, config.coverage_grid).float()  # [K, c*c]
    count = inside.sum(dim=1).clamp_min(1.0)  # [K]
    mean_visits = visits @ inside.T / count / config.max_glimpses  # [B, K]
    mean_zoom = zoom @ inside.T / count  # [B, K]
    masked_zoom = torch.where(inside.bool()[None], zoom[:, None, :], torch.full_like(zoom[:, None, :], 1e4))
    min_zoom = masked_zoom.amin(dim=2).clamp_max(1e3)  # [B, K]
    unseen = (zoom < 0).float() @ inside.T / count  # [B, K]
    coverage = torch.stack([mean_visits, mean_zoom, min_zoom, unseen, zoom_candidate - mean_zoom], dim=2)  # [B, K, 5]

    canvas_inside = cells_inside(candidates, state.canvas_grid).float()  # [K, G*G]
    weights = canvas_inside / canvas_inside.sum(dim=1, keepdim=True).clamp_min(1.0)  # [K, G*G]
    region = torch.einsum("kn,bnd->bkd", weights, canvas)  # [B, K, D_cv]
    return torch.cat([encoding.expand(B, K, 4), coverage, region], dim=2)  # [B, K, F_c]
