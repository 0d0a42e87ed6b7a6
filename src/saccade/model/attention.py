"""The one multi-head attention with RoPE, shared by backbone self-attention and Canvas Attention.

`rope_attention` is the plain form (one fused SDPA call). `streamed_attention` computes the same
softmax attention when the keys and values arrive in blocks, keeping a running max, a running sum and
an unnormalised output per query (the "online softmax" of Milakov & Gimelshein 2018, as in
flash-decoding): a Read streams the canvas this way, so LayerNorm, RoPE and the scores of one block
stay in cache and no canvas-sized key, value or score tensor is ever made.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.model.rope import RopeTable, apply_rope

__all__ = ["merge_heads", "rope_attention", "split_heads", "streamed_attention"]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """[B, N, D] -> [B, heads, N, Dh], a view."""
    B, N, D = x.shape
    return x.view(B, N, num_heads, D // num_heads).transpose(1, 2)  # [B, heads, N, Dh]


def merge_heads(x: Tensor) -> Tensor:
    """[B, heads, N, Dh] -> [B, N, heads * Dh] (a view when x is a transposed token-major tensor, as SDPA returns)."""
    B, heads, N, Dh = x.shape
    return x.transpose(1, 2).reshape(B, N, heads * Dh)  # [B, N, D]


def rope_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    num_heads: int,
    q_rope: RopeTable | None,
    k_rope: RopeTable | None,
) -> Tensor:
    """Softmax attention of q [B, Nq, D] over k, v [B, Nk, D] -> [B, Nq, D], scale 1/sqrt(D / heads).

    RoPE rotates the last tokens of q and k that the tables cover; k and v are cast to q's dtype
    (under autocast the canvas side stays float32 while the glimpse side may be bfloat16).
    """
    k = k.to(q.dtype)
    v = v.to(q.dtype)
    q_heads = split_heads(q, num_heads)  # [B, heads, Nq, Dh]
    k_heads = split_heads(k, num_heads)  # [B, heads, Nk, Dh]
    v_heads = split_heads(v, num_heads)  # [B, heads, Nk, Dh]
    if q_rope is not None:
        q_heads = apply_rope(q_heads, q_rope)
    if k_rope is not None:
        k_heads = apply_rope(k_heads, k_rope)
    out = F.scaled_dot_product_attention(q_heads, k_heads, v_heads)  # [B, heads, Nq, Dh]
    return merge_heads(out)  # [B, Nq, D]


def streamed_attention(q: Tensor, blocks: Iterable[tuple[Tensor, Tensor]]) -> Tensor:
    """softmax(q kᵀ / sqrt(Dh)) v for q [B, heads, Nq, Dh] over (k, v) blocks [B, heads, n_i, Dh] -> [B, heads, Nq, Dh].

    Exact up to float rounding: each block's scores are shifted by their own max, and the partial sums
    and outputs are rescaled to the running max as blocks arrive. Scores and sums are float32.
    """
    scale = q.shape[-1] ** -0.5
    running_max = running_sum = out = None
    for k, v in blocks:
        scores = (q @ k.to(q.dtype).transpose(-1, -2)).float() * scale  # [B, heads, Nq, n]
        block_max = scores.amax(dim=-1, keepdim=True)  # [B, heads, Nq, 1]
        weights = (scores - block_max).exp()  # [B, heads, Nq, n]
        block_sum = weights.sum(dim=-1, keepdim=True)  # [B, heads, Nq, 1]
        block_out = (weights.to(q.dtype) @ v.to(q.dtype)).float()  # [B, heads, Nq, Dh]
        if out is None:
            running_max, running_sum, out = block_max, block_sum, block_out
            continue
        new_max = torch.maximum(running_max, block_max)
        old_scale, block_scale = (running_max - new_max).exp(), (block_max - new_max).exp()  # [B, heads, Nq, 1]
        out = out * old_scale + block_out * block_scale
        running_sum = running_sum * old_scale + block_sum * block_scale
        running_max = new_max
    assert out is not None, "streamed_attention needs at least one block"
    return (out / running_sum).to(q.dtype)  # [B, heads, Nq, Dh]
