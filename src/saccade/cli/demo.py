"""`saccade demo`: the main job, end to end."""

from __future__ import annotations

import argparse

from saccade.cli._common import add_threads_flag


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: pretrain a tiny CanViT from nothing, evaluate every policy, write a report",
        description=(
            "End to end on the bundled offline data: crops of the bundled photos and their teacher features, "
            "pretraining of a tiny CanViT, probes on the bundled Fashion-MNIST benchmark, every policy per glimpse, "
            "then report.html and results.json in the output folder. Finished stages are skipped on a rerun."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, under 5 minutes (what CI runs)")
    parser.add_argument("--config", help="TOML or JSON file of DemoConfig fields (overrides the preset)")
    parser.add_argument("--output-dir", help="report folder (default report/, or report-quick/ with --quick)")
    add_threads_flag(parser)
    parser.set_defaults(run=_run_demo, batch_flag="batch_size in --config")


def _run_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from saccade.cli._checks import output_folder, read_settings_file
    from saccade.demo import DEMO_PRESETS, DemoConfig, run_demo

    config = DEMO_PRESETS["quick" if args.quick else "full"]
    if args.config:
        config = DemoConfig.from_dict({**config.to_dict(), **read_settings_file(args.config)})
    if args.output_dir:
        config = dataclasses.replace(config, output_dir=args.output_dir)
    if args.threads is not None:
        config = dataclasses.replace(config, threads=args.threads)
    output_folder(config.output_dir, flag="--output-dir")
    run_demo(config)
    return 0
