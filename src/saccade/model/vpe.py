"""Viewpoint Encoding (paper App. B): a token that tells the backbone where the glimpse is.

z = (y / s, x / s, ln s) is scale-invariant and, at equal scale, translation-invariant. With a fixed
random-Fourier matrix F [D/2, 3] (N(0, 1), seed 42), the encoding is LayerNorm([cos(F z), sin(F z)]).
Computed in float32 with autocast off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from saccade.geometry import Viewpoint

__all__ = ["ViewpointEncoding"]

VPE_SEED = 42


class ViewpointEncoding(nn.Module):
    """Viewpoint [B] -> [B, D] encoding token."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"ViewpointEncoding needs an even width, got {dim}")
        generator = torch.Generator(device="cpu").manual_seed(VPE_SEED)
        self.register_buffer("frequencies", torch.randn(dim // 2, 3, generator=generator))  # [D/2, 3]
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        with torch.no_grad():
            self.norm.weight.fill_(1 / math.sqrt(dim))

    def forward(self, viewpoint: Viewpoint) -> Tensor:
        with torch.autocast(device_type=self.frequencies.device.type, enabled=False):
            centers = viewpoint.centers.float()  # [B, 2] (y, x)
            scales = viewpoint.scales.float()[:, None]  # [B, 1]
            z = torch.cat([centers / scales, scales.log()], dim=1)  # [B, 3] (y/s, x/s, ln s)
            phase = z @ self.frequencies.float().T  # [B, D/2]
            return self.norm(torch.cat([phase.cos(), phase.sin()], dim=1))  # [B, D]
