"""Training a probe on frozen features, the paper's way (App. D.3; spec §4.1).

AdamW (lr 3e-4, weight decay 1e-3), a linear warmup from `warmup_start_ratio` x lr, then a cosine decay to 0
(DINOv3's WarmupOneCycleLR). Every batch goes through the feature source once: for CanViT an R-IID rollout of
T glimpses of the frozen model, so ONE probe is shared by all timesteps; the loss is the cross-entropy averaged
over the T timesteps (segmentation masks nearest-downsampled to the feature grid, `ignore_index` skipped;
classification at every glimpse). The T feature maps go through the probe as one batch, so the BatchNorm
statistics pool all timesteps. On fixed scenes (no augmentation), `saccade.probes.features.precompute` runs the
source once per scene and `PrecomputedFeatures` hands the stored T timesteps back, so a step costs the probe alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from saccade._checks import non_negative_int, positive_int
from saccade._schedule import warmup_cosine
from saccade.probes.features import FeatureSource

__all__ = [
    "ProbeTrainConfig",
    "ProbeTrainResult",
    "downsample_mask",
    "infinite_batches",
    "probe_loss",
    "train_probe",
]


@dataclass(frozen=True, kw_only=True)
class ProbeTrainConfig:
    """Optimisation of one probe (defaults: the paper's ADE20K probe, 40k steps of batch 16)."""

    steps: int = 40_000
    """Optimiser steps."""
    batch_size: int = 16
    """Scenes per step (each seen at every timestep of its rollout)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-3
    """AdamW weight decay."""
    warmup_steps: int = 1500
    """Linear warmup steps (clipped to `steps`)."""
    warmup_start_ratio: float = 1e-6
    """Learning rate at step 0, as a fraction of `lr`."""
    ignore_index: int = 255
    """Label value that carries no loss (segmentation)."""
    seed: int = 0
    """Seed of the data order and of the training rollouts' policy."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            positive_int(f"ProbeTrainConfig.{name}", getattr(self, name))
        non_negative_int("ProbeTrainConfig.warmup_steps", self.warmup_steps)
        if not self.lr > 0:
            raise ValueError(f"ProbeTrainConfig.lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"ProbeTrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 < self.warmup_start_ratio <= 1:
            raise ValueError(f"ProbeTrainConfig.warmup_start_ratio must be in (0, 1], got {self.warmup_start_ratio!r}")
        if not isinstance(self.ignore_index, int):
            raise ValueError(f"ProbeTrainConfig.ignore_index must be an int, got {self.ignore_index!r}")


@dataclass(frozen=True)
class ProbeTrainResult:
    """What a probe training run recorded."""

    losses: tuple[float, ...]  # [steps] training loss per step
    learning_rates: tuple[float, ...]  # [steps] learning rate used at each step


def downsample_mask(masks: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Label maps [B, H, W] -> [B, h, w] by nearest neighbour at the cell centres (no label mixing)."""
    if masks.ndim != 3:
        raise ValueError(f"masks must be [B, H, W], got {tuple(masks.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(masks.shape[-2:]) == size:
        return masks.long()
    # nearest-exact samples each output cell at its centre (plain "nearest" takes its top-left pixel);
    # labels <= 255 are exact in float32.
    resized = F.interpolate(masks[:, None].float(), size=size, mode="nearest-exact")  # [B, 1, h, w]
    return resized[:, 0].long()


def probe_loss(probe: nn.Module, features: list[Tensor], targets: Tensor, *, ignore_index: int = 255) -> Tensor:
    """Cross-entropy of the probe over all timesteps (features: T x [B, G, G, D] or T x [B, D]), averaged over T."""
    if not features:
        raise ValueError("features must hold at least one timestep")
    num_steps = len(features)
    logits = probe(torch.cat(features, dim=0))  # [T*B, C, G, G] or [T*B, C]
    if logits.ndim == 4:
        labels = downsample_mask(targets, tuple(logits.shape[-2:])).repeat(num_steps, 1, 1)  # [T*B, G, G]
        if not bool((labels != ignore_index).any()):
            return logits.sum() * 0.0  # nothing labelled in this batch: a zero loss that keeps the graph
        return F.cross_entropy(logits, labels.to(logits.device), ignore_index=ignore_index)
    labels = targets.long().repeat(num_steps)  # [T*B]
    return F.cross_entropy(logits, labels.to(logits.device))


def infinite_batches(
    dataset: Dataset, *, batch_size: int, generator: torch.Generator, num_workers: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled (scenes [B, 3, H, W], targets) batches, reshuffled every epoch, partial batches dropped."""
    if len(dataset) < batch_size:  # type: ignore[arg-type]
        raise ValueError(f"the training set has {len(dataset)} items, fewer than batch_size={batch_size}")  # type: ignore[arg-type]
    sampler = RandomSampler(dataset, generator=generator)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers)
    while True:
        yield from loader


def train_probe(
    probe: nn.Module,
    source: FeatureSource,
    batches: Iterable[tuple[Tensor, Tensor]],
    config: ProbeTrainConfig,
    *,
    progress: bool = True,
    description: str = "probe",
) -> ProbeTrainResult:
    """Train `probe` in place on `source` features of `batches` (an endless iterator) for config.steps steps."""
    device = next(probe.parameters()).device
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = partial(
        warmup_cosine,
        warmup_steps=min(config.warmup_steps, config.steps),
        total_steps=config.steps,
        start=config.warmup_start_ratio,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    iterator = iter(batches)
    losses, rates = [], []
    probe.train()
    bar = tqdm(range(config.steps), desc=description, disable=not progress, leave=False)
    for _ in bar:
        scenes, targets = next(iterator)
        features = source(scenes.to(device))  # T x [B, ...], no autograd graph (frozen source)
        loss = probe_loss(probe, features, targets.to(device), ignore_index=config.ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    probe.eval()
    return ProbeTrainResult(losses=tuple(losses), learning_rates=tuple(rates))
