"""Where a probe's input comes from: a frozen CanViT over a rollout, or a frozen passive teacher (paper App. D.3).

A feature source maps a batch of ImageNet-normalised scenes [B, 3, H, W] to a list of feature tensors, one
per timestep: T canvas grids [B, G, G, D_cv] (or recurrent CLS vectors [B, D_bb]) for CanViT, a single patch
grid [B, h, w, D] (or CLS [B, D]) for a teacher seeing the whole scene once at `input_px`. The probe trainer
treats both alike, which is how "the same probe recipe on the teacher's own features" is kept the same.

Teachers are duck-typed (the `saccade.teachers.Teacher` contract): `teacher(images) -> out` with `out.cls`
[B, D] and `out.patches` [B, h, w, D], and attributes `patch_size` and `dim`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from saccade.episode import iter_rollout
from saccade.model.canvit import as_canvit
from saccade.policies import POLICIES, PolicyContext, resolve_policy
from saccade.probes.heads import ProbeTask

__all__ = [
    "CanViTFeatures",
    "FeatureSource",
    "PrecomputedFeatures",
    "TeacherFeatureSource",
    "precompute",
    "resize_scenes",
]


@runtime_checkable
class FeatureSource(Protocol):
    """Frozen features of a batch of scenes, one tensor per timestep."""

    task: ProbeTask
    dim: int  # feature width D the probe sees

    def __call__(self, scenes: Tensor) -> list[Tensor]:
        """scenes [B, 3, H, W] -> T tensors [B, G, G, D] (segmentation) or [B, D] (classification)."""
        ...


def _check_task(task: str) -> None:
    if task not in ("segmentation", "classification"):
        raise ValueError(f"task must be 'segmentation' or 'classification', got {task!r}")


class CanViTFeatures:
    """Canvas grids (segmentation) or recurrent CLS (classification) of a frozen CanViT over a policy's rollout.

    Args:
        policy: official or paper name of a policy that needs nothing beyond the episode (default R-IID, the
            paper's probe-training rollouts); random-order policies draw from `generator`, so a seeded
            generator replays the same glimpses.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        task: ProbeTask,
        num_glimpses: int,
        glimpse_px: int,
        canvas_grid: int,
        policy: str = "random",
        generator: torch.Generator | None = None,
    ) -> None:
        _check_task(task)
        canvit = as_canvit(model)
        if isinstance(num_glimpses, bool) or not isinstance(num_glimpses, int) or num_glimpses < 1:
            raise ValueError(f"num_glimpses must be a positive int, got {num_glimpses!r}")
        self.model = canvit
        self.task: ProbeTask = task
        self.dim = canvit.config.canvas_dim if task == "segmentation" else canvit.config.backbone.embed_dim
        self.num_glimpses = num_glimpses
        self.glimpse_px = glimpse_px
        self.canvas_grid = canvas_grid
        self.policy = POLICIES[resolve_policy(policy)]
        self.generator = generator

    def iter(self, scenes: Tensor) -> Iterator[Tensor]:
        """Stream the per-glimpse features of one rollout over scenes [B, 3, H, W]."""
        context = PolicyContext(
            batch_size=scenes.shape[0],
            num_glimpses=self.num_glimpses,
            canvas_grid=self.canvas_grid,
            device=scenes.device,
            generator=self.generator,
        )
        policy = self.policy.build(context)
        steps = iter_rollout(
            self.model,
            scenes,
            policy,
            num_glimpses=self.num_glimpses,
            glimpse_px=self.glimpse_px,
            canvas_grid=self.canvas_grid,
        )
        for step in steps:
            if self.task == "segmentation":
                yield step.state.canvas_patch_grid()  # [B, G, G, D_cv]
            else:
                yield step.state.recurrent_cls[:, 0]  # [B, D_bb]

    def __call__(self, scenes: Tensor) -> list[Tensor]:
        return list(self.iter(scenes))


def resize_scenes(scenes: Tensor, size_px: int) -> Tensor:
    """[B, 3, H, W] -> [B, 3, size_px, size_px]: squished, bilinear, anti-aliased when shrinking."""
    if scenes.shape[-2:] == (size_px, size_px):
        return scenes
    return F.interpolate(scenes, size=(size_px, size_px), mode="bilinear", align_corners=False, antialias=True)


class TeacherFeatureSource:
    """A frozen passive teacher seeing each whole scene once, resized to input_px x input_px: one timestep."""

    def __init__(self, teacher: Any, *, task: ProbeTask, input_px: int) -> None:
        _check_task(task)
        for name in ("patch_size", "dim"):
            if not isinstance(getattr(teacher, name, None), int):
                raise TypeError(f"teacher must have an int attribute {name!r} (the saccade.teachers contract)")
        if isinstance(input_px, bool) or not isinstance(input_px, int) or input_px < teacher.patch_size:
            raise ValueError(
                f"input_px must be an int >= the teacher patch size {teacher.patch_size}, got {input_px!r}"
            )
        if input_px % teacher.patch_size:
            raise ValueError(
                f"input_px must be a multiple of the teacher patch size {teacher.patch_size}, got {input_px}"
            )
        self.teacher = teacher
        self.task: ProbeTask = task
        self.dim: int = teacher.dim
        self.input_px = input_px

    @property
    def grid_size(self) -> int:
        """Patches per side h = w of the teacher's feature grid."""
        return self.input_px // self.teacher.patch_size

    def __call__(self, scenes: Tensor) -> list[Tensor]:
        with torch.no_grad():
            out = self.teacher(resize_scenes(scenes, self.input_px))
        if self.task == "segmentation":
            return [out.patches.float()]  # [B, h, w, D]
        return [out.cls.float()]  # [B, D]


class PrecomputedFeatures:
    """The identity source: batches already hold the features of every timestep, [B, T, ...] (see `precompute`)."""

    def __init__(self, *, task: ProbeTask, dim: int) -> None:
        _check_task(task)
        self.task: ProbeTask = task
        self.dim = dim

    def __call__(self, features: Tensor) -> list[Tensor]:
        return list(features.unbind(1))  # T x [B, ...]


def precompute(
    source: FeatureSource,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
    description: str = "features",
) -> TensorDataset:
    """(features [T, ...], target) pairs of a source over a fixed dataset, computed once.

    Worth it when the scenes carry no random augmentation: probe training then reads features instead of re-running
    the teacher, or the rollouts, at every step, and can take many more steps for the same time. A rollout source
    (`CanViTFeatures`) is then run once per scene, so each scene keeps the one rollout its policy drew for it. The
    features are kept on the CPU; scenes go through the source on `device`.
    """
    features, targets = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        for scenes, target in tqdm(loader, desc=description, disable=not progress, leave=False):
            features.append(torch.stack(source(scenes.to(device)), dim=1).cpu())  # [B, T, ...]
            targets.append(target)
    return TensorDataset(torch.cat(features), torch.cat(targets))
