"""Pretraining readouts and per-position standardizers (paper §5).

A readout maps canvas patches (or the recurrent CLS) into the teacher's standardized feature space. The paper's is
LayerNorm + Linear applied token-wise (`LinearReadout`); `ContextReadout` (not in the paper) first lets the canvas
tokens attend to each other, so that a cell's prediction can use what the other cells hold.

A standardizer holds per-position, per-channel mean and population variance of teacher features: standardize
(x - mean) / sqrt(var + eps), destandardize is its inverse.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from saccade.model.linear import Linear

__all__ = ["ContextReadout", "LinearReadout", "Standardizer"]


class LinearReadout(nn.Module):
    """[..., D_in] -> [..., D_out] float32: LayerNorm (weight init 1/sqrt(D_in)) then Linear, autocast off."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim, eps=1e-5)
        self.proj = Linear(in_dim, out_dim)
        with torch.no_grad():
            self.norm.weight.fill_(1 / math.sqrt(in_dim))

    def forward(self, x: Tensor) -> Tensor:
        # float32 with autocast off, like the canvas: a caller's bfloat16 autocast would round the predictions.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.proj(self.norm(x.float()))


class ContextReadout(nn.Module):
    """[B, N, D_in] -> [B, N, D_out] float32: a learned embedding per token position, `num_blocks` pre-norm
    transformer blocks over all N tokens, then a LinearReadout; autocast off.

    Not in the paper. The teacher's patch features depend on the whole scene (its own mosaic of 1/16 tiles scores
    0.078 against them, benchmarks/teacher_tiles.py), so a token-wise readout of a canvas whose cells hold what each
    glimpse saw where it looked cannot turn a zoomed glimpse's detail into them; attention across the canvas can.
    The blocks' output maps start at zero, so at step 0 this is the LinearReadout of the position-shifted tokens.
    """

    def __init__(self, in_dim: int, out_dim: int, *, num_tokens: int, num_blocks: int, num_heads: int) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"ContextReadout needs num_blocks >= 1, got {num_blocks} (0 blocks is LinearReadout)")
        self.position = nn.Parameter(torch.randn(num_tokens, in_dim) * 0.02)  # [N, D_in]
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                in_dim, num_heads, 4 * in_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(num_blocks)
        )
        with torch.no_grad():
            for block in self.blocks:
                for output_map in (block.self_attn.out_proj, block.linear2):
                    output_map.weight.zero_()
                    output_map.bias.zero_()
        self.linear = LinearReadout(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != self.position.shape:
            raise ValueError(
                f"ContextReadout reads {tuple(self.position.shape)} tokens x width, got {tuple(x.shape[-2:])}"
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            tokens = x.float() + self.position  # [B, N, D_in]
            for block in self.blocks:
                tokens = block(tokens)
            return self.linear(tokens)


class Standardizer(nn.Module):
    """Per-position and per-channel statistics of N tokens of width D (N = 1 for a CLS token)."""

    def __init__(self, num_positions: int, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_positions, self.dim, self.eps = num_positions, dim, eps
        self.register_buffer("mean", torch.zeros(num_positions, dim))  # [N, D]
        self.register_buffer("var", torch.ones(num_positions, dim))  # [N, D]
        self.register_buffer("fitted", torch.tensor(False))
        self._fitted_seen: tuple[int, int] | None = None  # (storage, version) of `fitted` when it was last True

    @torch.no_grad()
    def fit(self, samples: Tensor) -> Standardizer:
        """Set mean and population variance from samples [S, N, D] (or [S, D] when N = 1)."""
        samples = self._as_tokens(samples, "samples").double()  # [S, N, D]
        if samples.shape[0] < 2:
            raise ValueError(f"need at least 2 samples to fit a standardizer, got {samples.shape[0]}")
        self.mean.copy_(samples.mean(dim=0))
        self.var.copy_(samples.var(dim=0, unbiased=False))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Raw [B, N, D] (or [B, D] when N = 1) -> standardized, same shape."""
        tokens = self._as_tokens(x, "x")
        self._check_fitted()
        out = (tokens - self.mean) / torch.sqrt(self.var + self.eps)
        return out.reshape(x.shape)

    def standardize(self, x: Tensor) -> Tensor:
        """The forward, through __call__ (so hooks see it)."""
        return self(x)

    def destandardize(self, x: Tensor) -> Tensor:
        """Standardized [B, N, D] (or [B, D] when N = 1) -> raw feature space, same shape."""
        tokens = self._as_tokens(x, "x")
        self._check_fitted()
        out = tokens * torch.sqrt(self.var + self.eps) + self.mean
        return out.reshape(x.shape)

    def _as_tokens(self, x: Tensor, name: str) -> Tensor:
        N, D = self.num_positions, self.dim
        if N == 1 and x.ndim == 2 and x.shape[1] == D:
            return x[:, None]  # [B, 1, D]
        if x.ndim != 3 or x.shape[1:] != (N, D):
            expected = f"[B, {N}, {D}]" + (f" or [B, {D}]" if N == 1 else "")
            raise ValueError(
                f"standardizer for {N} positions x {D} channels needs {name} {expected}, got {tuple(x.shape)}"
                + (" (was the canvas grid different from the teacher grid?)" if N > 1 else "")
            )
        return x

    def _check_fitted(self) -> None:
        # `fitted` is read once per value it holds (its version counter moves on fit and load), not once per call:
        # on an accelerator each read waits for the device
        if torch.compiler.is_compiling():
            return
        # inference tensors keep no version counter: read them every time
        seen = None if self.fitted.is_inference() else (self.fitted.data_ptr(), self.fitted._version)
        if seen is not None and seen == self._fitted_seen:
            return
        if not bool(self.fitted):
            raise RuntimeError("standardizer is not fitted: call fit(samples) or load fitted statistics")
        self._fitted_seen = seen
