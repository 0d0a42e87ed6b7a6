"""Validation: standardized cosine of predicted vs teacher features per glimpse, and canvas PCA pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.episode import iter_rollout
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer
from saccade.policies import POLICIES, PolicyContext, resolve_policy
from saccade.pretrain.data import DistillationBatch

__all__ = ["cosine_per_glimpse", "draw_canvas_pca", "scene_cosines"]


def cosine_per_glimpse(
    model: CanViTForPretraining, batch: DistillationBatch, **settings: Any
) -> dict[str, list[float]]:
    """{'patch': [T], 'cls': [T]} standardized cosine after each glimpse, mean over the scenes of `batch`; the
    settings (policy, num_glimpses, glimpse_px, canvas_grid, seed, space) are `scene_cosines`'."""
    return {target: values.mean(0).tolist() for target, values in scene_cosines(model, batch, **settings).items()}


@torch.no_grad()
def scene_cosines(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    *,
    policy: str,
    num_glimpses: int,
    glimpse_px: int,
    canvas_grid: int,
    seed: int = 0,
    space: tuple[Standardizer, Standardizer] | None = None,
) -> dict[str, Tensor]:
    """{'patch': [B, T], 'cls': [B, T]} standardized cosine of each scene after each glimpse of a `policy` rollout
    (patch: mean over the scene's patches).

    `space` = (patch, CLS) standardizers to score in instead of the model's own: predictions are taken back to
    the teacher's raw feature space with the model's statistics and standardized with these, as the targets are.
    `policy` (official or paper name) is built from a PolicyContext of this episode, seeded with `seed`.
    """
    own_patch, own_cls = model.teacher_patch_standardizer, model.teacher_cls_standardizer
    patch_space, cls_space = space or (own_patch, own_cls)
    target_patches = patch_space(batch.patches).float()  # [B, G*G, D_t]
    target_cls = cls_space(batch.cls).float()  # [B, D_t]
    context = PolicyContext(
        batch_size=batch.scenes.shape[0],
        num_glimpses=num_glimpses,
        canvas_grid=canvas_grid,
        generator=torch.Generator().manual_seed(seed),
    )
    rollout_policy = POLICIES[resolve_policy(policy)].build(context)
    patch, cls = [], []
    for step in iter_rollout(
        model, batch.scenes, rollout_policy, num_glimpses=num_glimpses, glimpse_px=glimpse_px, canvas_grid=canvas_grid
    ):
        predicted_patches = model.predict_teacher_patches(step.state)  # [B, G*G, D_t], the model's space
        predicted_cls = model.predict_teacher_cls(step.state)  # [B, D_t]
        if space is not None:
            predicted_patches = patch_space(own_patch.destandardize(predicted_patches))
            predicted_cls = cls_space(own_cls.destandardize(predicted_cls))
        patch.append(F.cosine_similarity(predicted_patches.float(), target_patches, dim=-1).mean(-1))  # [B]
        cls.append(F.cosine_similarity(predicted_cls.float(), target_cls, dim=-1))  # [B]
    return {"patch": torch.stack(patch, dim=1), "cls": torch.stack(cls, dim=1)}


def _pca_rgb(features: Tensor, basis: Tensor, mean: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """[..., D] -> [..., 3] in [0, 1] with a fixed PCA basis and range."""
    return ((features - mean) @ basis - low).div(high - low).clamp(0, 1)


@torch.no_grad()
def draw_canvas_pca(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    path_png: str | Path,
    *,
    num_glimpses: int,
    glimpse_px: int,
    canvas_grid: int,
    num_scenes: int = 4,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Rows: scenes; columns: the scene, the teacher's PCA, then the predicted canvas PCA after each C2F glimpse.

    One 3-component PCA basis per scene, fitted on the teacher's standardized patches, colours both. `row_labels`
    name the rows (one per scene drawn).
    """
    from matplotlib.figure import Figure

    from saccade.viz.trajectories import scene_rgb

    scenes = batch.scenes[:num_scenes]
    count = scenes.shape[0]
    G = canvas_grid
    teacher = model.teacher_patch_standardizer(batch.patches[:count])  # [n, G*G, D_t]
    context = PolicyContext(
        batch_size=count, num_glimpses=num_glimpses, canvas_grid=G, generator=torch.Generator().manual_seed(0)
    )
    policy = POLICIES["coarse_to_fine"].build(context)
    steps = list(iter_rollout(model, scenes, policy, num_glimpses=num_glimpses, glimpse_px=glimpse_px, canvas_grid=G))
    predictions = [model.predict_teacher_patches(step.state) for step in steps]  # T x [n, G*G, D_t]

    columns = 2 + num_glimpses
    fig = Figure(figsize=(1.3 * columns, 1.4 * count), dpi=100)
    axes = fig.subplots(count, columns, squeeze=False)
    for row in range(count):
        mean = teacher[row].mean(0)
        _, _, basis = torch.pca_lowrank(teacher[row] - mean, q=3, center=False)  # [D_t, 3]
        projected = (teacher[row] - mean) @ basis
        low, high = projected.min(0).values, projected.max(0).values
        images = [scene_rgb(scenes, item=row, denormalize=True)]
        images.append(_pca_rgb(teacher[row], basis, mean, low, high).reshape(G, G, 3).numpy())
        images += [_pca_rgb(p[row], basis, mean, low, high).reshape(G, G, 3).numpy() for p in predictions]
        titles = ["scene", "teacher", *[f"t={t}" for t in range(num_glimpses)]]
        for col, (image, title) in enumerate(zip(images, titles, strict=True)):
            axes[row, col].imshow(image, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title, fontsize=8)
        if row_labels is not None:
            axes[row, 0].text(-0.1, 0.5, row_labels[row], transform=axes[row, 0].transAxes, fontsize=7,
                              rotation=90, ha="right", va="center")  # fmt: skip
    fig.tight_layout()
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
