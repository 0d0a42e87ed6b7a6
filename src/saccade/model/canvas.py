"""Canvas Attention (paper §4): asymmetric cross-attention between the glimpse stream and the canvas.

One template serves both directions: q = map_q(LN_q(query stream)), k = map_k(LN_kv(other)),
v = map_v(LN_kv(other)), out = map_o(attention(q, k, v)), added residually (by the caller to the glimpse
stream after a Read; by the Write module itself to the canvas, so that it can add in place).

- Read (glimpse queries canvas): learned q (D_bb -> D_cv) and o (D_cv -> D_bb); k = v = LN(canvas).
- Write (canvas queries glimpse): learned k and v (D_bb -> D_cv); q = LN(canvas), no output map, so
  every canvas update is a softmax-weighted average of glimpse values.
- 'qkvo' (ablation): all four maps learned on both sides.
- Write sink (`CanViTConfig.canvas_write_sink`, not in the paper, off by default): the softmax of a Write also
  runs over a null token of value zero, whose logit is a per-head affine function of the glimpse's zoom,
  `sink_logit + sink_zoom * log2(1 / scale)`. A cell then takes only part of a step, as much as its logits to
  the glimpse beat the sink's; without it every cell takes a full step towards the glimpse's values, however far
  it lies from where the glimpse looked (docs/main-job.md).

The canvas side thus never sees a projection, MLP or self-attention in the paper's model: only
LayerNorm, RoPE and residual addition, which keeps its cost linear in the number of canvas tokens.

Speed: every canvas-side op is token-wise except the attention itself, so both directions walk the
canvas in blocks of tokens (`canvas_block_tokens`). A Write block goes LN -> RoPE -> attention over
the glimpse -> residual add while it is in cache; a Read streams (k, v) blocks through the online
softmax of `streamed_attention`. Without blocks each op is a pass over the whole canvas in memory,
and on CPU every canvas-sized temporary above glibc's mmap threshold (32 MiB, G >= ~90 at batch 1)
is a fresh, page-faulted allocation; that, not arithmetic, dominated the large-canvas step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saccade.model.attention import merge_heads, rope_attention, split_heads, streamed_attention
from saccade.model.linear import Linear
from saccade.model.rope import RopeTable, apply_rope, rotate

__all__ = [
    "CanvasAttention",
    "CanvasRead",
    "CanvasWrite",
    "canvas_block_tokens",
    "canvas_blocks",
    "canvas_read",
    "canvas_write",
]

LAYERNORM_EPS = 1e-5
CPU_BLOCK_BYTES = 1 << 20
"""Canvas bytes per block on CPU: a block and its LN, RoPE and attention temporaries fit in L2."""
CPU_UNBLOCKED_BYTES = 8 << 20
"""Canvases up to this size (G = 32 at batch 1) stay cached anyway: one block, fewest ops (measured faster)."""
MIN_BLOCK_TOKENS = 64
"""Fewer tokens per block would make the per-block matmuls and the Python loop dominate."""
Map = Literal["q", "k", "v", "o"]


def canvas_blocks(canvas: Tensor, block: int) -> tuple[Tensor, ...]:
    """[B, M, D] -> consecutive [B, n <= block, D] token blocks: split, whose backward is one concatenation
    (slicing would zero-fill a canvas-sized gradient per block); the canvas itself when one block holds it."""
    return (canvas,) if block >= canvas.shape[1] else canvas.split(block, dim=1)


def canvas_block_tokens(canvas: Tensor) -> int:
    """Canvas tokens per block: about CPU_BLOCK_BYTES of a large canvas on CPU without autograd; else all of it.

    Accelerators' fused attention kernels already stream the canvas, under autograd every block's
    intermediates are kept for backward anyway (blocks only added graph nodes, measured slower), and
    torch.compile fuses the token-wise ops itself.
    """
    B, M, D = canvas.shape
    if canvas.device.type != "cpu" or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return M
    if canvas.nbytes <= CPU_UNBLOCKED_BYTES:
        return M
    return max(MIN_BLOCK_TOKENS, CPU_BLOCK_BYTES // (B * D * canvas.element_size()))


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
                layer: nn.Module = Linear(dim_in, dim_out)
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

    def _rotated_heads(self, x: Tensor, rope: RopeTable) -> Tensor:
        """Canvas-block queries or keys [B, n, D_cv] -> RoPE-rotated heads [B, heads, n, Dh] (rope: n rows)."""
        B, n, _ = x.shape
        x = x.view(B, n, self.num_heads, -1)  # [B, n, heads, Dh]: rotate token-major, contiguous
        return rotate(x, rope.cos[:, :, None], rope.sin[:, :, None]).transpose(1, 2)  # [B, heads, n, Dh]


class CanvasRead(CanvasAttention):
    """Read: the glimpse stream queries the canvas, which is streamed in blocks."""

    def forward(self, queries: Tensor, keys_values: Tensor, *, q_rope: RopeTable, k_rope: RopeTable) -> Tensor:
        """glimpse tokens [B, N, D_bb] read canvas [B, M, D_cv] -> update [B, N, D_bb]."""
        canvas = keys_values
        block = canvas_block_tokens(canvas)
        if block >= canvas.shape[1]:
            return super().forward(queries, canvas, q_rope=q_rope, k_rope=k_rope)
        q = self.q_map(self.ln_q(queries))  # [B, N, D_cv]
        q_heads = apply_rope(split_heads(q, self.num_heads), q_rope)  # [B, heads, N, Dh]
        canvas_rope = k_rope.with_prefix(canvas.shape[1] - k_rope.num_tokens)  # [1, M, Dh]
        out = streamed_attention(q_heads, self._keys_values(canvas, canvas_rope, block))  # [B, heads, N, Dh]
        return self.o_map(merge_heads(out))  # [B, N, D_bb]

    def _keys_values(self, canvas: Tensor, rope: RopeTable, block: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(k, v) heads [B, heads, n, Dh] of successive canvas blocks: RoPE(map_k(LN(block))), map_v(LN(block))."""
        start = 0
        for tokens in canvas_blocks(canvas, block):
            kv = self.ln_kv(tokens)  # [B, n, D_cv]
            stop = start + kv.shape[1]
            k = self._rotated_heads(self.k_map(kv), rope.slice(start, stop))  # [B, heads, n, Dh]
            yield k, split_heads(self.v_map(kv), self.num_heads)  # [B, heads, n, Dh] each
            start = stop


