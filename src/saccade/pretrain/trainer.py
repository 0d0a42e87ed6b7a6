"""The pretraining loop: data parallelism, checkpoints, stopping, validation, logging (the run's state: state.py).

Data parallelism: launched with torchrun, every rank runs the same step on its slice of the global
batch and the gradients are averaged with one fused all-reduce per step (gloo on CPU, nccl on CUDA).
We do not wrap the model in DistributedDataParallel because a step runs many forwards (glimpses) per
backward and several backwards (TBPTT chunks) per optimizer step, which DDP's per-forward bookkeeping
does not support; the all-reduce after the last backward is exactly what DDP would compute.

Resumption is exact: the batch order is a function of (seed, step), and the viewpoint / rollout-length
generator, the global RNG, model, optimizer and scheduler are restored from the checkpoint. Data streamed from tar
shards resumes from every rank's position the checkpoint records (saccade.pretrain.stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from saccade.config_files import config_to_dict
from saccade.model.checkpoint import save_pretrained
from saccade.model.pretraining import CanViTForPretraining
from saccade.pretrain.augment import random_hflip
from saccade.pretrain.checkpointing import (
    CHECKPOINT_FILE,
    TrainingState,
    load_training_checkpoint,
    lock_run_folder,
    remove_stale_temporary_files,
)
from saccade.pretrain.config import PretrainConfig, check_resume
from saccade.pretrain.data import (
    BatchedDistillationDataset,
    DistillationBatch,
    DistillationDataset,
    collate,
    global_batch_indices,
    rank_slice,
)
from saccade.pretrain.state import TrainingRun, canvit_config_of, set_backbone_learning
from saccade.pretrain.step import StepLosses, StepMetrics, to_device, training_step
from saccade.pretrain.stream import ShardStream, StreamPosition
from saccade.pretrain.tracking import make_tracker, scalars_of
from saccade.pretrain.validate import cosine_curves, cosines_by_policy, draw_canvas_pca
from saccade.provenance import provenance
from saccade.threads import ThreadChoice, apply_threads, choose_threads

__all__ = ["PretrainResult", "TrainingInterrupted", "check_data", "pretrain"]


@dataclass(frozen=True)
class PretrainResult:
    model: CanViTForPretraining
    steps_done: int
    status: Literal["complete", "time_limit"]  # all config.steps done, or stopped by max_seconds
    output_dir: Path
    summary: dict[str, Any]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped pretraining after a checkpoint; no final model was written, and rerunning resumes.

    A KeyboardInterrupt, so that `except Exception` in a caller does not carry on with a partial model.
    """

    def __init__(self, signum: int, step: int, total_steps: int, output_dir: Path) -> None:
        self.signum, self.step, self.total_steps, self.output_dir = signum, step, total_steps, output_dir
        super().__init__(
            f"{signal.Signals(signum).name} stopped pretraining at step {step} of {total_steps}: the checkpoint in "
            f"{output_dir} resumes it (run the same command again); no final model was written"
        )


def check_data(config: PretrainConfig, train_set: DistillationDataset, val_set: DistillationDataset | None) -> int:
    """Reject data that cannot train this config before any work starts; returns the teacher dim."""
    if len(train_set) < config.batch_size:
        raise ValueError(f"training set has {len(train_set)} scenes, fewer than batch_size={config.batch_size}")
    scene, patches, cls = train_set[0]
    grid = math.isqrt(patches.shape[0]) if patches.ndim == 2 else patches.shape[0]
    if patches.ndim == 2 and grid * grid != patches.shape[0]:
        raise ValueError(f"teacher patches [{patches.shape[0]}, D] are not a square grid")
    if grid != config.episode.canvas_grid:
        raise ValueError(
            f"teacher patch grid {grid} x {grid} cannot match canvas_grid={config.episode.canvas_grid}: "
            "set canvas_grid to the teacher grid (or export features at a matching resolution)"
        )
    if scene.ndim != 3 or scene.shape[0] != 3:
        raise ValueError(f"scenes must be [3, H, W], got {tuple(scene.shape)}")
    if cls.shape[-1] != patches.shape[-1]:
        raise ValueError(f"teacher CLS dim {cls.shape[-1]} differs from patch dim {patches.shape[-1]}")
    if val_set is not None and len(val_set) == 0:
        raise ValueError("validation set is empty")
    return patches.shape[-1]


