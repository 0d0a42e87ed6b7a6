"""How well a pretrained CanViT predicts its teacher, per glimpse and policy, with the passive baselines.

The metric is the pretraining one: cosine between predicted and teacher features in the standardized
space of the model's own standardizers (fitted on training data), mean over patches and scenes; CLS
likewise. Models trained on different data have different statistics, so `statistics=<named set>` scores every
model in one common space instead (standardizers fitted on the first crops of that set, predictions mapped
there through the teacher's raw feature space): a fair comparison across training sets. Random-order
policies (the PolicySpec says: C2F, F2C, R-IID, F-IID) are averaged over the policy seeds (default 0, 1, 2:
seed 0 + run, as in saccade evaluate); deterministic ones (RFS) run once, with the first seed. Baselines
that do not depend on t:

* trivial: predicting the mean of the scoring statistics, cosine 0 by construction;
* input-matched teacher: the student's first glimpse (the full scene at `glimpse_px`) resized to the
  nearest multiple of the teacher's patch size, run through the teacher, its patch map resized
  (bilinear) to the target grid, standardized with the same statistics, compared with the targets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from saccade.episode_config import EpisodeConfig
from saccade.evaluate.curves import Curve
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer
from saccade.policies import POLICIES, resolve_policy
from saccade.pretrain.data import DistillationBatch
from saccade.pretrain.step import standardized_cosine
from saccade.pretrain.validate import cosine_curves, cosines_by_policy

__all__ = [
    "DISTILLATION_POLICIES",
    "distillation_curves",
    "evaluate_distillation",
    "fit_scoring_space",
    "input_matched_teacher",
    "markdown_report",
]

DISTILLATION_POLICIES = ("coarse_to_fine", "fine_to_coarse", "random", "full_then_random", "repeated_full_scene")
"""The policies scored by default: the paper's five that need nothing beyond the episode."""


def distillation_curves(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    *,
    policies: Sequence[str] = DISTILLATION_POLICIES,
    policy_seeds: Sequence[int] = (0, 1, 2),
    episode: EpisodeConfig,
    space: tuple[Standardizer, Standardizer] | None = None,
) -> list[Curve]:
    """One Curve per policy and target (patch, CLS): standardized cosine after each glimpse, mean over the policy
    seeds of a random-order policy (a deterministic one runs once, with the first seed); see `cosine_curves`.

    `space`: (patch, CLS) standardizers to score in (default: the model's own).
    """
    return cosine_curves(model, batch, policies=policies, episode=episode, seeds=policy_seeds, space=space)


@torch.no_grad()
def input_matched_teacher(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    teacher,
    *,
    glimpse_px: int,
    space: tuple[Standardizer, Standardizer] | None = None,
) -> dict[str, float]:
    """{'patch', 'cls'}: the teacher on the student's first-glimpse pixels, scored like the student."""
    B = batch.scenes.shape[0]
    full_scene = Viewpoint(centers=torch.zeros(B, 2), scales=torch.ones(B))
    pixels = sample_glimpse(batch.scenes, full_scene, glimpse_px)  # [B, 3, g, g]
    side = max(teacher.patch_size, round(glimpse_px / teacher.patch_size) * teacher.patch_size)
    output = teacher(F.interpolate(pixels, size=(side, side), mode="bilinear", antialias=True))
    grid = round(batch.patches.shape[1] ** 0.5)
    patches = output.patches.permute(0, 3, 1, 2)  # [B, D, h, w]
    patches = F.interpolate(patches, size=(grid, grid), mode="bilinear").flatten(2).transpose(1, 2)  # [B, G*G, D]
    standardize_patches, standardize_cls = space or (model.teacher_patch_standardizer, model.teacher_cls_standardizer)
    return {
        "patch": standardized_cosine(standardize_patches(patches), standardize_patches(batch.patches)).item(),
        "cls": standardized_cosine(standardize_cls(output.cls), standardize_cls(batch.cls)).item(),
    }


def evaluate_distillation(
    model_dirs: Sequence[str | os.PathLike],
    data_names: Sequence[str],
    *,
    episode: EpisodeConfig,
    policy_seeds: Sequence[int] = (0, 1, 2),
    policies: Sequence[str] = DISTILLATION_POLICIES,
    statistics: str | None = None,
    statistics_samples: int = 1024,
) -> dict:
    """Curves of each pretrained model (e.g. one per training seed) on each named distillation set.

    `statistics`: a named crop set whose first `statistics_samples` crops define one standardized space that
    every model is scored in (default: each model's own training statistics).

    Returns {"models": [...], "data": {name: {"models": [{"curves", "input_matched_teacher"}], "mean": curves,
    "low": curves, "high": curves, "input_matched_teacher": mean}}} (low / high: range over the models).
    """
    from saccade.teachers.dinov2_bundled import load_bundled_dinov2

    models = _load_pretraining_models(model_dirs)
    teacher = load_bundled_dinov2()
    canvas_grid = episode.canvas_grid
    space = None if statistics is None else fit_scoring_space(statistics, statistics_samples, canvas_grid=canvas_grid)
    result: dict = {"models": [str(path) for path in model_dirs], "statistics": statistics, "data": {}}
    for name in data_names:
        batch = _whole_set(name, canvas_grid=canvas_grid)
        runs = []
        for model in tqdm(models, desc=f"evaluate {name}", leave=False):
            curves = distillation_curves(
                model, batch, policies=policies, policy_seeds=policy_seeds, episode=episode, space=space
            )
            matched = input_matched_teacher(model, batch, teacher, glimpse_px=episode.glimpse_px, space=space)
            runs.append({"curves": cosines_by_policy(curves), "input_matched_teacher": matched})
        result["data"][name] = _over_models(runs)
    return result


