"""Validation: standardized cosine of predicted vs teacher features per glimpse (Curves, through the one
per-glimpse loop `saccade.evaluate.measure`), and canvas PCA pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.episode import iter_rollout
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.curves import Curve, over_scenes
from saccade.evaluate.measure import PolicyRuns, Score, measure
from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer
from saccade.policies import POLICIES, PolicyContext, resolve_policy
from saccade.pretrain.data import DistillationBatch

__all__ = ["COSINE_METRICS", "cosine_curves", "cosines_by_policy", "draw_canvas_pca"]

COSINE_METRICS = {"patch": "standardized patch cosine", "cls": "standardized CLS cosine"}
"""The two targets scored after each glimpse, and their Curve metric names."""


def _mean_of_run_means(values: Tensor) -> Tensor:
    """[R, N, T] float32 -> [T]: the mean over runs of each run's mean over scenes, in float32 as validation has
    always computed it (summary.json and results.json keep their numbers)."""
    return values.mean(dim=1).mean(dim=0).double()


def _cosine_score(model: CanViTForPretraining, space: tuple[Standardizer, Standardizer] | None) -> Score:
    """(state, standardized (patches, cls) targets) -> [B, 2] patch (mean over patches) and CLS cosine per scene."""
    own_patch, own_cls = model.teacher_patch_standardizer, model.teacher_cls_standardizer
    patch_space, cls_space = space or (own_patch, own_cls)

    def score(state: RecurrentState, targets: tuple[Tensor, Tensor]) -> Tensor:
        predicted_patches = model.predict_teacher_patches(state)  # [B, G*G, D_t], the model's space
        predicted_cls = model.predict_teacher_cls(state)  # [B, D_t]
        if space is not None:  # back to the teacher's raw space with the model's statistics, then into `space`
            predicted_patches = patch_space(own_patch.destandardize(predicted_patches))
            predicted_cls = cls_space(own_cls.destandardize(predicted_cls))
        patch = F.cosine_similarity(predicted_patches.float(), targets[0], dim=-1).mean(-1)  # [B]
        return torch.stack([patch, F.cosine_similarity(predicted_cls.float(), targets[1], dim=-1)], dim=1)  # [B, 2]

    return score


@torch.no_grad()
def cosine_curves(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    *,
    policies: Sequence[str],
    episode: EpisodeConfig,
    seeds: Sequence[int] = (0,),
    space: tuple[Standardizer, Standardizer] | None = None,
) -> list[Curve]:
    """Standardized cosine of predicted vs teacher features after each glimpse: one Curve per policy and target
    (COSINE_METRICS), per-scene samples [R, N, T], interval over scenes and runs.

    A random-order policy (official or paper name) runs once per seed, a deterministic one once with seeds[0].
    `space` = (patch, CLS) standardizers to score in instead of the model's own: predictions are taken back to
    the teacher's raw feature space with the model's statistics and standardized with these, as the targets are.
    """
    model.eval()
    patch_space, cls_space = space or (model.teacher_patch_standardizer, model.teacher_cls_standardizer)
    targets = (patch_space(batch.patches).float(), cls_space(batch.cls).float())  # [B, G*G, D_t], [B, D_t]
    runs = [_policy_runs(name, seeds, episode) for name in policies]
    samples = measure(model, [(batch.scenes, targets)], runs, score=_cosine_score(model, space), episode=episode)
    return [
        over_scenes(
            samples[name][..., index], policy=name, metric=metric, task="distillation", reduce=_mean_of_run_means
        )
        for name in policies
        for index, metric in enumerate(COSINE_METRICS.values())
    ]


def _policy_runs(name: str, seeds: Sequence[int], episode: EpisodeConfig) -> PolicyRuns:
    spec = POLICIES[resolve_policy(name)]

    def build(scenes: Tensor, targets: tuple[Tensor, Tensor], generator: torch.Generator):
        context = PolicyContext(
            batch_size=scenes.shape[0],
            num_glimpses=episode.num_glimpses,
            canvas_grid=episode.canvas_grid,
            generator=generator,
        )
        return spec.build(context)

    return PolicyRuns(name, tuple(seeds) if spec.random_order else tuple(seeds[:1]), build)


def cosines_by_policy(curves: Sequence[Curve]) -> dict[str, dict[str, list[float]]]:
    """{policy: {'patch': [T], 'cls': [T]}} mean cosines of `cosine_curves`, the summary.json / results.json form."""
    target_of = {metric: target for target, metric in COSINE_METRICS.items()}
    result: dict[str, dict[str, list[float]]] = {}
    for curve in curves:
        result.setdefault(curve.policy, {})[target_of[curve.metric]] = curve.mean.tolist()
    return result


def _pca_rgb(features: Tensor, basis: Tensor, mean: Tensor | float, low: Tensor, high: Tensor) -> Tensor:
    """[..., D] -> [..., 3] in [0, 1] with a fixed PCA basis and range."""
    return ((features - mean) @ basis - low).div(high - low).clamp(0, 1)


def _top_components(centred: Tensor, count: int) -> Tensor:
    """[N, D] -> [D, count]: the top principal directions by an exact SVD (pca_lowrank draws from the global RNG),
    each signed so that its largest entry is positive, so that a picture's colours do not depend on chance."""
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # [min(N, D), D]
    basis = vh[:count].T  # [D, count]
    signs = basis.gather(0, basis.abs().argmax(0, keepdim=True)).sign()  # [1, count]
    return basis * signs


def _predictions_rgb(predictions: Sequence[Tensor], basis: Tensor) -> list[Tensor]:
    """T predicted maps [G*G, D] of one scene -> T colour maps [G*G, 3] in the teacher's basis [D, 3].

    Predictions are smoother than the teacher's patches and can sit off its mean: on the teacher's centre and range
    they fade to one colour. So each map is centred on its own mean, and all maps share one range.
    """
    centred = [p - p.mean(0) for p in predictions]  # T x [G*G, D]
    spread = torch.cat([c @ basis for c in centred])  # [T*G*G, 3]
    low, high = spread.min(0).values, spread.max(0).values
    return [_pca_rgb(c, basis, 0.0, low, high) for c in centred]


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

    One 3-component PCA basis per scene, fitted on the teacher's standardized patches, colours both: the teacher on
    its own centre and range, the predictions each on their own centre and on one range per row, so that their
    spatial structure shows. `row_labels` name the rows (one per scene drawn).
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
        basis = _top_components(teacher[row] - mean, 3)  # [D_t, 3]
        projected = (teacher[row] - mean) @ basis
        low, high = projected.min(0).values, projected.max(0).values
        images = [scene_rgb(scenes, item=row, denormalize=True)]
        images.append(_pca_rgb(teacher[row], basis, mean, low, high).reshape(G, G, 3).numpy())
        images += [rgb.reshape(G, G, 3).numpy() for rgb in _predictions_rgb([p[row] for p in predictions], basis)]
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
