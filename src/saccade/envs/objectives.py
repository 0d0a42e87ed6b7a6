"""What a glimpse is worth: per-scene scores of a model state against the scene's targets (higher is better).

The reward of a glimpse is the rise of the score it brings: score(state after) - score(state before).
- `DistillationObjective`: mean over canvas cells of the cosine between the predicted standardized teacher
  patches and the standardized teacher patches (the pretraining validation metric, per scene). Targets are
  the raw teacher patches [B, h, w, D_t] or [B, h*w, D_t]; the canvas grid must equal the teacher grid.
- `SegmentationObjective`: minus the cross-entropy of a segmentation probe on the canvas against label maps
  [B, H, W] taken at the canvas cell centres (ignored labels skipped).
- `ClassificationObjective`: probability of the correct class [B] under a classification probe on the
  recurrent CLS.
`prepare` turns raw targets into what `score` compares with, once per episode.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.probes.train import downsample_mask

__all__ = [
    "OBJECTIVES",
    "ClassificationObjective",
    "DistillationObjective",
    "Objective",
    "SegmentationObjective",
]

OBJECTIVES = ("distillation", "segmentation", "classification")


@runtime_checkable
class Objective(Protocol):
    name: str

    def prepare(self, targets: Tensor) -> Tensor:
        """Raw targets of a batch of scenes -> the form `score` compares with."""
        ...

    def score(self, state: RecurrentState, prepared: Tensor) -> Tensor:
        """[B] float32 score of each scene's state, higher is better."""
        ...


class DistillationObjective:
    """Standardized patch cosine of a CanViTForPretraining's teacher-patch readout."""

    name = "distillation"

    def __init__(self, model: CanViTForPretraining) -> None:
        if not isinstance(model, CanViTForPretraining):
            raise TypeError(
                "the distillation objective needs a CanViTForPretraining (teacher readouts), "
                f"got {type(model).__name__}"
            )
        self.model = model

    def prepare(self, targets: Tensor) -> Tensor:
        """Raw teacher patches [B, h, w, D_t] or [B, h*w, D_t] -> standardized [B, h*w, D_t] float32."""
        grid, dim = self.model.teacher_patch_grid, self.model.teacher_dim
        if targets.ndim == 4:
            targets = targets.flatten(1, 2)  # [B, h*w, D_t]
        if targets.ndim != 3 or targets.shape[1:] != (grid * grid, dim):
            raise ValueError(
                f"teacher patches must be [B, {grid}, {grid}, {dim}] or [B, {grid * grid}, {dim}], "
                f"got {tuple(targets.shape)}"
            )
        return self.model.teacher_patch_standardizer(targets.float())

    def score(self, state: RecurrentState, prepared: Tensor) -> Tensor:
        self.model.check_grid(state.canvas_grid)
        predictions = self.model.predict_teacher_patches(state).float()  # [B, G*G, D_t]
        return F.cosine_similarity(predictions, prepared, dim=-1).mean(dim=1)  # [B]


class SegmentationObjective:
    """Minus the per-scene cross-entropy of a segmentation probe on the canvas (labels at the cell centres)."""

    name = "segmentation"

    def __init__(self, probe: nn.Module, *, ignore_index: int = 255) -> None:
        self.probe = probe
        self.ignore_index = ignore_index

    def prepare(self, targets: Tensor) -> Tensor:
        if targets.ndim != 3:
            raise ValueError(f"segmentation targets must be label maps [B, H, W], got {tuple(targets.shape)}")
        return targets.long()

    def score(self, state: RecurrentState, prepared: Tensor) -> Tensor:
        logits = self.probe(state.canvas_patch_grid()).float()  # [B, C, G, G]
        labels = downsample_mask(prepared, tuple(logits.shape[-2:])).to(logits.device)  # [B, G, G]
        loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="none")  # [B, G, G]
        labelled = (labels != self.ignore_index).float()  # [B, G, G]
        per_scene = (loss * labelled).sum(dim=(1, 2)) / labelled.sum(dim=(1, 2)).clamp_min(1.0)  # [B]
        return -per_scene


class ClassificationObjective:
    """Probability of the correct class under a classification probe on the recurrent CLS."""

    name = "classification"

    def __init__(self, probe: nn.Module) -> None:
        self.probe = probe

    def prepare(self, targets: Tensor) -> Tensor:
        if targets.ndim != 1:
            raise ValueError(f"classification targets must be class ids [B], got {tuple(targets.shape)}")
        return targets.long()

    def score(self, state: RecurrentState, prepared: Tensor) -> Tensor:
        probs = torch.softmax(self.probe(state.recurrent_cls[:, 0]).float(), dim=-1)  # [B, C]
        return probs.gather(1, prepared[:, None].to(probs.device))[:, 0]  # [B]
