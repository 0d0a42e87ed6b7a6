"""The one multi-head attention with RoPE, shared by backbone self-attention and Canvas Attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from saccade.model.rope import RopeTable, apply_rope

__all__ = ["rope_attention"]


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    B, N, D = x.shape
    return x.view(B, N, num_heads, D // num_heads).transpose(1, 2)  # [B, heads, N, Dh]


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
    B, Nq, D = q.shape
    k = k.to(q.dtype)
    v = v.to(q.dtype)
    q_heads = _split_heads(q, num_heads)  # [B, heads, Nq, Dh]
    k_heads = _split_heads(k, num_heads)  # [B, heads, Nk, Dh]
    v_heads = _split_heads(v, num_heads)  # [B, heads, Nk, Dh]
    if q_rope is not None:
        q_heads = apply_rope(q_heads, q_rope)
    if k_rope is not None:
        k_heads = apply_rope(k_heads, k_rope)
    out = F.scaled_dot_product_attention(q_heads, k_heads, v_heads)  # [B, heads, Nq, Dh]
    return out.transpose(1, 2).reshape(B, Nq, D)  # [B, Nq, D]
