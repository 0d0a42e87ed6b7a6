"""Per-timestep, per-policy evaluation of probed CanViT rollouts, and of passive teachers (paper §6, App. D.2-D.4).

For every policy, the frozen CanViT runs T glimpses over each test scene; after every glimpse the probe
decodes the canvas (segmentation, logits upsampled to the label size) or the recurrent CLS (classification),
and one accumulator per timestep gathers the whole test set: global mIoU and pixel accuracy, or top-1/top-5.
Random-order policies (R-IID, F-IID, and C2F / F2C, whose tile order within a level is random; the PolicySpec
says) run `num_runs` times, run r seeded with seed + r, and report the mean and the 95% bootstrap half-width;
deterministic ones (RFS, EG-C2F) run once. A policy whose needs are not given (EG-C2F without a segmentation
probe) is skipped with one warning. EG-C2F is steered by the segmentation probe's predictive entropy on the
canvas. Segmentation curves keep every scene's confusion counts (Curve.scenes), for intervals over test scenes.

The passive baseline is a teacher seeing the whole scene once at each of several input sizes, decoded by the
same probe recipe; its cost is FLOPs per image (teacher + probe), beside CanViT's FLOPs per glimpse.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.evaluate.curves import Curve, over_runs
from saccade.evaluate.measure import PolicyRuns, Score, measure
from saccade.evaluate.metrics import (
    ConfusionMatrix,
    TopKAccuracy,
    mean_iou_of,
    predict_segmentation,
    scene_confusions,
    top_k_hits,
)
from saccade.flops import glimpse_flops, seg_probe_flops
from saccade.model.canvit import CanViT, RecurrentState
from saccade.policies import POLICIES, PolicyContext, PolicySpec, resolve_policy, run_seeds, select_policies
from saccade.probes.features import TeacherFeatureSource
from saccade.probes.heads import ProbeTask

__all__ = [
    "PASSIVE_NAME",
    "EvalConfig",
    "PassivePoint",
    "canvit_flops_per_glimpse",
    "evaluate_passive",
    "evaluate_policies",
    "measured_teacher_flops",
    "probe_flops",
]

PASSIVE_NAME = "teacher"


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Rollout evaluation settings (defaults: the paper's ADE20K protocol)."""

    policies: tuple[str, ...] = ("C2F", "F2C", "R-IID", "F-IID", "RFS", "EG-C2F")
    """Policies to evaluate, by paper or official name."""
    episode: EpisodeConfig = EPISODES["paper"]
    """Glimpse side, canvas grid and T, the glimpses per rollout (scene_px is the benchmark's business)."""
    num_runs: int = 10
    """Runs of each random-order policy (R-IID, F-IID, C2F, F2C); deterministic ones run once."""
    batch_size: int = 16
    """Scenes per rollout batch."""
    seed: int = 0
    """Base seed of the random-order policies (run r of a policy uses seed + r)."""
    ignore_index: int = 255
    """Label value excluded from the segmentation metrics."""
    confidence: float = 0.95
    """Confidence of the bootstrap interval over runs."""
    num_resamples: int = 10_000
    """Bootstrap resamples."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", tuple(self.policies))
        if not self.policies:
            raise ValueError("EvalConfig.policies must name at least one policy")
        for policy in self.policies:
            try:
                resolve_policy(policy)
            except ValueError as error:
                raise ValueError(f"EvalConfig.policies: {error}") from None
        for name in ("num_runs", "batch_size", "num_resamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EvalConfig.{name} must be a positive int, got {value!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"EvalConfig.confidence must be in (0, 1), got {self.confidence!r}")
        episode = PolicyContext(
            batch_size=1, num_glimpses=self.episode.num_glimpses, canvas_grid=self.episode.canvas_grid
        )
        for policy in self.policies:  # before any rollout: EG-C2F would fail after the other policies ran
            spec = POLICIES[resolve_policy(policy)]
            try:
                spec.check(episode)
            except ValueError as error:
                raise ValueError(
                    f"EvalConfig: {error}; choose another canvas_grid or drop {spec.label} from policies"
                ) from None


@dataclass(frozen=True)
class PassivePoint:
    """The passive teacher at one input size."""

    task: ProbeTask
    metric: str
    input_px: int
    gflops: float  # teacher forward + probe, per image
    value: float  # in [0, 1]


# -- FLOPs -------------------------------------------------------------------------------------------


def probe_flops(task: ProbeTask, *, dim: int, num_classes: int, grid: int = 1) -> int:
    """FLOPs of a linear probe: the 1x1 conv on a grid x grid map, or the Linear on one vector."""
    if task == "segmentation":
        return seg_probe_flops(dim, grid, num_classes)
    return 2 * dim * num_classes


def canvit_flops_per_glimpse(
    model: CanViT, *, task: ProbeTask, glimpse_px: int, canvas_grid: int, num_classes: int
) -> int:
    """Analytic FLOPs of one glimpse step plus its probe readout (saccade.flops convention)."""
    config = model.config
    step = glimpse_flops(config, glimpse_px=glimpse_px, canvas_grid=canvas_grid).total
    dim = config.canvas_dim if task == "segmentation" else config.backbone.embed_dim
    return step + probe_flops(task, dim=dim, num_classes=num_classes, grid=canvas_grid)


def measured_teacher_flops(teacher: Any, input_px: int) -> int:
    """FLOPs of one teacher forward on an input_px² image: `teacher.flops(input_px)` if it has one, else counted.

    Counting uses torch's FlopCounterMode (matmuls and convs, 2 per multiply-accumulate, as saccade.flops), with
    the standard SDPA formula registered for the CPU attention kernel that torch 2.13 leaves uncounted.
    """
    analytic = getattr(teacher, "flops", None)
    if callable(analytic):
        return int(analytic(input_px))
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    custom = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa_flops}
    device = (
        next((p.device for p in teacher.parameters()), torch.device("cpu")) if isinstance(teacher, nn.Module) else "cpu"
    )
    images = torch.zeros(1, 3, input_px, input_px, device=device)  # [1, 3, px, px]
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        teacher(images)
    return int(counter.get_total_flops())


# -- rollouts ----------------------------------------------------------------------------------------


def _canvas_decoder(seg_probe: nn.Module) -> Callable[[RecurrentState], Tensor]:
    """EG-C2F's decoder: the segmentation probe's logits [B, C, G, G] on the canvas."""

    def decode(state: RecurrentState) -> Tensor:
        return seg_probe(state.canvas_patch_grid())  # [B, C, G, G] logits

    return decode


def _probe_score(probe: nn.Module, task: ProbeTask, num_classes: int, ignore_index: int) -> Score:
    """Per-scene score after a glimpse: confusion counts [B, C, C] of the canvas probe's segmentation, or top-1 /
    top-5 hits [B, 2] of the CLS probe."""

    def segmentation(state: RecurrentState, targets: Tensor) -> Tensor:
        logits = probe(state.canvas_patch_grid())  # [B, C, G, G]
        predicted = predict_segmentation(logits, tuple(targets.shape[-2:]))  # [B, H, W]
        return scene_confusions(predicted, targets, num_classes, ignore_index=ignore_index)  # [B, C, C]

    def classification(state: RecurrentState, targets: Tensor) -> Tensor:
        return top_k_hits(probe(state.recurrent_cls[:, 0]), targets, (1, 5)).double()  # [B, 2]

    return segmentation if task == "segmentation" else classification


def _per_run_values(samples: Tensor, task: ProbeTask) -> dict[str, Tensor]:
    """{metric: [R, T]} global metrics of each run from per-scene samples [R, N, T, ...] (summed over scenes)."""
    if task == "segmentation":
        total = samples.sum(dim=1)  # [R, T, C, C]
        pixel_accuracy = total.diagonal(dim1=-2, dim2=-1).sum(-1).double() / total.sum(dim=(-2, -1)).clamp_min(1)
        return {"mIoU": mean_iou_of(total), "pixel accuracy": pixel_accuracy}
    accuracy = samples.mean(dim=1)  # [R, T, 2]
    return {"top-1": accuracy[..., 0], "top-5": accuracy[..., 1]}


def _policy_runs(spec: PolicySpec, config: EvalConfig, decoder: Callable | None, device: torch.device) -> PolicyRuns:
    """The runs of one policy, seeded seed + run when its order is random; built per batch from one context."""

    def build(scenes: Tensor, targets: Tensor, generator: torch.Generator):
        context = PolicyContext(
            batch_size=scenes.shape[0],
            num_glimpses=config.episode.num_glimpses,
            canvas_grid=config.episode.canvas_grid,
            device=device,
            generator=generator,
            decoder=decoder,
        )
        return spec.build(context)

    return PolicyRuns(spec.label, run_seeds(spec, num_runs=config.num_runs, seed=config.seed), build)


def _policy_curves(
    canvit: CanViT,
    loader: DataLoader,
    runs: PolicyRuns,
    score: Score,
    config: EvalConfig,
    *,
    task: ProbeTask,
    gflops_per_glimpse: float,
    progress: bool,
) -> list[Curve]:
    """One Curve per metric of one policy: per-run global metrics, their mean and bootstrap interval over runs."""
    measured = measure(
        canvit, loader, [runs], score=score, episode=config.episode, progress=progress, description=f"{task} "
    )
    samples = measured[runs.label]  # [R, N, T, C, C] confusions, or [R, N, T, 2] top-k hits
    return [
        over_runs(
            per_run,
            policy=runs.label,
            metric=metric,
            task=task,
            confidence=config.confidence,
            num_resamples=config.num_resamples,
            seed=config.seed,
            scenes=samples,
            gflops_per_glimpse=gflops_per_glimpse,
            percent=True,
        )
        for metric, per_run in _per_run_values(samples, task).items()
    ]


def evaluate_policies(
    model: nn.Module,
    probe: nn.Module,
    dataset: Dataset,
    config: EvalConfig,
    *,
    task: ProbeTask,
    num_classes: int,
    seg_probe: nn.Module | None = None,
    progress: bool = True,
) -> list[Curve]:
    """Curves (one per policy and metric) of a probed frozen CanViT over `dataset`.

    Args:
        seg_probe: the segmentation probe that steers EG-C2F (default: `probe` itself for segmentation).
    """
    canvit = getattr(model, "canvit", model)
    if not isinstance(canvit, CanViT):
        raise TypeError(f"model must be a CanViT or hold one as .canvit, got {type(model).__name__}")
    seg_probe = probe if seg_probe is None and task == "segmentation" else seg_probe
    for module in (canvit, probe, seg_probe):
        if module is not None:
            module.eval()
    decoder = None if seg_probe is None else _canvas_decoder(seg_probe)
    policies, notes = select_policies(config.policies, {"decoder"} if decoder is not None else set())
    for note in notes:
        warnings.warn(note, stacklevel=2)
    episode, device = config.episode, next(probe.parameters()).device
    flops = canvit_flops_per_glimpse(
        canvit, task=task, glimpse_px=episode.glimpse_px, canvas_grid=episode.canvas_grid, num_classes=num_classes
    )
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False)
    score = _probe_score(probe, task, num_classes, config.ignore_index)
    curves = []
    for policy in policies:
        runs = _policy_runs(POLICIES[policy], config, decoder, device)
        curves += _policy_curves(
            canvit, loader, runs, score, config, task=task, gflops_per_glimpse=flops / 1e9, progress=progress
        )
    return curves


def evaluate_passive(
    teacher: Any,
    probe: nn.Module,
    dataset: Dataset,
    *,
    task: ProbeTask,
    input_px: int,
    num_classes: int,
    batch_size: int = 16,
    ignore_index: int = 255,
    progress: bool = True,
) -> list[PassivePoint]:
    """The probed teacher seeing every scene once at input_px: one point per metric."""
    source = TeacherFeatureSource(teacher, task=task, input_px=input_px)
    probe.eval()
    device = next(probe.parameters()).device
    meter: Any = ConfusionMatrix(num_classes, ignore_index=ignore_index) if task == "segmentation" else TopKAccuracy()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for scenes, targets in tqdm(loader, desc=f"teacher {input_px} px", disable=not progress, leave=False):
        (features,) = source(scenes.to(device))
        with torch.no_grad():
            logits = probe(features)
        if task == "segmentation":
            meter.update(predict_segmentation(logits, tuple(targets.shape[-2:])), targets)
        else:
            meter.update(logits, targets)
    dim = source.dim
    cost = measured_teacher_flops(teacher, input_px) + probe_flops(
        task, dim=dim, num_classes=num_classes, grid=source.grid_size
    )
    if task == "segmentation":
        values: Sequence[tuple[str, float]] = [("mIoU", meter.mean_iou()), ("pixel accuracy", meter.pixel_accuracy())]
    else:
        values = [("top-1", meter.accuracy(1)), ("top-5", meter.accuracy(5))]
    return [
        PassivePoint(task=task, metric=metric, input_px=input_px, gflops=cost / 1e9, value=value)
        for metric, value in values
    ]
