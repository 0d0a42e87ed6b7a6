"""The pretraining loop: optimizer, schedule, data parallelism, checkpoints, validation, logging.

Data parallelism: launched with torchrun, every rank runs the same step on its slice of the global
batch and the gradients are averaged with one fused all-reduce per step (gloo on CPU, nccl on CUDA).
We do not wrap the model in DistributedDataParallel because a step runs many forwards (glimpses) per
backward and several backwards (TBPTT chunks) per optimizer step, which DDP's per-forward bookkeeping
does not support; the all-reduce after the last backward is exactly what DDP would compute.

Resumption is exact: the batch order is a function of (seed, step), and the viewpoint / rollout-length
generator, the global RNG, model, optimizer and scheduler are restored from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from saccade.model.backbone import set_stochastic_depth
from saccade.model.checkpoint import save_pretrained
from saccade.model.config import CanViTConfig, preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.pretrain.augment import random_hflip
from saccade.pretrain.checkpointing import TrainingState, load_training_checkpoint, save_training_checkpoint
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import DistillationDataset, collate, global_batch_indices, rank_slice
from saccade.pretrain.schedule import make_scheduler
from saccade.pretrain.step import StepMetrics, training_step
from saccade.pretrain.validate import cosine_per_glimpse, draw_canvas_pca

__all__ = ["PretrainResult", "build_model", "check_data", "pretrain"]


@dataclass(frozen=True)
class PretrainResult:
    model: CanViTForPretraining
    steps_done: int
    interrupted: bool
    output_dir: Path
    summary: dict[str, Any]


def canvit_config_of(config: PretrainConfig) -> CanViTConfig:
    """The CanViT config named by `config.model`: a preset name or a JSON file."""
    if config.model.endswith(".json"):
        path = Path(config.model)
        if not path.is_file():
            raise ValueError(f"PretrainConfig.model: model config file {path} does not exist")
        return CanViTConfig.from_dict(json.loads(path.read_text()))
    return preset(config.model)


def check_data(config: PretrainConfig, train_set: DistillationDataset, val_set: DistillationDataset | None) -> int:
    """Reject data that cannot train this config before any work starts; returns the teacher dim."""
    if len(train_set) < config.batch_size:
        raise ValueError(f"training set has {len(train_set)} scenes, fewer than batch_size={config.batch_size}")
    scene, patches, cls = train_set[0]
    grid = math.isqrt(patches.shape[0]) if patches.ndim == 2 else patches.shape[0]
    if patches.ndim == 2 and grid * grid != patches.shape[0]:
        raise ValueError(f"teacher patches [{patches.shape[0]}, D] are not a square grid")
    if grid != config.canvas_grid:
        raise ValueError(
            f"teacher patch grid {grid} x {grid} cannot match canvas_grid={config.canvas_grid}: "
            "set canvas_grid to the teacher grid (or export features at a matching resolution)"
        )
    if scene.ndim != 3 or scene.shape[0] != 3:
        raise ValueError(f"scenes must be [3, H, W], got {tuple(scene.shape)}")
    if cls.shape[-1] != patches.shape[-1]:
        raise ValueError(f"teacher CLS dim {cls.shape[-1]} differs from patch dim {patches.shape[-1]}")
    if val_set is not None and len(val_set) == 0:
        raise ValueError("validation set is empty")
    return patches.shape[-1]


def build_model(config: PretrainConfig, teacher_dim: int, *, resuming: bool = False) -> CanViTForPretraining:
    """The model a run starts from; `resuming` skips the teacher-selected start (the checkpoint overwrites it)."""
    torch.manual_seed(config.seed)
    model = CanViTForPretraining(
        canvit_config_of(config), teacher_dim=teacher_dim, teacher_patch_grid=config.canvas_grid
    )
    if config.backbone_init == "dinov2-s14-imgfocus" and not resuming:
        from saccade.pretrain.weight_selection import select_from_dinov2
        from saccade.teachers.dinov2_bundled import load_bundled_dinov2

        select_from_dinov2(model.canvit, load_bundled_dinov2().vit)
    set_stochastic_depth(model.canvit.backbone, config.drop_path)
    return model


def _parameter_groups(model: CanViTForPretraining, config: PretrainConfig) -> list[dict[str, Any]]:
    """One group at lr, or two when the backbone learns at lr * backbone_lr_scale (the schedule scales both)."""
    if config.backbone_lr_scale == 1:
        return [{"params": list(model.parameters())}]
    backbone = list(model.canvit.backbone.parameters())
    in_backbone = {id(param) for param in backbone}
    rest = [param for param in model.parameters() if id(param) not in in_backbone]
    return [{"params": rest}, {"params": backbone, "lr": config.lr * config.backbone_lr_scale}]


def _fit_standardizers(model: CanViTForPretraining, dataset: DistillationDataset, num_samples: int) -> None:
    count = min(num_samples, len(dataset))
    batch = collate(dataset, list(range(count)))
    model.teacher_patch_standardizer.fit(batch.patches)
    model.teacher_cls_standardizer.fit(batch.cls)


class _StopFlag:
    """Set by SIGTERM / SIGINT; the loop checkpoints and stops at the end of the current step."""

    def __init__(self) -> None:
        self.raised: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _all_reduce_gradients(model: torch.nn.Module, world_size: int) -> None:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def pretrain(
    config: PretrainConfig,
    train_set: DistillationDataset,
    val_set: DistillationDataset | None = None,
    *,
    device: str | torch.device | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    statistics_set: DistillationDataset | None = None,
) -> PretrainResult:
    """Train (or resume from `config.output_dir`/checkpoint.pt) for config.steps steps or max_seconds of training.

    The teacher standardizers are fitted on the first `config.standardizer_samples` scenes of `statistics_set`
    (default: the training set), e.g. the photos of the target domain when training adds other images.
    """
    teacher_dim = check_data(config, train_set, val_set)
    distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    items = rank_slice(config.batch_size, rank, world_size)
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    output_dir = Path(config.output_dir)

    resumed = load_training_checkpoint(output_dir)
    model = build_model(config, teacher_dim, resuming=resumed is not None)
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, config), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    scheduler = make_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    if resumed is not None:
        model.load_state_dict(resumed.model)
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        generator.set_state(resumed.generator)
        torch.set_rng_state(resumed.torch_rng)
        start_step = resumed.step
    else:
        _fit_standardizers(model, statistics_set or train_set, config.standardizer_samples)
        start_step = 0
    model.to(device).train()
    _move_optimizer_state(optimizer, device)
    ema = _weight_average(model, config.ema_decay)
    if ema is not None and resumed is not None and resumed.ema is not None:
        ema.load_state_dict(resumed.ema)
    evaluated = ema.module if ema is not None else model  # what validation sees and what is saved

    def checkpoint(step: int) -> None:
        if rank == 0:
            state = TrainingState(
                step=step,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                generator=generator.get_state(),
                torch_rng=torch.get_rng_state(),
                config=config.to_dict(),
                ema=ema.state_dict() if ema is not None else None,
            )
            save_training_checkpoint(output_dir, state)

    logger = _MetricsLog(output_dir, enabled=rank == 0)
    if rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    step, interrupted, started = start_step, False, time.perf_counter()
    glimpses_seen = 0
    bar = tqdm(total=config.steps, initial=start_step, disable=not progress or rank != 0, desc="pretrain")
    with _StopFlag() as stop:
        while step < config.steps:
            indices = global_batch_indices(
                step, dataset_size=len(train_set), batch_size=config.batch_size, seed=config.seed
            )
            batch = collate(train_set, indices[items])
            batch = random_hflip(
                batch, prob=config.hflip_prob, seed=config.seed, step=step, items=items, global_batch=config.batch_size
            ).to(device)
            optimizer.zero_grad(set_to_none=True)
            metrics = training_step(
                model, batch, config=config, generator=generator, rank_slice=items, global_batch_size=config.batch_size
            )
            if distributed:
                _all_reduce_gradients(model, world_size)
                metrics = _global_metrics(metrics, world_size)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf"))
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            glimpses_seen += metrics.num_glimpses * len(config.rollouts) * config.batch_size
            elapsed = time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{metrics.loss:.3f}", glimpses_per_s=f"{glimpses_seen / elapsed:.0f}")
            if step % config.log_every == 0 or step == config.steps:
                logger.write(_step_record(step, metrics, grad_norm, scheduler, glimpses_seen / elapsed, elapsed))
            if val_set is not None and config.val_every and step % config.val_every == 0 and rank == 0:
                logger.write({"step": step, "validation": validate(evaluated, val_set, config)})
                model.train()
            out_of_time = max_seconds is not None and elapsed >= max_seconds
            if step % config.checkpoint_every == 0 or step == config.steps or stop.raised or out_of_time:
                checkpoint(step)
            if stop.raised or out_of_time:
                interrupted = stop.raised is not None
                break
    bar.close()
    seconds = time.perf_counter() - started
    summary = _finish(evaluated, val_set, config, output_dir, step, glimpses_seen, seconds, rank)
    if ema is not None and rank == 0:  # the raw weights too, for comparison
        save_pretrained(model, output_dir / "model-raw")
    logger.close()
    return PretrainResult(
        model=evaluated, steps_done=step, interrupted=interrupted, output_dir=output_dir, summary=summary
    )


def validate(
    model: CanViTForPretraining, val_set: DistillationDataset, config: PretrainConfig, policies: tuple[str, ...] = ()
) -> dict[str, dict[str, list[float]]]:
    """Standardized cosine per glimpse on the whole held-out set, per policy."""
    model.eval()
    device = next(model.parameters()).device
    batch = collate(val_set, list(range(len(val_set)))).to(device)
    return {
        policy: cosine_per_glimpse(
            model,
            batch,
            policy=policy,
            num_glimpses=config.val_glimpses,
            glimpse_px=config.glimpse_px,
            canvas_grid=config.canvas_grid,
        )
        for policy in policies or config.val_policies
    }


def _finish(model, val_set, config, output_dir: Path, step: int, glimpses: int, seconds: float, rank: int) -> dict:
    summary: dict[str, Any] = {"steps": step, "train_seconds": seconds, "glimpses_per_second": glimpses / seconds}
    if rank != 0:
        return summary
    save_pretrained(model, output_dir / "model")
    if val_set is not None:
        summary["validation"] = validate(model, val_set, config, ("coarse_to_fine", "fine_to_coarse", "random"))
        try:
            device = next(model.parameters()).device
            batch = collate(val_set, list(range(min(4, len(val_set))))).to(device)
            draw_canvas_pca(
                model,
                batch,
                output_dir / "canvas_pca.png",
                num_glimpses=min(config.val_glimpses, 6),
                glimpse_px=config.glimpse_px,
                canvas_grid=config.canvas_grid,
            )
        except ImportError:  # matplotlib is optional
            pass
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (buffers included), or None for decay 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _step_record(step: int, metrics: StepMetrics, grad_norm, scheduler, throughput: float, elapsed: float) -> dict:
    return {
        "step": step,
        "loss": metrics.loss,
        "patch_loss": metrics.patch_loss,
        "cls_loss": metrics.cls_loss,
        "num_glimpses": metrics.num_glimpses,
        "patch_cos": metrics.patch_cos,
        "cls_cos": metrics.cls_cos,
        "grad_norm": float(grad_norm),
        "lr": scheduler.get_last_lr()[0],
        "glimpses_per_second": throughput,
        "seconds": elapsed,
    }


def _global_metrics(metrics: StepMetrics, world_size: int) -> StepMetrics:
    """Losses averaged over ranks (equal local batches), so logs show the global-batch loss."""
    losses = torch.tensor([metrics.loss, metrics.patch_loss, metrics.cls_loss], dtype=torch.float64)
    dist.all_reduce(losses)
    loss, patch_loss, cls_loss = (losses / world_size).tolist()
    return dataclasses.replace(metrics, loss=loss, patch_loss=patch_loss, cls_loss=cls_loss)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)


class _MetricsLog:
    """metrics.jsonl (appended, one JSON object a line) and TensorBoard scalars when it is installed."""

    def __init__(self, output_dir: Path, *, enabled: bool) -> None:
        self.enabled = enabled
        self.path = output_dir / "metrics.jsonl"
        self.tensorboard = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:
                self.tensorboard = None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    self.tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
