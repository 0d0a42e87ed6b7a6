"""`saccade evaluate`: frozen probes, every policy per glimpse, passive teacher baselines."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from saccade.cli._checks import checked_device, checkpoint_folder, existing_file, output_folder, read_settings_file
from saccade.cli._common import THREADS_HELP

if TYPE_CHECKING:
    from saccade.evaluate.pipeline import EvaluateRunConfig


def add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="probe a frozen CanViT per glimpse and policy; compare with a passive teacher",
        description=(
            "Train (or load) linear probes on a frozen CanViT (segmentation on the canvas, classification on the "
            "recurrent CLS; R-IID training rollouts), evaluate every policy per glimpse (global mIoU, pixel accuracy, "
            "top-1/top-5; mean and 95%% bootstrap interval over runs of stochastic policies), probe a passive teacher "
            "at several input sizes, and write results.md, results.csv and plots to --output-dir (paper §6, App. D)."
        ),
    )
    parser.add_argument("--config", help="JSON or TOML file of evaluate settings (the flag names with underscores)")
    add = parser.add_argument
    add("--checkpoint", help="CanViT checkpoint folder (ours, or the authors' 0.1 / 0.2)")
    add("--preset", help="evaluate a randomly initialised preset instead (smoke runs)")
    add("--model-seed", type=int, help="seed of the random initialisation (default 0)")
    benchmarks = ("fashion", "fashion-seg", "fashion-cls", "ade20k", "imagenet")
    add("--benchmark", choices=benchmarks, help="default fashion: the bundled fashion-seg and fashion-cls")
    add("--data-root", help="ADEChallengeData2016 folder (ade20k), or a root with train/ and val/ class folders")
    add("--scene-px", type=int, help="scene side for ade20k / imagenet (default 512)")
    add("--num-train", type=int, help="training scenes (bundled benchmark size, or a cap)")
    add("--num-test", type=int, help="test scenes (bundled benchmark size, or a cap)")
    add("--backgrounds", help="background photo folder of the bundled benchmark (default /usr/share/backgrounds)")
    add("--fashion-root", help="Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)")
    add("--cache", help="cache root for built benchmarks (default $SACCADE_CACHE_DIR or ~/.cache/saccade)")
    add("--output-dir", "-o", help="where the report, plots and probes go (default ./evaluation)")
    add("--policies", nargs="+", help="policies (default C2F F2C R-IID F-IID RFS EG-C2F)")
    add("--num-glimpses", "-T", type=int, help="glimpses per rollout (default 21)")
    add("--canvas-grid", type=int, help="canvas grid G (default 32)")
    add("--glimpse-px", type=int, help="glimpse side in px (default 128)")
    add("--num-runs", type=int, help="runs per policy with a random element: R-IID, F-IID, C2F, F2C (default 10)")
    add("--batch-size", type=int, help="batch of rollouts and probe training (default 16)")
    add("--seed", type=int, help="seed of policies, probe training and data order (default 0)")
    add("--probe-steps", type=int, help="probe training steps (default 40000)")
    add("--probe-lr", type=float, help="peak probe learning rate (default 3e-4)")
    add("--probe-warmup-steps", type=int, help="probe warmup steps (default 1500)")
    add("--train-glimpses", type=int, help="glimpses of the R-IID probe-training rollouts (default 10)")
    add("--seg-probe", help="load this segmentation probe (.safetensors) instead of training one")
    add("--cls-probe", help="load this classification probe (.safetensors) instead of training one")
    add("--teacher", help="passive baseline: a saccade.teachers name, or module:function returning a teacher")
    add("--teacher-px", type=int, nargs="+", help="teacher input sides (multiples of its patch size)")
    add("--device", help="torch device (default cpu)")
    add("--quiet", action="store_true", help="no progress bars")
    add("--threads", type=int, help=THREADS_HELP)
    parser.set_defaults(run=_run_evaluate, batch_flag="--batch-size")


def _run_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from saccade.evaluate.pipeline import EvaluateRunConfig, run_evaluation

    settings = read_settings_file(args.config) if args.config else {}
    for field in dataclasses.fields(EvaluateRunConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            settings[field.name] = value
    if args.quiet:
        settings["progress"] = False
    config = EvaluateRunConfig.from_dict(settings)
    _check_paths_and_device(config)
    summary = run_evaluation(config)
    print(summary.paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in summary.paths.values()))
    return 0


def _check_paths_and_device(config: EvaluateRunConfig) -> None:
    """The run's input files, device and output folder (flags or --config), before any probe is trained."""
    if config.checkpoint is not None:
        checkpoint_folder(config.checkpoint, flag="--checkpoint")
    for flag, probe in (("--seg-probe", config.seg_probe), ("--cls-probe", config.cls_probe)):
        if probe is not None:
            existing_file(probe, flag=flag)
    checked_device(config.device)
    output_folder(config.output_dir, flag="--output-dir")
