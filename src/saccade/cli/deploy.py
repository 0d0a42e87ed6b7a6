"""`saccade bench` (against the authors' implementation) and `saccade export` (one glimpse step)."""

from __future__ import annotations

import argparse
import sys

from saccade.cli._checks import checkpoint_folder, output_file, output_folder


def add_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time CanViT against the authors' canvit-pytorch (same weights, same run)",
        description=(
            "Per-glimpse latency (batch 1) and throughput (batch 16) of CanViT-B and -S at canvas grids "
            "8..128, one pretraining step, GFLOP/s against a large matmul and peak memory; with the authors' "
            "package (--baseline or $SACCADE_BENCH_BASELINE) both run interleaved on the same weights and "
            "outputs are checked to agree. Writes bench.json and bench.md."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny cases (smoke test, seconds)")
    parser.add_argument("--baseline", help="folder with canvit_pytorch + canvit_core (pip install --target)")
    parser.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    parser.add_argument("--models", nargs="+", help="presets of the glimpse cases (default canvit-b16 canvit-s16)")
    parser.add_argument("--grids", type=int, nargs="+", help="canvas grids (default 8 16 32 64 128)")
    parser.add_argument("--throughput-batch", type=int, help="batch of the throughput cases, 0 skips (default 16)")
    parser.add_argument("--pretrain-models", nargs="*", help="presets of the pretraining step (none skips it)")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default 9)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.set_defaults(run=_run_bench, batch_flag="--throughput-batch")


def _run_bench(args: argparse.Namespace) -> int:
    import os

    from saccade.bench import BenchConfig, run_bench
    from saccade.bench.implementations import BASELINE_ENV

    output_folder(args.out, flag="--out")
    settings = {
        "models": tuple(args.models) if args.models else None,
        "grids": tuple(args.grids) if args.grids else None,
        "throughput_batch": args.throughput_batch,
        "pretrain_models": tuple(args.pretrain_models) if args.pretrain_models is not None else None,
        "repeats": args.repeats,
        "num_threads": args.threads,
        "baseline_path": args.baseline or os.environ.get(BASELINE_ENV) or None,
    }
    settings = {name: value for name, value in settings.items() if value is not None}
    if args.no_memory:
        settings["measure_memory"] = False
    if "repeats" in settings:
        settings["min_repeats"] = min(settings["repeats"], BenchConfig.min_repeats)
    config = BenchConfig.quick(**settings) if args.quick else BenchConfig(**settings)
    report = run_bench(config)
    json_path, markdown_path = report.write(args.out)
    print(report.to_markdown())
    print(f"wrote {json_path} and {markdown_path}")
    return 0 if all(case.agree is not False for case in report.cases) else 1


def add_export(subparsers: argparse._SubParsersAction) -> None:
    from saccade.export.pipeline import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export one glimpse step to ONNX or torch.export (.pt2) and check it against the eager model",
        description=(
            "Export one CanViT glimpse step (glimpse, viewpoint centers and scales, canvas and recurrent CLS in; new "
            "canvas and recurrent CLS, plus the teacher readouts of a pretraining checkpoint, out) with a dynamic "
            "batch; glimpse size and canvas grid are fixed. Writes OUTPUT and OUTPUT.init.safetensors (the fresh "
            "state), reloads OUTPUT and prints its largest difference from the eager model at each batch size; "
            "exits 1 above the tolerance."
        ),
    )
    add = parser.add_argument
    add("--model", required=True, help="checkpoint folder (ours or the authors'), or a preset with random weights")
    add("--format", choices=FORMATS, help="default: from the suffix of --output (.onnx or .pt2)")
    add("--glimpse-px", type=int, default=128, help="glimpse side in px, fixed in the export (default 128)")
    add("--canvas-grid", type=int, default=32, help="canvas grid G, fixed in the export (default 32)")
    add("--output", "-o", required=True, help="file to write (.onnx or .pt2)")
    add("--no-readouts", action="store_true", help="leave a pretraining checkpoint's teacher readouts out")
    add("--batch-sizes", type=int, nargs="+", default=[1, 3], help="batch sizes of the parity check (default 1 3)")
    add("--tolerance", type=float, help="largest abs difference allowed (default 1e-4 onnx, 1e-5 torch-export)")
    add("--seed", type=int, default=0, help="seed of a preset's random weights (default 0)")
    parser.set_defaults(run=_run_export, batch_flag="--batch-sizes")


def _run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from saccade.export import GlimpseStep, export_glimpse_step
    from saccade.model.canvit import CanViT
    from saccade.model.checkpoint import load_pretrained
    from saccade.model.config import PRESETS

    output = output_file(args.output, flag="--output")
    if Path(args.model).exists():
        model, source = load_pretrained(checkpoint_folder(args.model, flag="--model")), args.model
    elif args.model in PRESETS:
        torch.manual_seed(args.seed)
        model, source = CanViT(PRESETS[args.model]).eval(), f"{args.model} (random weights, seed {args.seed})"
    else:
        raise ValueError(f"--model {args.model!r} is neither a checkpoint folder nor a preset ({', '.join(PRESETS)})")
    step = GlimpseStep(
        model, glimpse_px=args.glimpse_px, canvas_grid=args.canvas_grid, readouts=False if args.no_readouts else None
    )
    try:
        result = export_glimpse_step(
            step, output, format=args.format, batch_sizes=tuple(args.batch_sizes), tolerance=args.tolerance
        )
    except ImportError as error:
        print(f"saccade export: error: {error}", file=sys.stderr)
        return 2
    size_mb = result.path.stat().st_size / 1e6
    print(f"{source}: {args.glimpse_px} px glimpse, {args.canvas_grid} x {args.canvas_grid} canvas, dynamic batch")
    print(f"  inputs:  {', '.join(step.input_names)}")
    print(f"  outputs: {', '.join(step.output_names)}")
    print(f"wrote {result.path} ({size_mb:.1f} MB) and {result.initial_state_path} (the fresh state)")
    print(result.parity.summary())
    if not result.parity.ok:
        print(
            f"saccade export: error: parity check failed: max abs diff {result.parity.worst:.3g} "
            f"> tolerance {result.parity.tolerance:.0e}",
            file=sys.stderr,
        )
        return 1
    return 0