class _StopFlag:
    """Set by SIGTERM / SIGINT; the loop checkpoints and stops at the end of the current step (with several ranks,
    at the next step where they agree: _agreed_stop)."""

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
    allow_config_change: bool = False,
) -> PretrainResult:
    """Train (or resume from `config.output_dir`/checkpoint.pt) for config.steps steps or max_seconds of training.

    The teacher standardizers are fitted on the first `config.standardizer_samples` scenes of `statistics_set`
    (default: the training set), e.g. the photos of the target domain when training adds other images. The
    process holds a lock on output_dir while it runs. Resuming with settings other than the checkpoint's is
    refused unless `allow_config_change` (and always for RESUME_FIXED_FIELDS). Raises TrainingInterrupted after
    checkpointing on SIGTERM / SIGINT, and TrainingDiverged on a non-finite loss (the last checkpoint stays).
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 (or None for no limit), got {max_seconds}")
    rank, world_size, device = _setup_distributed(device)
    for dataset in (train_set, val_set, statistics_set):
        if isinstance(dataset, BatchedDistillationDataset | ShardStream):
            dataset.to(device)  # the teacher in the loop computes its targets on the training device
    output_dir = Path(config.output_dir)
    with lock_run_folder(output_dir) if rank == 0 else contextlib.nullcontext():
        run, threads, logger = _start_or_resume(
            config,
            train_set,
            val_set,
            statistics_set=statistics_set or _map_style(train_set),
            device=device,
            rank=rank,
            world_size=world_size,
            allow_config_change=allow_config_change,
        )
        with contextlib.closing(logger):
            stop, glimpses_seen, seconds = _train_steps(run, train_set, val_set, logger, max_seconds, progress)
        summary = _summary(run, stop, glimpses_seen, seconds, threads)
        if summary["status"] == "interrupted":
            if rank == 0:
                _write_summary(output_dir, {**summary, "signal": signal.Signals(stop).name})
            raise TrainingInterrupted(stop, run.step, run.config.steps, output_dir)
        _finish(run, val_set, output_dir, summary)
    return PretrainResult(
        model=run.evaluated, steps_done=run.step, status=summary["status"], output_dir=output_dir, summary=summary
    )


def _setup_distributed(device: str | torch.device | None) -> tuple[int, int, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1 -> (rank, world size, device: this rank's GPU or cpu)."""
    distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    return rank, world_size, torch.device(device)


