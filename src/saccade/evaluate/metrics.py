"""Metrics of the paper's evaluations (App. D.3-D.4; spec §4.1): global mIoU, pixel accuracy, top-k, bootstrap CIs.

- mIoU is *global*: one confusion matrix accumulates every pixel of the whole evaluation set, then per class
  IoU = intersection / union from the summed counts, and the mean runs over the classes whose union is > 0
  (classes neither present nor predicted are skipped, not counted as 0 or 1). Pixels labelled `ignore_index`
  count nowhere. This is the ADE20K (mmseg / DINOv3) convention, not a mean of per-image scores.
- Segmentation logits are bilinearly upsampled to the label size before the argmax (`predict_segmentation`).
- Stochastic policies are run R times; `bootstrap_ci` gives the mean and the half-width of the 95% percentile
  bootstrap interval of that mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade._checks import positive_int

__all__ = [
    "ConfusionMatrix",
    "TopKAccuracy",
    "bootstrap_ci",
    "mean_iou_of",
    "predict_segmentation",
    "scene_confusions",
    "top_k_hits",
]


class ConfusionMatrix:
    """Accumulated [C, C] confusion counts (rows: true class, columns: predicted class)."""

    def __init__(self, num_classes: int, *, ignore_index: int = 255) -> None:
        positive_int("num_classes", num_classes)
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index ({ignore_index}) must not be a class id in [0, {num_classes})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # [C true, C predicted]

    def update(self, predictions: Tensor, targets: Tensor) -> None:
        """Add predicted class ids and target ids of the same shape (e.g. [B, H, W]); ignored targets are skipped."""
        if predictions.shape != targets.shape:
            raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ")
        C = self.num_classes
        targets = targets.reshape(-1).long().cpu()
        predictions = predictions.reshape(-1).long().cpu()
        keep = targets != self.ignore_index
        targets, predictions = targets[keep], predictions[keep]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= C):
            raise ValueError(f"target ids must be in [0, {C}) or {self.ignore_index}, got {targets.unique().tolist()}")
        if predictions.numel() and (int(predictions.min()) < 0 or int(predictions.max()) >= C):
            raise ValueError(f"predicted ids must be in [0, {C}), got {predictions.unique().tolist()}")
        counts = torch.bincount(targets * C + predictions, minlength=C * C)  # [C*C]
        self.matrix += counts.reshape(C, C)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another accumulator's counts (same classes)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.matrix += other.matrix

    @property
    def intersection(self) -> Tensor:
        """[C] true positives."""
        return self.matrix.diagonal()

    @property
    def union(self) -> Tensor:
        """[C] pixels labelled c or predicted c."""
        return self.matrix.sum(dim=0) + self.matrix.sum(dim=1) - self.matrix.diagonal()

    def per_class_iou(self) -> Tensor:
        """[C] float64 IoU per class; NaN where the class is neither present nor predicted."""
        union = self.union.double()
        iou = self.intersection.double() / union.clamp_min(1)
        return torch.where(union > 0, iou, torch.full_like(iou, float("nan")))

    def mean_iou(self) -> float:
        """Mean IoU over the classes with union > 0 (NaN before any labelled pixel)."""
        return float(mean_iou_of(self.matrix))

    def pixel_accuracy(self) -> float:
        """Correct / labelled pixels (NaN before any labelled pixel)."""
        total = int(self.matrix.sum())
        return float(self.intersection.sum()) / total if total else float("nan")


def top_k_hits(logits: Tensor, labels: Tensor, ks: Sequence[int]) -> Tensor:
    """[B, len(ks)] bool: whether each item's label is among its k best logits [B, C] (k > C: always)."""
    C = logits.shape[1]
    labels = labels.long().to(logits.device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C):
        raise ValueError(f"labels must be in [0, {C}), got {labels.unique().tolist()}")
    top = logits.topk(min(max(ks), C), dim=1).indices  # [B, k_max], best first
    hits = top == labels[:, None]  # [B, k_max]
    return torch.stack([hits[:, :k].any(dim=1) for k in ks], dim=1)  # [B, len(ks)]


