"""Interleaved wall-clock timing and the machine's reference matmul rate.

Protocol: every implementation is called `warmup` times untimed; then rounds, each timing every
implementation once, alternating the order from round to round, so slow drifts of a shared machine (other
processes, thermal state, the allocator) hit both alike. A case stops adding rounds after `repeats`, or
after `budget_s` once `min_repeats` are done. We report the median and the minimum: the median is the
typical cost, the minimum the cost least disturbed by other load (the paper's App. F reports minima).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "matmul_gflops", "time_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of one implementation on one case."""

    times_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "times_ms": list(self.times_ms)}


def time_interleaved(
    runs: dict[str, Callable[[], object]],
    *,
    warmup: int,
    repeats: int,
    min_repeats: int = 1,
    budget_s: float = float("inf"),
) -> dict[str, Timing]:
    """Time each callable in alternating rounds; returns a Timing per name."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    spent = 0.0
    for round_index in range(repeats):
        if round_index >= min_repeats and spent > budget_s:
            break
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            runs[name]()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed * 1e3)
            spent += elapsed
    return {name: Timing(tuple(values)) for name, values in times.items()}


def matmul_gflops(size: int, *, warmup: int = 2, repeats: int = 9) -> tuple[float, float]:
    """(median, best) GFLOP/s of a float32 [size, size] @ [size, size] matmul (2 size^3 FLOPs)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    timing = time_interleaved({"matmul": lambda: torch.mm(a, b, out=out)}, warmup=warmup, repeats=repeats)["matmul"]
    flops = 2 * size**3
    return flops / timing.median_ms / 1e6, flops / timing.min_ms / 1e6
