"""`saccade pretrain`: dense latent distillation."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, ClassVar

import tyro

from saccade.cli._checks import checked_device, output_folder
from saccade.data.specs import check_distillation_spec
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.stream import StreamOptions


@dataclass(frozen=True, kw_only=True)
class PretrainCommand:
    """Passive-to-active dense latent distillation (paper §5): per step one rollout per policy in `rollouts` from
    fresh canvases, truncated BPTT, MSE to standardized teacher patch and CLS features. Resumes from
    OUTPUT_DIR/checkpoint.pt, with the same settings unless --allow-config-change. SIGTERM / SIGINT checkpoint and
    stop without a final model: summary.json says status 'interrupted' and the exit code is 128 + the signal number
    (130 for SIGINT, 143 for SIGTERM). Launch with torchrun for data parallelism."""

    BATCH_FLAG: ClassVar[str] = "--batch-size"

    settings: Annotated[PretrainConfig, tyro.conf.arg(name="")]
    data: str
    """Training data: a teacher-feature shard folder; tar shards, streamed (a folder of .tar files, a brace pattern
    shards-{000..009}.tar or a pipe: command; see `saccade pack-shards`); a named set of crops of the bundled photos
    with the bundled teacher's features ('bundled', 'anchor': see saccade.data.distill_sets); 'synthetic' (smoke
    run); or with --teacher an image folder (targets computed in the loop)."""
    data_workers: int = 2
    """Tar-shard --data: DataLoader workers decoding samples per process (a resumed run keeps its number)."""
    shuffle_buffer: int = 1000
    """Tar-shard --data: samples each worker shuffles among (a resumed run keeps its size)."""
    val_data: str | None = None
    """Held-out data, same kinds as --data ('bundled-heldout', 'anchor-heldout', 'anchor-seen')."""
    statistics_data: str | None = None
    """Fit the teacher standardizers on this data (same kinds as --data) instead of the training data."""
    max_minutes: float | None = None
    """Stop (with a checkpoint and the final model) after this much training time."""
    allow_config_change: bool = False
    """Resume a checkpoint with settings other than its own (lr, batch size, seed, steps ...); the changes are
    recorded in metrics.jsonl. The model and canvas grid can never change."""
    device: str | None = None
    """cpu, cuda, cuda:1 ... (default: cuda if available)."""
    quiet: bool = False
    """No progress bar."""


def run_pretrain(command: PretrainCommand) -> int:
    from saccade.pretrain.trainer import TrainingInterrupted, pretrain
    from saccade.threads import use_threads

    config = command.settings
    if command.max_minutes is not None and not command.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {command.max_minutes}")
    device = checked_device(command.device)
    datasets = {"--data": command.data, "--val-data": command.val_data, "--statistics-data": command.statistics_data}
    for flag, spec in datasets.items():
        if spec is not None:
            check_distillation_spec(spec, flag=flag)
    output_folder(config.output_dir, flag="--output-dir")
    # Named crop sets compute teacher features here, before pretrain() makes the run's own choice (which keeps a
    # resumed run's recorded count): without a choice this stage would run on torch's default threads.
    use_threads(config.threads)
    seeds = {"--data": config.seed, "--val-data": config.seed + 10_000, "--statistics-data": config.seed}
    teacher = None
    if config.teacher is not None:
        from saccade.pretrain.teacher_targets import load_configured_teacher

        teacher = load_configured_teacher(config)
    stream = StreamOptions(
        num_workers=command.data_workers,
        shuffle_buffer=command.shuffle_buffer,
        head_samples=max(config.batch_size, config.standardizer_samples),
    )
    train_set, val_set, statistics_set = (
        _open(spec, config, seed=seeds[flag], teacher=teacher, stream=stream if flag == "--data" else None)
        for flag, spec in datasets.items()
    )
    max_seconds = None if command.max_minutes is None else 60 * command.max_minutes
    try:
        result = pretrain(
            config,
            train_set,
            val_set,
            device=device,
            max_seconds=max_seconds,
            progress=not command.quiet,
            statistics_set=statistics_set,
            allow_config_change=command.allow_config_change,
        )
    except TrainingInterrupted as interrupted:
        print(f"saccade pretrain: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    print(json.dumps({"steps": result.steps_done, "output_dir": str(result.output_dir), **result.summary}, indent=1))
    return 0


def _open(spec: str | None, config: PretrainConfig, *, seed: int, teacher=None, stream: StreamOptions | None = None):
    """The dataset `spec` names (None for None); a synthetic set holds at least 4 batches; with a `teacher`, an
    image folder whose targets it computes in the loop."""
    from saccade.data.specs import SYNTHETIC_SCENES, open_distillation

    if spec is None:
        return None
    num_scenes = max(SYNTHETIC_SCENES, 4 * config.batch_size) if spec == "synthetic" else None
    grid = config.episode.canvas_grid
    return open_distillation(spec, canvas_grid=grid, seed=seed, num_scenes=num_scenes, teacher=teacher, stream=stream)