class TopKAccuracy:
    """Accumulated top-k accuracies of classification logits."""

    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"ks must be positive ints, got {ks!r}")
        self.ks = tuple(ks)
        self.correct = dict.fromkeys(self.ks, 0)
        self.total = 0

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """logits [B, C], labels [B]; k larger than C counts every item as correct."""
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f"need logits [B, C] and labels [B], got {tuple(logits.shape)}, {tuple(labels.shape)}")
        hits = top_k_hits(logits, labels, self.ks)  # [B, len(ks)]
        for index, k in enumerate(self.ks):
            self.correct[k] += int(hits[:, index].sum())
        self.total += labels.numel()

    def accuracy(self, k: int = 1) -> float:
        """Fraction of items whose label is among the k best logits (NaN before any update)."""
        if k not in self.correct:
            raise ValueError(f"k={k} is not tracked; tracked: {self.ks}")
        return self.correct[k] / self.total if self.total else float("nan")


def scene_confusions(predictions: Tensor, targets: Tensor, num_classes: int, *, ignore_index: int = 255) -> Tensor:
    """[B, H, W] predicted and target ids -> [B, C, C] int64 confusion counts of each scene (ignored pixels skipped).

    Summed over scenes they give the ConfusionMatrix of the set; kept apart they let a bootstrap resample scenes.
    """
    if predictions.shape != targets.shape or predictions.ndim < 2:
        raise ValueError(
            f"need predictions and targets of one shape [B, ...], got {tuple(predictions.shape)}, "
            f"{tuple(targets.shape)}"
        )
    C = num_classes
    B = targets.shape[0]
    targets = targets.reshape(B, -1).long()
    predictions = predictions.reshape(B, -1).long().to(targets.device)
    keep = targets != ignore_index
    if bool((keep & ((targets < 0) | (targets >= C))).any()) or bool(((predictions < 0) | (predictions >= C)).any()):
        raise ValueError(f"class ids must be in [0, {C}) (targets may also be {ignore_index})")
    scene = torch.arange(B, device=targets.device)[:, None].expand_as(targets)  # [B, P]
    index = (scene * C * C + targets.clamp(0, C - 1) * C + predictions)[keep]  # [kept pixels]
    return torch.bincount(index, minlength=B * C * C).reshape(B, C, C).cpu()  # [B, C true, C predicted]


def mean_iou_of(confusion: Tensor) -> Tensor:
    """[..., C, C] confusion counts -> [...] float64 mIoU over the classes with union > 0 (as ConfusionMatrix)."""
    confusion = confusion.double()
    intersection = confusion.diagonal(dim1=-2, dim2=-1)  # [..., C]
    union = confusion.sum(-2) + confusion.sum(-1) - intersection  # [..., C]
    present = union > 0
    iou = torch.where(present, intersection / union.clamp_min(1), torch.zeros_like(union))
    return iou.sum(-1) / present.sum(-1)  # NaN where no class is present


def predict_segmentation(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """logits [B, C, h, w] -> class ids [B, H, W]: bilinear upsampling to `size` = (H, W), then argmax."""
    if logits.ndim != 4:
        raise ValueError(f"logits must be [B, C, h, w], got {tuple(logits.shape)}")
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)  # [B, C, H, W]
    return logits.argmax(dim=1)  # [B, H, W]


def bootstrap_ci(
    values: Tensor | Sequence[float],
    *,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean over runs and the half-width of its percentile bootstrap interval.

    Args:
        values: [R] or [R, T] per-run metrics (R runs, optionally T timesteps).
    Returns:
        (mean, half_width), each [] or [T] float64; the half-width is NaN with fewer than 2 runs.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    positive_int("num_resamples", num_resamples)
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.ndim not in (1, 2) or values.shape[0] < 1:
        raise ValueError(f"values must be [R] or [R, T] with R >= 1, got {tuple(values.shape)}")
    mean = values.mean(dim=0)
    num_runs = values.shape[0]
    if num_runs < 2:
        return mean, torch.full_like(mean, float("nan"))
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    picks = torch.randint(num_runs, (num_resamples, num_runs), generator=generator)  # [S, R]
    resampled = values[picks].mean(dim=1)  # [S] or [S, T]
    alpha = 1.0 - confidence
    bounds = torch.quantile(resampled, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64), dim=0)
    return mean, (bounds[1] - bounds[0]) / 2
