"""One pretraining step: rollouts from fresh canvases, truncated BPTT, MSE on patches and CLS (paper §5).

For a batch of scenes, each configured policy (paper: F-IID then R-IID) runs one rollout of T glimpses
from a fresh canvas. T starts at K and grows by K with probability p after each chunk (geometric,
E[T] = K / (1 - p)); T is shared by the batch and the rollouts of a step. After every glimpse the
readouts predict the standardized teacher patches (from the canvas) and CLS (from the recurrent CLS);
the glimpse loss is patch MSE + CLS MSE. Backward runs at the end of each chunk of K glimpses on
(sum of the chunk's glimpse losses) / (T x rollouts), and the state is detached between chunks, so
memory is that of K glimpses. Viewpoints are drawn for the global batch and sliced per rank, so a
data-parallel run sees exactly the viewpoints of a single-process run.

Speed (docs/performance.md): a step reads nothing back from the device (losses and cosines stay device
tensors in StepLosses until the trainer logs them); viewpoints are drawn on the host for a whole rollout
and copied once, from pinned memory without blocking on CUDA. With `accumulation_steps` k each rank's
batch runs as k micro-batches whose gradients add up to the full batch's (each scaled by 1 / k), with the
same viewpoints and T. `compile` runs the per-glimpse forward (glimpse, CanViT step, readout losses)
through torch.compile; `checkpoint_blocks` recomputes the backbone blocks' activations in backward.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.backbone import set_activation_checkpointing
from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import POLICIES, PolicyContext, resolve_policy
from saccade.pretrain.config import MAX_GLIMPSES, PretrainConfig
from saccade.pretrain.data import DistillationBatch

__all__ = [
    "StepLosses",
    "StepMetrics",
    "autocast_for",
    "draw_num_glimpses",
    "glimpse_losses",
    "resolve_precision",
    "standardized_cosine",
    "to_device",
    "training_step",
]


@dataclass(frozen=True)
class StepMetrics:
    loss: float  # mean glimpse loss (patch + CLS) over glimpses and rollouts
    patch_loss: float
    cls_loss: float
    num_glimpses: int  # T of this step
    patch_cos: dict[str, float]  # standardized cosine after the last glimpse, per rollout policy
    cls_cos: dict[str, float]


@dataclass(frozen=True)
class StepLosses:
    """A step's losses and cosines still on the device: `metrics()` reads them (waits for the device)."""

    values: Tensor  # [3 + 2 R] float64: loss, patch_loss, cls_loss, patch_cos per rollout, cls_cos per rollout
    num_glimpses: int
    rollouts: tuple[str, ...]

    def metrics(self) -> StepMetrics:
        values = self.values.tolist()
        R = len(self.rollouts)
        return StepMetrics(
            loss=values[0],
            patch_loss=values[1],
            cls_loss=values[2],
            num_glimpses=self.num_glimpses,
            patch_cos=dict(zip(self.rollouts, values[3 : 3 + R], strict=True)),
            cls_cos=dict(zip(self.rollouts, values[3 + R :], strict=True)),
        )