def _load_pretraining_models(model_dirs: Sequence[str | os.PathLike]) -> list[CanViTForPretraining]:
    """The pretraining saves in `model_dirs`; ValueError naming a bare CanViT (it has no teacher readouts)."""
    from saccade.loading import load_pretrained

    models = [load_pretrained(path) for path in model_dirs]
    for path, model in zip(model_dirs, models, strict=True):
        if not isinstance(model, CanViTForPretraining):
            raise ValueError(
                f"{path} holds a bare CanViT; distillation needs its teacher readouts (a pretraining save)"
            )
    return models


def _whole_set(name: str, *, canvas_grid: int) -> DistillationBatch:
    """Every crop of a named distillation set, as one batch."""
    from saccade.data.distill_sets import distillation_crops
    from saccade.pretrain.data import collate

    dataset = distillation_crops(name, canvas_grid=canvas_grid)
    return collate(dataset, list(range(len(dataset))))


def _over_models(runs: list[dict]) -> dict:
    """{"models": runs, "mean" / "low" / "high": {policy: {target: [T]}} over the models, "input_matched_teacher":
    the mean over the models}."""
    first = runs[0]["curves"]
    stacked = {
        policy: {target: torch.tensor([run["curves"][policy][target] for run in runs]) for target in targets}
        for policy, targets in first.items()
    }  # {policy: {target: [models, T]}}, float32 as the per-model means

    def reduce(operation) -> dict[str, dict[str, list[float]]]:
        return {policy: {target: operation(v).tolist() for target, v in d.items()} for policy, d in stacked.items()}

    return {
        "models": runs,
        "mean": reduce(lambda v: v.mean(0)),
        "low": reduce(lambda v: v.min(0).values),
        "high": reduce(lambda v: v.max(0).values),
        "input_matched_teacher": {
            target: sum(run["input_matched_teacher"][target] for run in runs) / len(runs) for target in ("patch", "cls")
        },
    }


def fit_scoring_space(name: str, num_samples: int, *, canvas_grid: int) -> tuple[Standardizer, Standardizer]:
    """(patch, CLS) standardizers fitted on the first `num_samples` crops of a named set, as the trainer fits them."""
    from saccade.data.distill_sets import distillation_crops
    from saccade.pretrain.data import collate

    dataset = distillation_crops(name, canvas_grid=canvas_grid)
    batch = collate(dataset, list(range(min(num_samples, len(dataset)))))
    patch = Standardizer(batch.patches.shape[1], batch.patches.shape[2]).fit(batch.patches)
    cls = Standardizer(1, batch.cls.shape[1]).fit(batch.cls)
    return patch, cls


def markdown_report(result: dict, *, digits: int = 3) -> str:
    """Per set: one row per (policy, target) with the mean over models per glimpse and the range at t = 0 / 4 / 9."""
    sections = []
    for name, data in result["data"].items():
        mean, low, high = data["mean"], data["low"], data["high"]
        num = len(next(iter(mean.values()))["patch"])
        marks = [t for t in (0, 4, 9) if t < num]
        space = result.get("statistics")
        scored_in = f", scored in the statistics of {space}" if space else ""
        lines = [
            f"### {name} (mean of {len(data['models'])} model(s){scored_in})",
            "",
            "| policy | target | "
            + " | ".join(f"t={t}" for t in range(num))
            + " | range t="
            + "/".join(map(str, marks))
            + " |",
            "| --- | --- |" + " --- |" * (num + 1),
        ]
        for policy, targets in mean.items():
            for target, values in targets.items():
                cells = " | ".join(f"{v:.{digits}f}" for v in values)
                spread = " / ".join(
                    f"{low[policy][target][t]:.{digits}f}-{high[policy][target][t]:.{digits}f}" for t in marks
                )
                lines.append(f"| {POLICIES[resolve_policy(policy)].label} | {target} | {cells} | {spread} |")
        matched = data["input_matched_teacher"]
        lines += [
            "",
            f"Baselines: trivial (standardized mean) 0 / 0; input-matched teacher "
            f"{matched['patch']:.{digits}f} patch / {matched['cls']:.{digits}f} CLS.",
        ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"
