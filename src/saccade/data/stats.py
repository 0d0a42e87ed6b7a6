"""Standardizer statistics fitted from teacher-feature shards (paper §5; spec §1.7).

Targets are standardized per position and per channel: mean [N, D] and population variance [N, D] over images,
N = h*w patch positions (row-major) for the patch standardizer, N = 1 for the CLS standardizer. The shards are
streamed in chunks and merged exactly in float64 (Chan et al.'s pairwise update), so memory stays at a few
[N, D] buffers however many images are used. The paper fitted on its first shard (4096 images).
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saccade.data.shards import TeacherFeatures
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer

__all__ = ["RunningMoments", "fill_pretraining_standardizers", "fit_standardizers"]


class RunningMoments:
    """Exact streaming mean and population variance over the first axis, in float64."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = 0
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.m2 = torch.zeros(shape, dtype=torch.float64)  # sum of squared deviations from the mean

    def update(self, samples: Tensor) -> None:
        """Merge samples [b, *shape]."""
        if tuple(samples.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"samples must be [b, {', '.join(map(str, self.mean.shape))}], got {list(samples.shape)}")
        b = samples.shape[0]
        if b == 0:
            return
        x = samples.double()
        batch_mean = x.mean(dim=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(dim=0)
        total = self.count + b
        delta = batch_mean - self.mean
        self.mean += delta * (b / total)
        self.m2 += batch_m2 + delta**2 * (self.count * b / total)
        self.count = total

    @property
    def var(self) -> Tensor:
        """Population variance, same shape as the mean."""
        return self.m2 / self.count


def fit_standardizers(
    features: TeacherFeatures, *, max_images: int | None = None, chunk_images: int = 64, progress: bool = True
) -> tuple[Standardizer, Standardizer]:
    """(patch standardizer over h*w positions, CLS standardizer) fitted on the first `max_images` stored images."""
    (h, w), D = features.grid, features.dim
    num_images = len(features) if max_images is None else min(max_images, len(features))
    if num_images < 2:
        raise ValueError(f"need at least 2 images to fit standardizers, {features.root} offers {num_images}")
    patch_moments, cls_moments = RunningMoments((h * w, D)), RunningMoments((1, D))
    with tqdm(total=num_images, desc="standardizer statistics", unit="img", disable=not progress) as bar:
        for chunk in features.iter_chunks(chunk_images, max_images=num_images):
            b = chunk.cls.shape[0]
            patch_moments.update(chunk.patches.reshape(b, h * w, D))  # [b, h*w, D]
            cls_moments.update(chunk.cls[:, None])  # [b, 1, D]
            bar.update(b)
    return _standardizer(patch_moments), _standardizer(cls_moments)


def fill_pretraining_standardizers(
    model: CanViTForPretraining, features: TeacherFeatures, *, max_images: int | None = None, progress: bool = True
) -> CanViTForPretraining:
    """Fit `model`'s teacher patch and CLS standardizers from shards; the teacher grid and width must match."""
    (h, w), D = features.grid, features.dim
    grid = model.teacher_patch_grid
    if (h, w) != (grid, grid) or model.teacher_dim != D:
        raise ValueError(
            f"shards in {features.root} hold a {h}x{w} grid of {D}-d teacher features, the model expects "
            f"{model.teacher_patch_grid}x{model.teacher_patch_grid} of {model.teacher_dim}-d"
        )
    patch, cls = fit_standardizers(features, max_images=max_images, progress=progress)
    for target, source in ((model.teacher_patch_standardizer, patch), (model.teacher_cls_standardizer, cls)):
        target.load_state_dict(source.state_dict())
    return model


def _standardizer(moments: RunningMoments) -> Standardizer:
    num_positions, dim = moments.mean.shape
    standardizer = Standardizer(num_positions, dim)
    with torch.no_grad():
        standardizer.mean.copy_(moments.mean)
        standardizer.var.copy_(moments.var)
        standardizer.fitted.fill_(True)
    return standardizer