def _start_or_resume(
    config: PretrainConfig,
    train_set: DistillationDataset,
    val_set: DistillationDataset | None,
    *,
    statistics_set: DistillationDataset,
    device: torch.device,
    rank: int,
    world_size: int,
    allow_config_change: bool,
) -> tuple[TrainingRun, ThreadChoice, _MetricsLog]:
    """The run from output_dir's checkpoint (or a new one), with config.json written and the metrics log open."""
    output_dir = Path(config.output_dir)
    if rank == 0:
        remove_stale_temporary_files(output_dir)
    resumed, changes = _resume(output_dir, config, allow_config_change=allow_config_change)
    threads = _choose_threads(config, resumed, world_size=world_size)
    config = dataclasses.replace(config, threads=threads.num_threads)  # config.json records the choice
    teacher_dim = check_data(config, _map_style(train_set), val_set)
    run = TrainingRun.build(config, teacher_dim, resumed, statistics_set, device=device, rank=rank)
    logger = _MetricsLog(output_dir, enabled=rank == 0, tracker=config.tracker, run_config=config.to_dict())
    if rank == 0:
        (output_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if changes:
        logger.write({"step": run.step, "config_changes": changes})
    return run, threads, logger


def _summary(run: TrainingRun, stop: int | None, glimpses_seen: int, seconds: float, threads: ThreadChoice) -> dict:
    """summary.json's fields: how the run ended, its steps, speed and threads, and its provenance."""
    status = "complete" if run.step >= run.config.steps else "time_limit" if stop is None else "interrupted"
    return {
        "status": status,
        "steps": run.step,
        "total_steps": run.config.steps,
        "train_seconds": seconds,
        "glimpses_per_second": glimpses_seen / seconds,
        "threads": threads.to_dict(),
        "provenance": provenance(
            seeds={"seed": run.config.seed},
            device=str(next(run.model.parameters()).device),
            threads=threads.num_threads,
        ),
    }


def _choose_threads(config: PretrainConfig, resumed: TrainingState | None, *, world_size: int) -> ThreadChoice:
    """config.threads if set, else the resumed run's (float sums can depend on the thread count, so a resumed run
    repeats the uninterrupted one), else a choice from the free cores and this rank's tokens per forward; applied."""
    recorded = resumed.config.get("threads", 0) if resumed is not None else 0
    if not config.threads and recorded:
        choice = ThreadChoice(recorded, "recorded in the checkpoint's config")
    else:
        spec = canvit_config_of(config).backbone
        tokens_per_item = (config.episode.glimpse_px // spec.patch_size) ** 2 + config.episode.canvas_grid**2
        local_batch = max(1, config.batch_size // world_size)
        choice = choose_threads(config.threads or None, work_tokens=local_batch * tokens_per_item)
    apply_threads(choice)
    return choice


def _resume(
    output_dir: Path, config: PretrainConfig, *, allow_config_change: bool
) -> tuple[TrainingState | None, dict[str, tuple[Any, Any]]]:
    """The checkpoint in output_dir (None: a new run) and the settings that differ from it, once allowed."""
    resumed = load_training_checkpoint(output_dir)
    if resumed is None:
        return None, {}
    source = str(output_dir / CHECKPOINT_FILE)
    return resumed, check_resume(resumed.config, config, allow_change=allow_config_change, source=source)


def _train_steps(run: TrainingRun, train_set, val_set, logger, max_seconds: float | None, progress: bool):
    """Steps until config.steps, max_seconds or a signal -> (the signal or None, glimpses seen, seconds)."""
    config, model = run.config, run.model
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    items = rank_slice(config.batch_size, run.rank, world_size)
    device = next(model.parameters()).device
    glimpses_seen, started = 0, time.perf_counter()
    bar = tqdm(total=config.steps, initial=run.step, disable=not progress or run.rank != 0, desc="pretrain")
    batches = _batches(run, train_set, items, world_size)
    with _StopFlag() as stop, bar:
        while run.step < config.steps:
            batch = to_device(next(batches), device)  # pinned and non-blocking on CUDA
            losses, grad_norm = _optimizer_step(run, batch, items, world_size)
            glimpses_seen += losses.num_glimpses * len(config.rollouts) * config.batch_size
            elapsed = time.perf_counter() - started
            bar.update(1)
            if _is_log_step(run.step, config):  # on an accelerator, the only steps that wait for the device
                metrics = losses.metrics()
                bar.set_postfix(loss=f"{metrics.loss:.3f}", glimpses_per_s=f"{glimpses_seen / elapsed:.0f}")
                logger.write(
                    _step_record(run.step, metrics, float(grad_norm), run.scheduler, glimpses_seen / elapsed, elapsed)
                )
            if val_set is not None and config.val_every and run.step % config.val_every == 0 and run.rank == 0:
                logger.write({"step": run.step, "validation": validate(run.evaluated, val_set, config)})
                model.train()
            out_of_time = max_seconds is not None and elapsed >= max_seconds
            signum, out_of_time = _agreed_stop(stop.raised, out_of_time, run.step, config, world_size, device)
            if run.step % config.checkpoint_every == 0 or run.step == config.steps or signum or out_of_time:
                run.checkpoint()
            if signum or out_of_time:
                return signum, glimpses_seen, time.perf_counter() - started
    return None, glimpses_seen, time.perf_counter() - started


def _agreed_stop(
    signum: int | None, out_of_time: bool, step: int, config: PretrainConfig, world_size: int, device: torch.device
) -> tuple[int | None, bool]:
    """(signal, out of time) that every rank acts on after `step`: this process's own on one rank. Ranks stop
    together or not at all (a checkpoint and the gradient all-reduce are collective: a rank that stopped alone
    would leave the others waiting), so with several they agree at logging and checkpoint steps, the steps that
    already wait for the device, and a signal or the time limit of any rank stops them all there."""
    if world_size == 1:
        return signum, out_of_time
    if not (_is_log_step(step, config) or step % config.checkpoint_every == 0):
        return None, False
    flags = torch.tensor([signum or 0, int(out_of_time)], device=device)  # [2]
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    agreed_signum, agreed_out_of_time = flags.tolist()
    return agreed_signum or None, bool(agreed_out_of_time)


def _is_log_step(step: int, config: PretrainConfig) -> bool:
    return step % config.log_every == 0 or step == config.steps


def _optimizer_step(
    run: TrainingRun, batch: DistillationBatch, items: slice, world_size: int
) -> tuple[StepLosses, torch.Tensor]:
    """One step on this rank's `items` of the global batch, gradients averaged over ranks -> (losses, grad norm [])."""
    config, model = run.config, run.model
    if run.step == config.backbone_frozen_steps > 0:  # frozen until now (TrainingRun.build)
        set_backbone_learning(model.canvit, True)
    run.optimizer.zero_grad(set_to_none=True)
    losses = training_step(
        model, batch, config=config, generator=run.generator, rank_slice=items, global_batch_size=config.batch_size
    )
    if dist.is_available() and dist.is_initialized():
        _all_reduce_gradients(model, world_size)
        losses = _global_losses(losses, world_size)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf"))  # []
    # Reading values on the host waits for an accelerator, so there the check runs at logging steps only (a
    # non-finite step in between is caught at the next one; checkpoints never save non-finite weights).
    if grad_norm.device.type == "cpu" or _is_log_step(run.step + 1, config):
        loss, norm = torch.stack([losses.values[0], grad_norm.to(losses.values.dtype)]).tolist()
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise run.diverged(run.step + 1, f"the loss is {loss} and the gradient norm {norm}")
    run.optimizer.step()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(model)
    run.step += 1
    return losses, grad_norm


def _map_style(train_set):
    """What checks the data and fits the standardizers: the training set, or a stream's first samples."""
    return train_set.head if isinstance(train_set, ShardStream) else train_set


def _batches(run: TrainingRun, train_set, items: slice, world_size: int) -> Iterator[DistillationBatch]:
    """This rank's batch of each step from run.step on: drawn by (seed, step), or streamed from tar shards (whose
    position run.checkpoint() then saves)."""
    config = run.config
    if not isinstance(train_set, ShardStream):
        return (_batch(train_set, config, run.step, items) for _ in itertools.count())
    if run.step and run.resumed_data is None:
        raise ValueError(f"the checkpoint of step {run.step} has no position in tar shards: resume with its own --data")
    position = None if run.resumed_data is None else StreamPosition.from_dict(run.resumed_data)
    local_batch = items.stop - items.start
    stream = train_set.batches(
        seed=config.seed, local_batch=local_batch, rank=run.rank, world_size=world_size, position=position
    )
    run.data_position = lambda: stream.position().to_dict()
    flip = dict(prob=config.hflip_prob, seed=config.seed, items=items, global_batch=config.batch_size)
    return (random_hflip(batch, step=run.step, **flip) for batch in stream)


def _batch(train_set: DistillationDataset, config: PretrainConfig, step: int, items: slice) -> DistillationBatch:
    """This rank's items of the global batch of `step`, flipped as the step's draws say."""
    indices = global_batch_indices(step, dataset_size=len(train_set), batch_size=config.batch_size, seed=config.seed)
    batch = collate(train_set, indices[items])
    return random_hflip(
        batch, prob=config.hflip_prob, seed=config.seed, step=step, items=items, global_batch=config.batch_size
    )


def validate(
    model: CanViTForPretraining, val_set: DistillationDataset, config: PretrainConfig, policies: tuple[str, ...] = ()
) -> dict[str, dict[str, list[float]]]:
    """Standardized cosine per glimpse on the whole held-out set, per policy."""
    model.eval()
    device = next(model.parameters()).device
    batch = collate(val_set, list(range(len(val_set)))).to(device)
    return cosines_by_policy(
        cosine_curves(model, batch, policies=policies or config.val_policies, episode=config.episode)
    )


def _finish(run: TrainingRun, val_set: DistillationDataset | None, output_dir: Path, summary: dict[str, Any]) -> None:
    """Rank 0: save the final model, run the final validation, write summary.json, and save the raw weights too."""
    if run.rank != 0:
        return
    model, config = run.evaluated, run.config
    save_pretrained(model, output_dir / "model", episode=config_to_dict(config.episode))
    if val_set is not None:
        summary["validation"] = validate(model, val_set, config, ("coarse_to_fine", "fine_to_coarse", "random"))
        try:
            device = next(model.parameters()).device
            batch = collate(val_set, list(range(min(4, len(val_set))))).to(device)
            draw_canvas_pca(
                model,
                batch,
                output_dir / "canvas_pca.png",
                num_glimpses=min(config.episode.num_glimpses, 6),
                glimpse_px=config.episode.glimpse_px,
                canvas_grid=config.episode.canvas_grid,
            )
        except ImportError:  # matplotlib is optional
            pass
    _write_summary(output_dir, summary)
    if run.ema is not None:  # the raw weights too, for comparison
        save_pretrained(run.model, output_dir / "model-raw", episode=config_to_dict(config.episode))


def _write_summary(output_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json: "status" says whether the run is complete, stopped at its time limit, or interrupted."""
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def _step_record(
    step: int, metrics: StepMetrics, grad_norm: float, scheduler, throughput: float, elapsed: float
) -> dict:
    return {
        "step": step,
        "loss": metrics.loss,
        "patch_loss": metrics.patch_loss,
        "cls_loss": metrics.cls_loss,
        "num_glimpses": metrics.num_glimpses,
        "patch_cos": metrics.patch_cos,
        "cls_cos": metrics.cls_cos,
        "grad_norm": grad_norm,
        "lr": scheduler.get_last_lr()[0],
        "glimpses_per_second": throughput,
        "seconds": elapsed,
    }


def _global_losses(losses: StepLosses, world_size: int) -> StepLosses:
    """Losses averaged over ranks (equal local batches), so logs show the global-batch loss; cosines stay this
    rank's. Reduced on the device (NCCL reduces no host tensors), without waiting for it."""
    head = losses.values[:3].clone()  # loss, patch_loss, cls_loss
    dist.all_reduce(head)
    return dataclasses.replace(losses, values=torch.cat([head / world_size, losses.values[3:]]))


class _MetricsLog:
    """metrics.jsonl (appended, one JSON object a line) and the same scalars to config.tracker (pretrain/tracking)."""

    def __init__(self, output_dir: Path, *, enabled: bool, tracker: str = "tensorboard", run_config=None) -> None:
        self.enabled = enabled
        self.path = output_dir / "metrics.jsonl"
        self.tracker = make_tracker(tracker, output_dir, run_config=run_config or {}) if enabled else None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        if self.tracker is not None:
            self.tracker.log(scalars_of(record), record["step"])

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
