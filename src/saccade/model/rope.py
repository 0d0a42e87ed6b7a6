"""Scene-relative 2D RoPE (paper §4, "SR-RoPE"): rotary position embedding at scene coordinates.

For head dim h there are n_f = h / 4 periods p_k = base^(k / n_f). A position (y, x) gets the angles
2 pi y / p_k followed by 2 pi x / p_k (h / 2 angles), repeated twice to length h. A vector is rotated
as v * cos + rotate_half(v) * sin, so dims i and i + h / 2 form a rotation pair. Prefix tokens (those
before the positioned ones) pass unchanged. Everything is float32.

Speed: a table can be padded once with identity rows (cos 1, sin 0) for the prefix tokens
(`with_prefix`), so a whole sequence, or any slice of it, is rotated by three elementwise ops with
no concatenation and no prefix bookkeeping; the identity rows return the prefix tokens exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RopeTable", "apply_rope", "rope_periods", "rope_table", "rotate"]


@dataclass(frozen=True)
class RopeTable:
    """cos / sin tables [B or 1, N, Dh] for the last N tokens of a sequence."""

    cos: Tensor  # [B or 1, N, Dh]
    sin: Tensor  # [B or 1, N, Dh]

    @property
    def num_tokens(self) -> int:
        return self.cos.shape[-2]

    def with_prefix(self, num_prefix: int) -> RopeTable:
        """The table for `num_prefix` unrotated tokens followed by these: identity rows first, [B or 1, P + N, Dh]."""
        if num_prefix == 0:
            return self
        *lead, _, head_dim = self.cos.shape
        ones = self.cos.new_ones(*lead, num_prefix, head_dim)  # [B or 1, P, Dh]
        return RopeTable(cos=torch.cat([ones, self.cos], dim=-2), sin=torch.cat([ones * 0, self.sin], dim=-2))

    def slice(self, start: int, stop: int) -> RopeTable:
        """Rows start .. stop - 1 (tokens of a block of the sequence)."""
        return RopeTable(cos=self.cos[..., start:stop, :], sin=self.sin[..., start:stop, :])


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


def _rotation_pairs(x: Tensor) -> tuple[Tensor, Tensor]:
    """The two members of every rotation pair, as views: dims i and i + Dh / 2 (the rotate-half layout)."""
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def _rotate_into(out: Tensor, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """out = x * cos + rotate_half(x) * sin in three ops, no temporaries: (a, b) -> (a cos - b sin, b cos + a sin)."""
    first, second = _rotation_pairs(x)
    sin_first, sin_second = _rotation_pairs(sin)
    torch.mul(x, cos, out=out)
    out_first, out_second = _rotation_pairs(out)
    out_first.addcmul_(second, sin_first, value=-1)
    out_second.addcmul_(first, sin_second)
    return out


class _Rotate(torch.autograd.Function):
    """RoPE as one autograd node: its backward is the inverse rotation (by -angle), computed the same way.

    Written out because autograd through in-place ops on the two halves would copy the whole gradient
    for each, and through the concatenating form would save and allocate several tensors per call.
    """

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        x32 = _at_least_float32(x)
        return _rotate_into(torch.empty_like(x32), x32, cos, sin).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        grad32 = _at_least_float32(grad)
        return _rotate_into(torch.empty_like(grad32), grad32, cos, -sin).to(grad.dtype), None, None


def _at_least_float32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x * cos + rotate_half(x) * sin over the last dim, in float32; cos / sin [.., Dh] broadcast to x [..., Dh]."""
    if torch.compiler.is_compiling():
        # the plain form, which Inductor fuses into one kernel: _Rotate's out= writes would break the graph
        x32 = _at_least_float32(x)
        first, second = _rotation_pairs(x32)
        return (x32 * cos + torch.cat([-second, first], dim=-1) * sin).to(x.dtype)
    return _Rotate.apply(x, cos, sin)


def apply_rope(x: Tensor, table: RopeTable) -> Tensor:
    """Rotate the last N tokens of `x` [B, heads, N_total, Dh] in float32; leading prefix tokens pass unchanged."""
    num_prefix = x.shape[-2] - table.num_tokens
    assert num_prefix >= 0, f"{table.num_tokens} positions for {x.shape[-2]} tokens"
    table = table.with_prefix(num_prefix)
    return rotate(x, table.cos[:, None], table.sin[:, None])  # [B, heads, N_total, Dh]