def draw_num_glimpses(config: PretrainConfig, generator: torch.Generator) -> int:
    """T = K, then + K while a uniform draw is below continue_prob (host generator: no device sync)."""
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


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bfloat16' on CUDA, 'float32' elsewhere; 'float32' and 'bfloat16' as given."""
    if precision == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    return precision


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast of the backbone (the canvas, RoPE, VPE and readouts stay float32) or nothing."""
    if resolve_precision(precision, device) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: DistillationBatch, device: torch.device) -> DistillationBatch:
    """The batch on `device`; on CUDA copied from pinned memory without blocking the host."""
    if device.type != "cuda":
        return batch.to(device)
    scenes, patches, cls = (_to_device(t, device) for t in (batch.scenes, batch.patches, batch.cls))
    return DistillationBatch(scenes, patches, cls)


def training_step(
    model: CanViTForPretraining,
    batch: DistillationBatch,
    *,
    config: PretrainConfig,
    generator: torch.Generator,
    rank_slice: slice | None = None,
    global_batch_size: int | None = None,
) -> StepLosses:
    """Forward and backward of one step (gradients accumulate in .grad; the caller steps the optimizer).

    `batch` holds this rank's scenes and RAW teacher features; `rank_slice` picks this rank's items out of
    the `global_batch_size` viewpoints drawn per glimpse (None: single process). Sets the backbone's
    activation checkpointing to `config.checkpoint_blocks`.
    """
    local_batch = batch.scenes.shape[0]
    micro_batches = _micro_batches(local_batch, config.accumulation_steps)
    global_batch = global_batch_size or local_batch
    items = rank_slice or slice(0, local_batch)
    set_activation_checkpointing(model.canvit.backbone, config.checkpoint_blocks)
    target_patches = model.teacher_patch_standardizer(batch.patches)  # [B, G*G, D_t]
    target_cls = model.teacher_cls_standardizer(batch.cls)  # [B, D_t]
    num_glimpses = draw_num_glimpses(config, generator)
    device = batch.scenes.device
    glimpse_step = _compiled_glimpse_step(model) if config.compile else _glimpse_step
    autocast = autocast_for(config.precision, device)
    # float64 sums of the float32 glimpse losses, as Python floats summed them before (same numbers)
    accumulate = torch.float32 if device.type == "mps" else torch.float64
    sums = torch.zeros(2 + 2 * len(config.rollouts), dtype=accumulate, device=device)  # patch, cls, cosines
    scale = num_glimpses * len(config.rollouts) * len(micro_batches)
    for index, policy_name in enumerate(config.rollouts):
        centers, scales = _rollout_viewpoints(config, policy_name, global_batch, generator, num_glimpses, items, device)
        for micro in micro_batches:
            state = model.canvit.init_state(batch_size=micro.stop - micro.start, canvas_grid=config.episode.canvas_grid)
            if config.compile:  # the layout of later glimpses' states: one compiled graph serves them all
                state = RecurrentState(state.canvas, state.recurrent_cls.contiguous(), state.num_canvas_registers)
            for chunk_start in range(0, num_glimpses, config.chunk_size):
                chunk_loss = torch.zeros((), device=device)
                for t in range(chunk_start, chunk_start + config.chunk_size):
                    # checked when the policy drew it on the host: no second (synchronising) check on the device
                    viewpoint = Viewpoint.unchecked(centers=centers[t, micro], scales=scales[t, micro])
                    with autocast:
                        canvas, recurrent_cls, patch_loss, cls_loss = glimpse_step(
                            model, batch.scenes[micro], state, viewpoint, target_patches[micro], target_cls[micro],
                            config.episode.glimpse_px,
                        )  # fmt: skip
                    state = RecurrentState(canvas, recurrent_cls, state.num_canvas_registers)
                    chunk_loss = chunk_loss + patch_loss + cls_loss
                    sums[0] += patch_loss.detach().to(accumulate)
                    sums[1] += cls_loss.detach().to(accumulate)
                (chunk_loss / scale).backward()
                state = state.detach()
            with torch.no_grad():
                patch_cos = standardized_cosine(model.predict_teacher_patches(state), target_patches[micro])
                cls_cos = standardized_cosine(model.predict_teacher_cls(state), target_cls[micro])
            sums[2 + index] += patch_cos.to(accumulate)
            sums[2 + len(config.rollouts) + index] += cls_cos.to(accumulate)
    return StepLosses(_step_values(sums, scale, len(micro_batches)), num_glimpses, tuple(config.rollouts))


def _step_values(sums: Tensor, count: int, num_micro: int) -> Tensor:
    """[patch sum, cls sum, cosine sums] -> [loss, patch_loss, cls_loss, cosine means] (float64 as before)."""
    patch, cls = sums[0], sums[1]
    return torch.cat([torch.stack([(patch + cls) / count, patch / count, cls / count]), sums[2:] / num_micro])


def _micro_batches(local_batch: int, accumulation_steps: int) -> list[slice]:
    """accumulation_steps equal slices of this rank's batch."""
    if local_batch % accumulation_steps:
        raise ValueError(
            f"PretrainConfig.accumulation_steps={accumulation_steps} must divide this rank's batch of {local_batch}"
        )
    size = local_batch // accumulation_steps
    return [slice(start, start + size) for start in range(0, local_batch, size)]


def _glimpse_step(
    model: CanViTForPretraining,
    scenes: Tensor,
    state: RecurrentState,
    viewpoint: Viewpoint,
    target_patches: Tensor,
    target_cls: Tensor,
    glimpse_px: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One glimpse -> (canvas [B, R + G*G, D_cv], recurrent CLS [B, 1, D_bb], patch MSE, CLS MSE)."""
    glimpse = sample_glimpse(scenes, viewpoint, glimpse_px)  # [B, 3, S, S]
    state = model(glimpse, state, viewpoint).state
    patch_loss, cls_loss = glimpse_losses(model, state, target_patches, target_cls)
    recurrent_cls = state.recurrent_cls  # [B, 1, D_bb], a slice of the glimpse stream
    if torch.compiler.is_compiling():  # one layout for every glimpse's input state: one graph
        recurrent_cls = recurrent_cls.contiguous()
    return state.canvas, recurrent_cls, patch_loss, cls_loss


_COMPILED: weakref.WeakKeyDictionary[torch.nn.Module, Callable] = weakref.WeakKeyDictionary()


def _compiled_glimpse_step(model: CanViTForPretraining) -> Callable:
    """_glimpse_step through torch.compile, one per model (Inductor's on-disk cache serves later runs)."""
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(_glimpse_step, dynamic=False)
    return _COMPILED[model]


def _rollout_viewpoints(
    config: PretrainConfig,
    policy_name: str,
    global_batch: int,
    generator: torch.Generator,
    num_glimpses: int,
    items: slice,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """This rank's viewpoints of a rollout, drawn on the host for the global batch -> centers [T, B, 2], scales
    [T, B] on `device`."""
    policy = POLICIES[resolve_policy(policy_name)].build(_rollout_context(config, global_batch, generator))
    viewpoints = [policy.step(t) for t in range(num_glimpses)]
    centers = torch.stack([viewpoint.centers[items] for viewpoint in viewpoints])  # [T, B, 2]
    scales = torch.stack([viewpoint.scales[items] for viewpoint in viewpoints])  # [T, B]
    return _to_device(centers, device), _to_device(scales, device)


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    if device.type == "cuda" and tensor.device.type == "cpu":
        pinned = tensor if tensor.is_pinned() else tensor.pin_memory()  # a DataLoader with pin_memory=True did it
        return pinned.to(device, non_blocking=True)
    return tensor.to(device)


def _rollout_context(config: PretrainConfig, batch_size: int, generator: torch.Generator) -> PolicyContext:
    """What a training rollout is built from: the global batch, scales from min_scale, and MAX_GLIMPSES as the
    episode length, so that a quadtree rollout is deep enough for any T (1 + 4 + 16 + 64 = 85 >= 64 steps)."""
    return PolicyContext(
        batch_size=batch_size, num_glimpses=MAX_GLIMPSES, generator=generator, min_scale=config.min_scale
    )
