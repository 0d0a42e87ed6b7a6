"""The ViT backbone that processes each glimpse (DINOv3 layout: pre-LN, LayerScale, no key bias).

There is no final LayerNorm and no absolute position embedding: positions enter through RoPE only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from saccade.model.attention import rope_attention
from saccade.model.config import ViTSpec
from saccade.model.linear import Linear, linear
from saccade.model.rope import RopeTable

__all__ = ["Block", "FusedQKV", "PatchEmbed", "ViTBackbone", "set_activation_checkpointing", "set_stochastic_depth"]

LAYERNORM_EPS = 1e-5


class PatchEmbed(nn.Module):
    """[B, 3, S, S] pixels -> [B, g*g, D] patch tokens, row-major, g = S / patch_size.

    Pixels of any float dtype are cast to the parameters' dtype (float32, exact from half precision); under
    autocast the convolution then runs in the autocast dtype.
    """

    def __init__(self, patch_size: int, embed_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixels: Tensor) -> Tensor:
        tokens = self.proj(pixels.to(self.proj.weight.dtype))  # [B, D, g, g]
        return tokens.flatten(2).transpose(1, 2)  # [B, g*g, D]


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class FusedQKV(Linear):
    """[B, N, D] -> [B, N, 3D] (q, k, v) with the key slice of the bias ignored: DINOv3 has no key bias, but its
    checkpoints (and ours) store a full [3D] bias."""

    def _bias_without_key(self) -> Tensor:
        q_bias, _, v_bias = self.bias.chunk(3)
        return torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])  # [3D]

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self._bias_without_key())  # [B, N, 3D]


class SelfAttention(nn.Module):
    """Fused qkv (no key bias), then an output proj."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = FusedQKV(dim, 3 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, rope: RopeTable) -> Tensor:
        qkv = self.qkv(x)  # [B, N, 3D]
        q, k, v = qkv.chunk(3, dim=-1)  # [B, N, D] each
        out = rope_attention(q, k, v, num_heads=self.num_heads, q_rope=rope, k_rope=rope)
        return self.proj(out)  # [B, N, D]


class MLP(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class Block(nn.Module):
    """x + gamma1 * Attn(LN1(x)), then + gamma2 * MLP(LN2(x)).

    `drop_path` (stochastic depth, training only; not part of the checkpoint): each residual branch is
    dropped for a whole batch item with this probability and scaled by 1 / (1 - drop_path) otherwise.
    """

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.attn = SelfAttention(dim, spec.num_heads)
        self.ls1 = LayerScale(dim, spec.layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.mlp = MLP(dim, spec.mlp_hidden_dim)
        self.ls2 = LayerScale(dim, spec.layerscale_init)
        self.drop_path = 0.0
        self.checkpoint_activations = False  # recompute this block's activations in backward (training only)

    def forward(self, x: Tensor, rope: RopeTable) -> Tensor:
        if self.checkpoint_activations and self.training and torch.is_grad_enabled():
            # non-reentrant: RopeTable arguments, nested autograd and torch.compile work; the RNG state of a
            # drop-path draw is restored for the recomputation, so it drops the same items
            return checkpoint(self._forward, x, rope, use_reentrant=False)
        return self._forward(x, rope)

    def _forward(self, x: Tensor, rope: RopeTable) -> Tensor:
        x = x + self._drop(self.ls1(self.attn(self.norm1(x), rope)))
        return x + self._drop(self.ls2(self.mlp(self.norm2(x))))  # [B, N, D]

    def _drop(self, branch: Tensor) -> Tensor:
        if not self.training or self.drop_path == 0:
            return branch
        keep = 1.0 - self.drop_path
        kept = branch.new_empty(branch.shape[0], 1, 1).bernoulli_(keep)  # [B, 1, 1], default RNG of the device
        return branch * kept / keep


class ViTBackbone(nn.Module):
    """Patch embedding and blocks; the CanViT step interleaves Canvas Attention between blocks."""

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        self.spec = spec
        self.patch_embed = PatchEmbed(spec.patch_size, spec.embed_dim)
        self.blocks = nn.ModuleList([Block(spec) for _ in range(spec.num_blocks)])
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DINOv3 init: trunc-normal(0.02) Linear weights, zero biases, LayerScale gammas, uniform patch conv."""
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
            elif isinstance(module, LayerScale):
                module.gamma.fill_(self.spec.layerscale_init)
        proj = self.patch_embed.proj
        bound = 1 / math.sqrt(proj.in_channels * self.spec.patch_size**2)
        nn.init.uniform_(proj.weight, -bound, bound)
        nn.init.uniform_(proj.bias, -bound, bound)


def set_activation_checkpointing(backbone: ViTBackbone, enabled: bool) -> None:
    """Recompute each block's activations in backward instead of keeping them (less memory, ~1/3 more compute)."""
    for block in backbone.blocks:
        block.checkpoint_activations = bool(enabled)


def set_stochastic_depth(backbone: ViTBackbone, rate: float) -> None:
    """Drop-path probability rising linearly over the blocks from 0 (first) to `rate` (last), as in DeiT."""
    if not 0 <= rate < 1:
        raise ValueError(f"stochastic depth rate must be in [0, 1), got {rate}")
    num_blocks = len(backbone.blocks)
    for index, block in enumerate(backbone.blocks):
        block.drop_path = rate * index / max(num_blocks - 1, 1)
