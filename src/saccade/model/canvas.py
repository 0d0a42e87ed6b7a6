"""Canvas Attention (paper §4): asymmetric cross-attention between the glimpse stream and the canvas.

One template serves both directions: q = map_q(LN_q(query stream)), k = map_k(LN_kv(other)),
v = map_v(LN_kv(other)), out = map_o(attention(q, k, v)), added residually by the caller.

- Read (glimpse queries canvas): learned q (D_bb -> D_cv) and o (D_cv -> D_bb); k = v = LN(canvas).
- Write (canvas queries glimpse): learned k and v (D_bb -> D_cv); q = LN(canvas), no output map, so
  every canvas update is a softmax-weighted average of glimpse values.
- 'qkvo' (ablation): all four maps learned on both sides.

The canvas side thus never sees a projection, MLP or self-attention in the paper's model: only
LayerNorm, RoPE and residual addition, which keeps its cost linear in the number of canvas tokens.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from saccade.model.attention import rope_attention
from saccade.model.rope import RopeTable

__all__ = ["CanvasAttention", "canvas_read", "canvas_write"]

LAYERNORM_EPS = 1e-5
Map = Literal["q", "k", "v", "o"]


class CanvasAttention(nn.Module):
    """Cross-attention from a query stream (width query_dim) to a key/value stream (width kv_dim).

    The inner width is the canvas width; maps not in `learned` are identities (their two widths must
    then be the canvas width).
    """

    def __init__(
        self, *, query_dim: int, kv_dim: int, canvas_dim: int, num_heads: int, learned: frozenset[Map]
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_q = nn.LayerNorm(query_dim, eps=LAYERNORM_EPS)
        self.ln_kv = nn.LayerNorm(kv_dim, eps=LAYERNORM_EPS)
        shapes = {"q": (query_dim, canvas_dim), "k": (kv_dim, canvas_dim), "v": (kv_dim, canvas_dim)}
        shapes["o"] = (canvas_dim, query_dim)
        for name, (dim_in, dim_out) in shapes.items():
            if name in learned:
                layer: nn.Module = nn.Linear(dim_in, dim_out)
            elif dim_in == dim_out:
                layer = nn.Identity()
            else:
                raise ValueError(f"map {name!r} must be learned: it maps width {dim_in} to {dim_out}")
            self.add_module(f"{name}_map", layer)

    def forward(self, queries: Tensor, keys_values: Tensor, *, q_rope: RopeTable, k_rope: RopeTable) -> Tensor:
        """queries [B, Nq, D_q], keys_values [B, Nk, D_kv] -> update [B, Nq, D_q] (to add residually)."""
        q = self.q_map(self.ln_q(queries))  # [B, Nq, D_cv]
        kv = self.ln_kv(keys_values)  # [B, Nk, D_kv]
        k = self.k_map(kv)  # [B, Nk, D_cv]
        v = self.v_map(kv)  # [B, Nk, D_cv]
        out = rope_attention(q, k, v, num_heads=self.num_heads, q_rope=q_rope, k_rope=k_rope)
        return self.o_map(out)  # [B, Nq, D_q]


def canvas_read(
    *, backbone_dim: int, canvas_dim: int, num_heads: int, projections: str = "asymmetric"
) -> CanvasAttention:
    """Read: the glimpse stream queries the canvas."""
    learned: frozenset[Map] = frozenset("qkvo" if projections == "qkvo" else "qo")  # type: ignore[arg-type]
    return CanvasAttention(
        query_dim=backbone_dim, kv_dim=canvas_dim, canvas_dim=canvas_dim, num_heads=num_heads, learned=learned
    )


def canvas_write(
    *, backbone_dim: int, canvas_dim: int, num_heads: int, projections: str = "asymmetric"
) -> CanvasAttention:
    """Write: the canvas queries the glimpse stream."""
    learned: frozenset[Map] = frozenset("qkvo" if projections == "qkvo" else "kv")  # type: ignore[arg-type]
    return CanvasAttention(
        query_dim=canvas_dim, kv_dim=backbone_dim, canvas_dim=canvas_dim, num_heads=num_heads, learned=learned
    )
