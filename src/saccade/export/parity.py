"""Parity of an exported glimpse step with the eager model: the largest output difference per batch size.

Each check runs a short recurrent chain (each side feeds its own new state back in), so it also shows
that the state outputs plug back in as inputs, and several batch sizes, which shows the batch is dynamic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from saccade.export.step import GlimpseStep

__all__ = ["ParityReport", "check_parity"]

Runner = Callable[..., Sequence[Tensor]]


@dataclass(frozen=True)
class ParityReport:
    """max |exported - eager| over all outputs and glimpses, per batch size."""

    runtime: str  # "onnx" or "torch-export"
    max_abs_diff: dict[int, float]  # batch size -> difference
    tolerance: float
    num_glimpses: int

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values())

    @property
    def ok(self) -> bool:
        return self.worst <= self.tolerance

    def summary(self) -> str:
        """One line: the difference at every batch size, against the tolerance."""
        diffs = ", ".join(f"batch {b}: {d:.3g}" for b, d in self.max_abs_diff.items())
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.runtime} vs eager, max abs diff over {self.num_glimpses} glimpses: {diffs} "
            f"(tolerance {self.tolerance:.0e}) {verdict}"
        )


@torch.no_grad()
def check_parity(
    step: GlimpseStep,
    run: Runner,
    *,
    runtime: str,
    tolerance: float,
    batch_sizes: Sequence[int] = (1, 3),
    num_glimpses: int = 2,
    seed: int = 0,
) -> ParityReport:
    """Compare `run(*inputs)` (an exported step) with `step(*inputs)` on seeded random inputs."""
    if not batch_sizes or num_glimpses < 1:
        raise ValueError(f"need batch sizes and num_glimpses >= 1, got {list(batch_sizes)}, {num_glimpses}")
    generator = torch.Generator().manual_seed(seed)
    diffs = {}
    for batch_size in batch_sizes:
        glimpse, centers, scales, canvas, recurrent_cls = step.example_inputs(batch_size, generator=generator)
        eager_state = exported_state = (canvas, recurrent_cls)
        worst = 0.0
        for t in range(num_glimpses):
            if t > 0:
                glimpse, centers, scales, _, _ = step.example_inputs(batch_size, generator=generator)
            expected = step(glimpse, centers, scales, *eager_state)
            got = run(glimpse, centers, scales, *exported_state)
            worst = max(worst, _max_abs_diff(expected, got, step.output_names))
            eager_state, exported_state = tuple(expected[:2]), tuple(got[:2])
        diffs[batch_size] = worst
    return ParityReport(runtime=runtime, max_abs_diff=diffs, tolerance=tolerance, num_glimpses=num_glimpses)


def _max_abs_diff(expected: Sequence[Tensor], got: Sequence[Tensor], names: Sequence[str]) -> float:
    if len(got) != len(expected):
        raise ValueError(f"exported step returned {len(got)} outputs, expected {len(expected)} {list(names)}")
    worst = 0.0
    for name, a, b in zip(names, expected, got, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"output {name}: exported shape {tuple(b.shape)} differs from eager {tuple(a.shape)}")
        worst = max(worst, (a.float() - b.to(a.device).float()).abs().max().item())
    return worst
