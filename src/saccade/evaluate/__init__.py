"""Evaluation of frozen CanViT (paper §6, App. D): per-glimpse metrics by policy and the passive-teacher comparison.

`metrics` (global mIoU, pixel accuracy, top-k, bootstrap intervals), `datasets` (ADE20K and ImageNet-style
folders, in-memory scenes), `benchmark` (the bundled Fashion-MNIST-on-photos benchmark), `curves` (the Curve
every harness returns), `measure` (the per-glimpse rollout loop), `runner` (probe metrics per policy and
timestep, passive teachers, FLOPs), `report` (the one writer of Markdown, CSV and plots) and `pipeline` (the whole
`saccade evaluate` run).
"""

from saccade.evaluate.benchmark import BENCHMARKS, Benchmark, BenchmarkConfig, build_benchmark
from saccade.evaluate.curves import Curve
from saccade.evaluate.datasets import ADE20K, ImageFolderClassification, SceneTensors
from saccade.evaluate.metrics import ConfusionMatrix, TopKAccuracy, bootstrap_ci, predict_segmentation
from saccade.evaluate.runner import EvalConfig, PassivePoint, evaluate_passive, evaluate_policies

__all__ = [
    "ADE20K",
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkConfig",
    "ConfusionMatrix",
    "Curve",
    "EvalConfig",
    "ImageFolderClassification",
    "PassivePoint",
    "SceneTensors",
    "TopKAccuracy",
    "bootstrap_ci",
    "build_benchmark",
    "evaluate_passive",
    "evaluate_policies",
    "predict_segmentation",
]
