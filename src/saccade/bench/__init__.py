"""Benchmarks (issue 8): our CanViT against the authors' canvit-pytorch 0.2.1, same weights, same run.

`run_bench(BenchConfig(...))` builds both implementations from one set of random weights (saved by
saccade.save_pretrained, loaded strictly into each), checks their outputs agree to 1e-5, times them
interleaved (latency.py), measures peak memory in fresh subprocesses (memory.py) and returns a
BenchReport (report.py) that writes JSON and Markdown. `saccade bench` is the command line.
Profile findings and the recorded results are in docs/performance.md.
"""

from __future__ import annotations

from saccade.bench.config import BenchConfig, GlimpseCase, PretrainCase
from saccade.bench.report import BenchReport, CaseResult
from saccade.bench.run import run_bench

__all__ = ["BenchConfig", "BenchReport", "CaseResult", "GlimpseCase", "PretrainCase", "run_bench"]
