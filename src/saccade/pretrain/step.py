"""One pretraining step: rollouts from fresh canvases, truncated BPTT, MSE on patches and CLS (paper §5).

For a batch of scenes, each configured policy (paper: F-IID then R-IID) runs one rollout of T glimpses
from a fresh canvas. T starts at K and grows by K with probability p after each chunk (geometric,
E[T] = K / (1 - p)); T is shared by the batch and the rollouts of a step. After every glimpse the
readouts predict the standardized teacher patches (from the canvas) and CLS (from the recurrent CLS);
the glimpse loss is patch MSE + CLS MSE. Backward runs at the end of each chunk of K glimpses on
(sum of the chunk's glimpse losses) / (T x rollouts), and the state is detached between chunks, so
memory is that of K glimpses. Viewpoints are drawn for the global batch and sliced per rank, so a
data-parallel run sees exactly the viewpoints of a single-process run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import POLICIES, PolicyContext, resolve_policy
from saccade.pretrain.config import MAX_GLIMPSES, PretrainConfig
from saccade.pretrain.data import DistillationBatch

__all__ = ["StepMetrics", "draw_num_glimpses", "glimpse_losses", "standardized_cosine", "training_step"]


@dataclass(frozen=True)
class StepMetrics:
    loss: float  # mean glimpse loss (patch + CLS) over glimpses and rollouts
    patch_loss: float
    cls_loss: float
    num_glimpses: int  # T of this step
    patch_cos: dict[str, float]  # standardized cosine after the last glimpse, per rollout policy
    cls_cos: dict[str, float]


def draw_num_glimpses(config: PretrainConfig, generator: torch.Generator) -> int:
    """T = K, then + K while a uniform draw is below continue_prob."""
    num = config.chunk_size
    while num + config.chunk_size <= MAX_GLIMPSES and torch.rand((), generator=generator).item() < config.continue_prob:
        num += config.chunk_size
    return num


def standardized_cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean cosine similarity over all tokens of [..., D] predictions and targets (float32)."""
    return F.cosine_similarity(prediction.float(), target.float(), dim=-1).mean()


def glimpse_losses(
    model: CanViTForPretraining, state: RecurrentState, patches: Tensor, cls: Tensor
) -> tuple[Tensor, Tensor]:
    """(patch MSE, CLS MSE) of the readouts of `state` against standardized targets [B, G*G, D_t], [B, D_t]."""
    patch_loss = F.mse_loss(model.predict_teacher_patches(state).float(), patches)
    cls_loss = F.mse_loss(model.predict_teacher_cls(state).float(), cls)
    return patch_loss, cls_loss


def training_step(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    *,
    config: PretrainConfig,
    generator: torch.Generator,
    rank_slice: slice | None = None,
    global_batch_size: int | None = None,
) -> StepMetrics:
    """Forward and backward of one step (gradients accumulate in .grad; the caller steps the optimizer).

    `batch` holds this rank's scenes and RAW teacher features; `rank_slice` picks this rank's items out of
    the `global_batch_size` viewpoints drawn per glimpse (None: single process).
    """
    local_batch = batch.scenes.shape[0]
    global_batch = global_batch_size or local_batch
    items = rank_slice or slice(0, local_batch)
    target_patches = model.teacher_patch_standardizer(batch.patches)  # [B, G*G, D_t]
    target_cls = model.teacher_cls_standardizer(batch.cls)  # [B, D_t]
    num_glimpses = draw_num_glimpses(config, generator)
    num_rollouts = len(config.rollouts)
    device = batch.scenes.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    totals = {"patch": 0.0, "cls": 0.0}
    patch_cos, cls_cos = {}, {}
    for policy_name in config.rollouts:
        policy = POLICIES[resolve_policy(policy_name)].build(_rollout_context(config, global_batch, generator))
        state = model.canvit.init_state(batch_size=local_batch, canvas_grid=config.episode.canvas_grid)
        for chunk_start in range(0, num_glimpses, config.chunk_size):
            chunk_loss = torch.zeros((), device=device)
            for t in range(chunk_start, chunk_start + config.chunk_size):
                viewpoint = _local(policy.step(t), items).to(device)
                with autocast:
                    glimpse = sample_glimpse(batch.scenes, viewpoint, config.episode.glimpse_px)
                    state = model(glimpse, state, viewpoint).state
                    patch_loss, cls_loss = glimpse_losses(model, state, target_patches, target_cls)
                chunk_loss = chunk_loss + patch_loss + cls_loss
                totals["patch"] += patch_loss.item()
                totals["cls"] += cls_loss.item()
            (chunk_loss / (num_glimpses * num_rollouts)).backward()
            state = state.detach()
        with torch.no_grad():
            patch_cos[policy_name] = standardized_cosine(model.predict_teacher_patches(state), target_patches).item()
            cls_cos[policy_name] = standardized_cosine(model.predict_teacher_cls(state), target_cls).item()

    count = num_glimpses * num_rollouts
    return StepMetrics(
        loss=(totals["patch"] + totals["cls"]) / count,
        patch_loss=totals["patch"] / count,
        cls_loss=totals["cls"] / count,
        num_glimpses=num_glimpses,
        patch_cos=patch_cos,
        cls_cos=cls_cos,
    )


def _rollout_context(config: PretrainConfig, batch_size: int, generator: torch.Generator) -> PolicyContext:
    """What a training rollout is built from: the global batch, scales from min_scale, and MAX_GLIMPSES as the
    episode length, so that a quadtree rollout is deep enough for any T (1 + 4 + 16 + 64 = 85 >= 64 steps)."""
    return PolicyContext(
        batch_size=batch_size, num_glimpses=MAX_GLIMPSES, generator=generator, min_scale=config.min_scale
    )


def _local(viewpoint: Viewpoint, items: slice) -> Viewpoint:
    return Viewpoint(centers=viewpoint.centers[items], scales=viewpoint.scales[items])
