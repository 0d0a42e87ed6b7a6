"""nn.Linear with a faster CPU path: the same products through oneDNN's float32 GEMM.

On CPU in float32, `linear` calls oneDNN (the GEMM torch.compile's CPU backend uses) instead of MKL's
sgemm: on the glimpse stream's few rows (71 per item) it was 10-20 % faster on the AMD EPYC we measure
on, in the forward product and in the input-gradient product of backward (see docs/performance.md); the
weight gradient stays with MKL, which was faster there. Results differ from F.linear only by float
rounding (accumulation order). Under autocast, torch.compile or on other devices it is F.linear.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["Linear", "linear"]


@cache
def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and x.dim() >= 2
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and _onednn_available()
    )


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x [..., D_in] @ weight [D_out, D_in]ᵀ + bias by oneDNN; weight may be a transposed view."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """linear under autograd: oneDNN for the output and the input gradient, MKL for the weight gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn_linear(grad, weight.t(), None)  # [..., D_out] @ weight -> [..., D_in]
        grad_rows = grad.reshape(-1, grad.shape[-1])  # [rows, D_out]
        if ctx.needs_input_grad[1]:
            grad_weight = grad_rows.t() @ x.reshape(-1, x.shape[-1])  # [D_out, D_in]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(dim=0)  # [D_out]
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x [..., D_in] @ weight [D_out, D_in]ᵀ + bias [D_out] -> [..., D_out]."""
    if not _use_onednn(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _OneDNNLinear.apply(x, weight, bias)
    return _onednn_linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (same parameters and init) whose forward is `linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
