"""95 % bootstrap intervals of per-glimpse metrics over test scenes and runs, for one policy or a paired difference.

A sample holds per-scene values of one policy, [R, N, T, ...]: R runs (policy seeds), N test scenes, T glimpses, then
the metric's own trailing dims (e.g. [C, C] confusion counts). A metric maps a sample, or a resampled one, to [T]:
`mean_over_scenes` for cosines [R, N, T], `global_mean_iou` for confusions [R, N, T, C, C] (the global mIoU of each
run, averaged over runs, as the evaluation reports it).

A resample draws N scenes with replacement and, for each sample separately, R runs with replacement. Two samples
compared (`difference`) share the scene draw, so the interval of their difference is paired: scene-to-scene spread
that both policies share does not widen it. A deterministic policy is one run (R = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from saccade.evaluate.metrics import mean_iou_of

__all__ = ["Interval", "Metric", "bootstrap", "difference", "global_mean_iou", "mean_over_scenes"]

Metric = Callable[[Tensor], Tensor]  # [R, N, T, ...] -> [T]
NUM_RESAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    """A per-glimpse estimate and its percentile bootstrap interval, each [T] float64."""

    mean: Tensor  # [T] the metric on the whole sample
    low: Tensor  # [T]
    high: Tensor  # [T]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "low": self.low.tolist(), "high": self.high.tolist()}


def mean_over_scenes(values: Tensor) -> Tensor:
    """[R, N, T] per-scene values -> [T] mean over runs and scenes."""
    return values.double().mean(dim=(0, 1))


def global_mean_iou(confusion: Tensor) -> Tensor:
    """[R, N, T, C, C] per-scene confusion counts -> [T]: mIoU of the scenes' summed counts, mean over runs."""
    return mean_iou_of(confusion.sum(dim=1)).mean(dim=0)


def bootstrap(
    metric: Metric, sample: Tensor, *, confidence: float = 0.95, num_resamples: int = NUM_RESAMPLES, seed: int = 0
) -> Interval:
    """metric(sample) [T] with its interval over scenes and runs."""
    return _percentiles(metric(sample), _resampled(metric, (sample,), num_resamples, seed), confidence)


def difference(
    metric: Metric,
    sample: Tensor,
    baseline: Tensor,
    *,
    confidence: float = 0.95,
    num_resamples: int = NUM_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """metric(sample) - metric(baseline) [T] with its paired interval (both resampled on the same scenes)."""
    if sample.shape[1] != baseline.shape[1]:
        raise ValueError(f"paired samples need the same scenes, got N = {sample.shape[1]} and {baseline.shape[1]}")
    draws = _resampled(metric, (sample, baseline), num_resamples, seed)
    return _percentiles(metric(sample) - metric(baseline), [a - b for a, b in draws], confidence)


def _resampled(metric: Metric, samples: tuple[Tensor, ...], num_resamples: int, seed: int) -> list:
    """num_resamples draws: metric of every sample on one shared scene draw (one tensor, or a tuple for several)."""
    if not samples[0].ndim >= 3 or any(s.shape[0] < 1 or s.shape[1] < 1 for s in samples):
        raise ValueError(f"a sample is [R >= 1, N >= 1, T, ...], got {[tuple(s.shape) for s in samples]}")
    generator = torch.Generator().manual_seed(seed)
    num_scenes = samples[0].shape[1]
    draws = []
    for _ in range(num_resamples):
        scenes = torch.randint(num_scenes, (num_scenes,), generator=generator)  # [N]
        values = []
        for sample in samples:
            runs = torch.randint(sample.shape[0], (sample.shape[0],), generator=generator)  # [R]
            values.append(metric(sample[runs][:, scenes]))
        draws.append(values[0] if len(values) == 1 else tuple(values))
    return draws


def _percentiles(estimate: Tensor, draws: list[Tensor], confidence: float) -> Interval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    stacked = torch.stack(draws).double()  # [S, T]
    alpha = (1 - confidence) / 2
    bounds = torch.quantile(stacked, torch.tensor([alpha, 1 - alpha], dtype=torch.float64), dim=0)  # [2, T]
    return Interval(mean=estimate.double(), low=bounds[0], high=bounds[1])
