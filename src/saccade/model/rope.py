"""Scene-relative 2D RoPE (paper §4, "SR-RoPE"): rotary position embedding at scene coordinates.

For head dim h there are n_f = h / 4 periods p_k = base^(k / n_f). A position (y, x) gets the angles
2 pi y / p_k followed by 2 pi x / p_k (h / 2 angles), repeated twice to length h. A vector is rotated
as v * cos + rotate_half(v) * sin, so dims i and i + h / 2 form a rotation pair. Prefix tokens (those
before the positioned ones) pass unchanged. Everything is float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RopeTable", "apply_rope", "rope_periods", "rope_table"]


@dataclass(frozen=True)
class RopeTable:
    """cos / sin tables [B or 1, N, Dh] for the last N tokens of a sequence."""

    cos: Tensor  # [B or 1, N, Dh]
    sin: Tensor  # [B or 1, N, Dh]

    @property
    def num_tokens(self) -> int:
        return self.cos.shape[-2]


def rope_periods(head_dim: int, base: float, *, device: torch.device | str | None = None) -> Tensor:
    """[head_dim / 4] periods base^(k / n_f), k = 0 .. n_f - 1."""
    if head_dim % 4:
        raise ValueError(f"2D RoPE needs a head dim divisible by 4, got {head_dim}")
    num_freqs = head_dim // 4
    exponents = torch.arange(num_freqs, dtype=torch.float32, device=device) / num_freqs  # [n_f]
    return base**exponents  # [n_f]


def rope_table(positions: Tensor, head_dim: int, base: float) -> RopeTable:
    """Tables for `positions` [..., N, 2] (y, x) in scene coordinates -> cos / sin [..., N, head_dim]."""
    periods = rope_periods(head_dim, base, device=positions.device)  # [n_f]
    positions = positions.float()
    angles_y = 2 * math.pi * positions[..., 0:1] / periods  # [..., N, n_f]
    angles_x = 2 * math.pi * positions[..., 1:2] / periods  # [..., N, n_f]
    half = torch.cat([angles_y, angles_x], dim=-1)  # [..., N, Dh / 2]
    angles = torch.cat([half, half], dim=-1)  # [..., N, Dh]
    return RopeTable(cos=angles.cos(), sin=angles.sin())


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: Tensor, table: RopeTable) -> Tensor:
    """Rotate the last N tokens of `x` [B, heads, N_total, Dh] in float32; leading prefix tokens pass unchanged."""
    num_positioned = table.num_tokens
    num_prefix = x.shape[-2] - num_positioned
    assert num_prefix >= 0, f"{num_positioned} positions for {x.shape[-2]} tokens"
    cos = table.cos[:, None]  # [B or 1, 1, N, Dh]
    sin = table.sin[:, None]  # [B or 1, 1, N, Dh]
    positioned = x[..., num_prefix:, :].float()  # [B, heads, N, Dh]
    rotated = (positioned * cos + _rotate_half(positioned) * sin).to(x.dtype)
    if num_prefix == 0:
        return rotated
    return torch.cat([x[..., :num_prefix, :], rotated], dim=-2)  # [B, heads, N_total, Dh]
