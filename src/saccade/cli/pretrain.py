"""`saccade pretrain` (dense latent distillation) and `saccade evaluate-distillation`."""

from __future__ import annotations

import argparse
import json
import sys

from saccade.cli._checks import checked_device, checkpoint_folder, output_file, output_folder
from saccade.cli._common import add_dataclass_flags, add_threads_flag, config_from_args, use_threads_flag


def add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    from saccade.pretrain.config import PretrainConfig

    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a CanViT by dense latent distillation",
        description=(
            "Passive-to-active dense latent distillation (paper §5): per step an F-IID and an R-IID rollout from fresh "
            "canvases, truncated BPTT, MSE to standardized teacher patch and CLS features. Resumes from "
            "OUTPUT_DIR/checkpoint.pt, with the same settings unless --allow-config-change. SIGTERM / SIGINT "
            "checkpoint and stop without a final model: summary.json says status 'interrupted' and the exit code is "
            "128 + the signal number (130 for SIGINT, 143 for SIGTERM). Launch with torchrun for data parallelism."
        ),
    )
    parser.add_argument("--config", help="JSON or TOML file of PretrainConfig fields; flags override it")
    parser.add_argument(
        "--data",
        required=True,
        help="training data: a teacher-feature shard folder, a named set of crops of the bundled photos with the "
        "bundled teacher's features ('bundled', 'anchor': see saccade.data.distill_sets), or 'synthetic' (smoke run)",
    )
    parser.add_argument(
        "--val-data", help="held-out data, same kinds as --data ('bundled-heldout', 'anchor-heldout', 'anchor-seen')"
    )
    parser.add_argument(
        "--statistics-data",
        help="fit the teacher standardizers on this data (same kinds as --data) instead of the training data",
    )
    parser.add_argument(
        "--max-minutes", type=float, help="stop (with a checkpoint and the final model) after this much training time"
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume a checkpoint with settings other than its own (lr, batch size, seed, steps ...); the changes are "
        "recorded in metrics.jsonl. The model and canvas grid can never change",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_flags(parser, PretrainConfig)
    parser.set_defaults(run=_run_pretrain, batch_flag="--batch-size")


def _check_data(spec: str | None, *, flag: str) -> None:
    """A named crop set, 'synthetic' or an existing shard folder (None: not given), else ValueError naming `flag`."""
    from pathlib import Path

    from saccade.data.distill_sets import DISTILLATION_SETS

    if spec is not None and spec not in (*DISTILLATION_SETS, "synthetic") and not Path(spec).is_dir():
        raise ValueError(f"{flag} {spec}: no such shard folder (export one with `saccade export-features`)")


def _distillation_data(spec: str | None, config, *, seed: int):
    """A named crop set, 'synthetic' or a shard folder (checked by _check_data) -> a dataset (None for None)."""
    if spec is None:
        return None
    from saccade.data.distill_sets import DISTILLATION_SETS, distillation_crops

    if spec in DISTILLATION_SETS:
        return distillation_crops(spec, canvas_grid=config.canvas_grid, seed=seed)
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        grid, size = config.canvas_grid, config.canvas_grid * 16
        return synthetic_dataset(max(256, 4 * config.batch_size), scene_px=size, grid=grid, dim=32, seed=seed)
    from saccade.data.shards import ShardDataset

    return ShardDataset(spec)


def _run_pretrain(args: argparse.Namespace) -> int:
    from saccade.pretrain.config import PretrainConfig
    from saccade.pretrain.trainer import TrainingInterrupted, pretrain
    from saccade.threads import use_threads

    config = config_from_args(args, PretrainConfig)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
    device = checked_device(args.device)
    _check_data(args.data, flag="--data")
    _check_data(args.val_data, flag="--val-data")
    _check_data(args.statistics_data, flag="--statistics-data")
    output_folder(config.output_dir, flag="--output-dir")
    # Named crop sets compute teacher features here, before pretrain() makes the run's own choice (which keeps a
    # resumed run's recorded count): without a choice this stage would run on torch's default threads.
    use_threads(config.threads)
    train_set = _distillation_data(args.data, config, seed=config.seed)
    val_set = _distillation_data(args.val_data, config, seed=config.seed + 10_000)
    statistics_set = _distillation_data(args.statistics_data, config, seed=config.seed)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    try:
        result = pretrain(
            config,
            train_set,
            val_set,
            device=device,
            max_seconds=max_seconds,
            progress=not args.quiet,
            statistics_set=statistics_set,
            allow_config_change=args.allow_config_change,
        )
    except TrainingInterrupted as interrupted:
        print(f"saccade pretrain: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    print(json.dumps({"steps": result.steps_done, "output_dir": str(result.output_dir), **result.summary}, indent=1))
    return 0


def add_evaluate_distillation(subparsers: argparse._SubParsersAction) -> None:
    from saccade.data.distill_sets import DISTILLATION_SETS

    parser = subparsers.add_parser(
        "evaluate-distillation",
        help="standardized cosine to the teacher per glimpse and policy, with the passive baselines",
        description=(
            "Roll out C2F, F2C, R-IID, F-IID and RFS on a named crop set with each pretrained model (e.g. one per "
            "training seed) and report the standardized patch / CLS cosine to the teacher per glimpse: the mean over "
            "the models, their range, and the input-matched teacher (the first glimpse's pixels through the teacher)."
        ),
    )
    parser.add_argument("--model", nargs="+", required=True, help="pretraining model folders (saved by pretrain)")
    parser.add_argument("--data", nargs="+", default=["anchor-heldout", "anchor-seen"], choices=DISTILLATION_SETS)
    parser.add_argument("--glimpse-px", type=int, default=32)
    parser.add_argument("--canvas-grid", type=int, default=8)
    parser.add_argument("--glimpses", type=int, default=10)
    parser.add_argument("--policy-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--statistics",
        choices=DISTILLATION_SETS,
        help="score every model in one standardized space, fitted on the first 1,024 crops of this set (default: "
        "each model's own training statistics; use it to compare models trained on different data)",
    )
    parser.add_argument("--output", "-o", help="write the results as JSON here (and the tables next to it as .md)")
    add_threads_flag(parser)
    parser.set_defaults(run=_run_evaluate_distillation)


def _run_evaluate_distillation(args: argparse.Namespace) -> int:
    from saccade.evaluate.distillation import evaluate_distillation, markdown_report

    for path in args.model:
        checkpoint_folder(path, flag="--model")
    output = None if args.output is None else output_file(args.output, flag="--output")
    use_threads_flag(args)
    result = evaluate_distillation(
        args.model,
        args.data,
        glimpse_px=args.glimpse_px,
        canvas_grid=args.canvas_grid,
        num_glimpses=args.glimpses,
        policy_seeds=args.policy_seeds,
        statistics=args.statistics,
    )
    report = markdown_report(result)
    print(report)
    if output is not None:
        output.write_text(json.dumps(result, indent=1))
        output.with_suffix(".md").write_text(report)
    return 0
