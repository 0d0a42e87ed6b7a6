"""Pretraining readouts and per-position standardizers (paper §5).

A readout is LayerNorm + Linear applied token-wise; it maps canvas patches (or the recurrent CLS)
into the teacher's standardized feature space. A standardizer holds per-position, per-channel mean
and population variance of teacher features: standardize (x - mean) / sqrt(var + eps), destandardize
is its inverse.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from saccade.model.linear import Linear

__all__ = ["LinearReadout", "Standardizer"]


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