SINK_LOGIT_INIT = -20.0
"""A new sink's logit: e^-20 against logits of order one, so a fresh Write behaves as the paper's."""


class CanvasWrite(CanvasAttention):
    """Write: the canvas queries the glimpse stream, block by block of canvas tokens; the module returns the
    updated canvas (unlike a Read, whose update the caller adds), so the residual add can happen in place."""

    def __init__(self, *, sink: bool = False, **maps) -> None:
        super().__init__(**maps)
        self.sink_logit: nn.Parameter | None = None
        self.sink_zoom: nn.Parameter | None = None
        if sink:
            self.sink_logit = nn.Parameter(torch.full((self.num_heads,), SINK_LOGIT_INIT))  # [heads]
            self.sink_zoom = nn.Parameter(torch.zeros(self.num_heads))  # [heads] per unit of log2(1 / scale)

    def forward(
        self,
        canvas: Tensor,
        glimpse: Tensor,
        *,
        canvas_rope: RopeTable,
        glimpse_rope: RopeTable,
        zoom: Tensor | None = None,
        inplace: bool = False,
    ) -> Tensor:
        """canvas [B, M, D_cv] + Write(canvas, glimpse tokens [B, N, D_bb]) -> [B, M, D_cv] float32, block by block.

        `zoom` [B] is log2(1 / glimpse scale), needed with a sink (ignored without). Without autograd the result
        goes into one preallocated tensor, or into `canvas` itself when `inplace` (safe: a block's update depends
        only on that block and the glimpse).
        """
        updates = self._block_updates(canvas, glimpse, canvas_rope, glimpse_rope, zoom)
        if torch.is_grad_enabled():
            blocks = [(tokens + delta).float() for tokens, delta in updates]
            return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        out = canvas if inplace else torch.empty_like(canvas, dtype=torch.float32)
        for out_tokens, (tokens, delta) in zip(canvas_blocks(out, canvas_block_tokens(canvas)), updates, strict=True):
            torch.add(tokens, delta, out=out_tokens)
        return out

    def _block_updates(
        self, canvas: Tensor, glimpse: Tensor, canvas_rope: RopeTable, glimpse_rope: RopeTable, zoom: Tensor | None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """(canvas block [B, n, D_cv], its update [B, n, D_cv]) for successive blocks of canvas tokens."""
        kv = self.ln_kv(glimpse)  # [B, N, D_bb]
        k = apply_rope(split_heads(self.k_map(kv), self.num_heads), glimpse_rope)  # [B, heads, N, Dh]
        v = split_heads(self.v_map(kv), self.num_heads)  # [B, heads, N, Dh]
        k, v, sink_bias = self._with_sink(k, v, zoom)
        canvas_rope = canvas_rope.with_prefix(canvas.shape[1] - canvas_rope.num_tokens)  # [1, M, Dh]
        start = 0
        for tokens in canvas_blocks(canvas, canvas_block_tokens(canvas)):
            stop = start + tokens.shape[1]
            q = self.q_map(self.ln_q(tokens))  # [B, n, D_cv]
            q = self._rotated_heads(q, canvas_rope.slice(start, stop))  # [B, heads, n, Dh]
            mask = None if sink_bias is None else sink_bias.to(q.dtype)
            out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask)  # [B, heads, n, Dh]
            yield tokens, self.o_map(merge_heads(out))  # [B, n, D_cv]
            start = stop

    def _with_sink(self, k: Tensor, v: Tensor, zoom: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Keys and values [B, heads, N, Dh] with the sink appended as token N (key and value zero), and the
        additive logits [B, heads, 1, N + 1] that give it its logit (zero for the glimpse tokens); unchanged, and
        None, without a sink."""
        if self.sink_logit is None or self.sink_zoom is None:
            return k, v, None
        if zoom is None:
            raise ValueError("a Write with a sink needs the glimpse's zoom, log2(1 / scale)")
        B, heads, N, Dh = k.shape
        null = k.new_zeros(B, heads, 1, Dh)
        sink = self.sink_logit + zoom.float()[:, None] * self.sink_zoom  # [B, heads]
        bias = torch.cat([sink.new_zeros(B, heads, N), sink[:, :, None]], dim=-1)  # [B, heads, N + 1]
        return torch.cat([k, null], dim=2), torch.cat([v, null], dim=2), bias[:, :, None]


def canvas_read(*, backbone_dim: int, canvas_dim: int, num_heads: int, projections: str = "asymmetric") -> CanvasRead:
    """Read: the glimpse stream queries the canvas."""
    learned: frozenset[Map] = frozenset("qkvo" if projections == "qkvo" else "qo")  # type: ignore[arg-type]
    return CanvasRead(
        query_dim=backbone_dim, kv_dim=canvas_dim, canvas_dim=canvas_dim, num_heads=num_heads, learned=learned
    )


def canvas_write(
    *, backbone_dim: int, canvas_dim: int, num_heads: int, projections: str = "asymmetric", sink: bool = False
) -> CanvasWrite:
    """Write: the canvas queries the glimpse stream (and a null token, with a sink)."""
    learned: frozenset[Map] = frozenset("qkvo" if projections == "qkvo" else "kv")  # type: ignore[arg-type]
    return CanvasWrite(
        query_dim=canvas_dim,
        kv_dim=backbone_dim,
        canvas_dim=canvas_dim,
        num_heads=num_heads,
        learned=learned,
        sink=sink,
    )
