"""Distillation data: (scene, teacher patch features, teacher CLS) triples and a resumable batch order.

Any map-style dataset whose items are `(scene [3, H, W], patches [h, w, D] or [h*w, D], cls [D])` works
(the teacher-feature shard reader, or `TensorDistillationDataset` for data held in memory); a
`BatchedDistillationDataset` makes whole batches itself on the training device (the teacher in the loop). The batch
order is a pure function of (seed, step), so resuming at a step restores the data position exactly and
every data-parallel rank takes its own slice of the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "BatchedDistillationDataset",
    "DistillationBatch",
    "DistillationDataset",
    "TensorDistillationDataset",
    "collate",
    "global_batch_indices",
    "rank_slice",
    "synthetic_dataset",
]


class DistillationDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]: ...


@dataclass(frozen=True)
class DistillationBatch:
    scenes: Tensor  # [B, 3, H, W] ImageNet-normalised
    patches: Tensor  # [B, h*w, D_t] raw teacher patch features
    cls: Tensor  # [B, D_t] raw teacher CLS

    def to(self, device: torch.device | str) -> DistillationBatch:
        return DistillationBatch(self.scenes.to(device), self.patches.to(device), self.cls.to(device))


class TensorDistillationDataset:
    """Scenes and teacher features held in memory."""

    def __init__(self, scenes: Tensor, patches: Tensor, cls: Tensor) -> None:
        if not (len(scenes) == len(patches) == len(cls)):
            raise ValueError(f"lengths differ: scenes {len(scenes)}, patches {len(patches)}, cls {len(cls)}")
        if scenes.ndim != 4 or patches.ndim not in (3, 4) or cls.ndim != 2:
            raise ValueError(
                f"expected scenes [N, 3, H, W], patches [N, h, w, D] or [N, h*w, D], cls [N, D]; got "
                f"{tuple(scenes.shape)}, {tuple(patches.shape)}, {tuple(cls.shape)}"
            )
        self.scenes, self.patches, self.cls = scenes, patches, cls

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.scenes[index], self.patches[index], self.cls[index]


@runtime_checkable
class BatchedDistillationDataset(DistillationDataset, Protocol):
    """A dataset that makes its batches itself, e.g. with the teacher in the loop (pretrain.teacher_targets)."""

    def collate(self, indices: list[int]) -> DistillationBatch: ...

    def to(self, device: torch.device | str) -> BatchedDistillationDataset: ...


def collate(dataset: DistillationDataset, indices: list[int]) -> DistillationBatch:
    """Stack items into a batch; patch maps are flattened row-major to [B, h*w, D]."""
    if isinstance(dataset, BatchedDistillationDataset):
        return dataset.collate(indices)
    scenes, patches, cls = zip(*(dataset[i] for i in indices), strict=True)
    patches_t = torch.stack([torch.as_tensor(p) for p in patches]).float()
    if patches_t.ndim == 4:
        patches_t = patches_t.flatten(1, 2)  # [B, h*w, D]
    return DistillationBatch(
        scenes=torch.stack([torch.as_tensor(s) for s in scenes]).float(),
        patches=patches_t,
        cls=torch.stack([torch.as_tensor(c) for c in cls]).float(),
    )


def global_batch_indices(step: int, *, dataset_size: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the global batch of `step`: epochs of a seeded permutation, the last partial batch dropped."""
    steps_per_epoch = dataset_size // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"dataset of {dataset_size} scenes is smaller than one batch of {batch_size}")
    epoch, position = divmod(step, steps_per_epoch)
    order = torch.randperm(dataset_size, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size].tolist()


def rank_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """This rank's part of a global batch."""
    if batch_size % world_size:
        raise ValueError(f"global batch {batch_size} is not divisible by {world_size} data-parallel ranks")
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)


def synthetic_dataset(
    num_scenes: int, *, scene_px: int = 64, grid: int = 4, dim: int = 16, seed: int = 0
) -> TensorDistillationDataset:
    """Smooth random scenes whose 'teacher' features are a fixed random function of each cell's pixels.

    For tests and smoke runs: learnable (features depend on the content at a position) but no teacher needed.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_scenes, 3, scene_px // 8, scene_px // 8, generator=generator)
    scenes = torch.nn.functional.interpolate(coarse, size=(scene_px, scene_px), mode="bilinear", align_corners=False)
    cells = torch.nn.functional.adaptive_avg_pool2d(scenes, grid)  # [N, 3, h, w]
    features = torch.cat([cells, cells.square(), cells.roll(1, dims=1) * cells], dim=1)  # [N, 9, h, w]
    projection = torch.randn(9, dim, generator=torch.Generator().manual_seed(12345))  # the same 'teacher' for all seeds
    patches = torch.tanh(features.permute(0, 2, 3, 1) @ projection)  # [N, h, w, D]
    cls = patches.mean(dim=(1, 2)) + 0.1 * torch.randn(num_scenes, dim, generator=generator)  # [N, D]
    return TensorDistillationDataset(scenes, patches, cls)
