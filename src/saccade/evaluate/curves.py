"""Curve: one metric of one policy after each glimpse, its mean and 95 % interval (the paper's §6 tables and figures).

Every per-glimpse harness returns Curves: `saccade evaluate` (probe metrics), distillation scoring and pretraining
validation (standardized cosines), and `saccade evaluate-policy` (objective scores, with paired differences).
The interval comes from one of two bootstraps, and `Curve.interval` says which:

* `over_runs`: the half-width of the bootstrap over runs of the per-run values [R, T] (a metric that is global over
  the test set, such as the global mIoU of a run); one run has no interval (NaN);
* `over_scenes`: the percentile bootstrap over scenes and runs of per-scene samples [R, N, T]
  (`saccade.evaluate.intervals`), and `paired_difference` for two policies on the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from saccade.evaluate.intervals import Metric, bootstrap, difference, mean_over_scenes
from saccade.evaluate.metrics import bootstrap_ci

__all__ = ["OVER_RUNS", "OVER_SCENES", "Curve", "over_runs", "over_scenes", "paired_difference"]

OVER_RUNS = "runs"
OVER_SCENES = "scenes and runs"


@dataclass(frozen=True, kw_only=True)
class Curve:
    """One metric of one policy per glimpse t, with its mean and 95 % interval."""

    policy: str  # the policy's label: its paper name, or the name the harness was given
    metric: str  # e.g. 'mIoU', 'top-1', 'standardized patch cosine'
    task: str  # e.g. 'segmentation', 'classification', 'distillation'
    mean: Tensor  # [T] float64
    low: Tensor  # [T] float64, NaN where there is no interval (one run, no per-scene samples)
    high: Tensor  # [T] float64
    interval: str  # what the interval resamples: OVER_RUNS or OVER_SCENES
    num_runs: int
    runs: Tensor | None = None  # [R, T] per-run values, where the metric is global over the test set
    scenes: Tensor | None = None  # [R, N, T, ...] per-scene samples (cosines, scores, or [C, C] confusion counts)
    gflops_per_glimpse: float | None = None  # CanViT glimpse step + readout, where known
    percent: bool = False  # values are fractions, reported in %

    def __post_init__(self) -> None:
        assert self.mean.shape == self.low.shape == self.high.shape and self.mean.ndim == 1, (
            f"mean, low, high must be [T], got {tuple(self.mean.shape)}, {tuple(self.low.shape)}, "
            f"{tuple(self.high.shape)}"
        )

    @property
    def num_glimpses(self) -> int:
        return self.mean.shape[0]

    @property
    def half_width(self) -> Tensor:
        """[T] half the width of the interval (NaN without one)."""
        return (self.high - self.low) / 2

    @property
    def best_t(self) -> int:
        return int(self.mean.argmax())


def over_runs(
    runs: Tensor,
    *,
    policy: str,
    metric: str,
    task: str,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
    **fields,
) -> Curve:
    """A Curve of per-run values [R, T]: their mean and the bootstrap half-width over runs (NaN for one run).

    `fields`: the optional Curve fields (scenes, gflops_per_glimpse, percent).
    """
    generator = torch.Generator().manual_seed(seed)
    mean, half = bootstrap_ci(runs, confidence=confidence, num_resamples=num_resamples, generator=generator)
    return Curve(
        policy=policy,
        metric=metric,
        task=task,
        mean=mean,
        low=mean - half,
        high=mean + half,
        interval=OVER_RUNS,
        num_runs=runs.shape[0],
        runs=runs,
        **fields,
    )


def over_scenes(
    scenes: Tensor,
    *,
    policy: str,
    metric: str,
    task: str,
    reduce: Metric = mean_over_scenes,
    confidence: float = 0.95,
    num_resamples: int = 1000,
    seed: int = 0,
    **fields,
) -> Curve:
    """A Curve of per-scene samples [R, N, T, ...]: reduce(scenes) [T] and its percentile bootstrap over scenes and
    runs. `fields`: the optional Curve fields (gflops_per_glimpse, percent)."""
    interval = bootstrap(reduce, scenes, confidence=confidence, num_resamples=num_resamples, seed=seed)
    return Curve(
        policy=policy,
        metric=metric,
        task=task,
        mean=interval.mean,
        low=interval.low,
        high=interval.high,
        interval=OVER_SCENES,
        num_runs=scenes.shape[0],
        scenes=scenes,
        **fields,
    )


def paired_difference(
    curve: Curve,
    baseline: Curve,
    *,
    reduce: Metric = mean_over_scenes,
    confidence: float = 0.95,
    num_resamples: int = 1000,
    seed: int = 0,
) -> Curve:
    """curve - baseline per glimpse, with the paired interval (both resampled on the same scenes)."""
    if curve.scenes is None or baseline.scenes is None:
        raise ValueError(f"a paired difference needs per-scene samples; {curve.policy} or {baseline.policy} has none")
    interval = difference(
        reduce, curve.scenes, baseline.scenes, confidence=confidence, num_resamples=num_resamples, seed=seed
    )
    return Curve(
        policy=f"{curve.policy} − {baseline.policy}",
        metric=curve.metric,
        task=curve.task,
        mean=interval.mean,
        low=interval.low,
        high=interval.high,
        interval=OVER_SCENES,
        num_runs=max(curve.num_runs, baseline.num_runs),  # each side resamples its own runs
        percent=curve.percent,
    )
