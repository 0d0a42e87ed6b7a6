"""The `saccade` command line: the only argv parser of the package.

Each subcommand is a pair of functions, `_add_<name>(subparsers)` that declares its arguments and
`_run_<name>(args) -> int` that does the work; heavy modules are imported inside the `_run_*` function,
so `saccade --help` stays fast. Subcommands: flops (analytic FLOPs and parameters, paper App. D.2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]


def _add_flops(subparsers: argparse._SubParsersAction) -> None:
    from saccade.flops import TEACHERS
    from saccade.model.config import PRESETS

    parser = subparsers.add_parser(
        "flops",
        help="analytic FLOPs per glimpse and parameter count",
        description=(
            "Analytic FLOPs (2 per multiply-accumulate; matmuls and convs only) of one CanViT glimpse step "
            "at several canvas grids, and of passive DINOv3 baselines. GFLOPs = 1e9 FLOPs."
        ),
    )
    parser.add_argument("--model", choices=sorted(PRESETS), help="CanViT preset (default canvit-b16)")
    parser.add_argument("--glimpse-px", type=int, default=128, help="glimpse side in pixels (default 128)")
    parser.add_argument(
        "--grids", type=int, nargs="+", default=[8, 16, 32, 64], help="canvas grids G (default 8 16 32 64)"
    )
    parser.add_argument(
        "--num-classes", type=int, default=150, help="classes of the segmentation probe (default 150, ADE20K)"
    )
    parser.add_argument("--teacher", choices=sorted(TEACHERS), help="also count a passive DINOv3 baseline")
    parser.add_argument(
        "--input-px", type=int, nargs="+", default=[128, 256, 512], help="teacher input sides (default 128 256 512)"
    )
    parser.add_argument("--json", action="store_true", help="print exact integer counts as JSON")
    parser.set_defaults(run=_run_flops)


def _canvit_rows(args: argparse.Namespace) -> dict:
    """Per-grid FLOPs of the --model preset, exact ints."""
    from saccade.flops import glimpse_flops, parameter_count, seg_probe_flops
    from saccade.model.config import preset

    config = preset(args.model)
    rows = []
    for grid in args.grids:
        breakdown = glimpse_flops(config, glimpse_px=args.glimpse_px, canvas_grid=grid)
        probe = seg_probe_flops(config.canvas_dim, grid, args.num_classes)
        rows.append(
            {"canvas_grid": grid, **breakdown.to_dict(), "probe": probe, "total_plus_probe": breakdown.total + probe}
        )
    return {"model": args.model, "parameters": parameter_count(config), "glimpse_px": args.glimpse_px, "rows": rows}


def _teacher_rows(args: argparse.Namespace) -> dict:
    """Per-input-size FLOPs of the --teacher baseline, exact ints."""
    from saccade.flops import DINOV3_NUM_PREFIX_TOKENS, TEACHERS, seg_probe_flops, teacher_flops

    spec = TEACHERS[args.teacher]
    rows = []
    for input_px in args.input_px:
        flops = teacher_flops(args.teacher, input_px)
        grid = input_px // spec.patch_size
        probe = seg_probe_flops(spec.embed_dim, grid, args.num_classes)
        num_tokens = DINOV3_NUM_PREFIX_TOKENS + grid**2
        row = {"input_px": input_px, "num_tokens": num_tokens, "total": flops, "probe": probe}
        rows.append({**row, "total_plus_probe": flops + probe})
    return {"teacher": args.teacher, "rows": rows}


def _gflops(flops: int, digits: int = 1) -> str:
    return f"{flops / 1e9:.{digits}f}"


def _print_canvit(table: dict, num_classes: int) -> None:
    rows = table["rows"]
    first = rows[0]
    print(
        f"{table['model']}: {table['parameters']:,} parameters; {table['glimpse_px']} px glimpse "
        f"({first['num_glimpse_tokens']} tokens), {first['num_reads']} reads + {first['num_writes']} writes"
    )
    header = ("G", "canvas tokens", "glimpse GFLOPs", f"+ probe({num_classes}) GFLOPs", "read GFLOPs", "write GFLOPs")
    lines = [
        (
            str(row["canvas_grid"]),
            str(row["num_canvas_tokens"]),
            _gflops(row["total"]),
            _gflops(row["total_plus_probe"]),
            _gflops(row["read_flops"], 3),
            _gflops(row["write_flops"], 3),
        )
        for row in rows
    ]
    _print_table(header, lines)
    print("read / write: GFLOPs of one Read / one Write")


def _print_teacher(table: dict, num_classes: int) -> None:
    print(f"{table['teacher']} (passive, one forward)")
    header = ("input px", "tokens", "GFLOPs", f"+ probe({num_classes}) GFLOPs")
    lines = [
        (str(row["input_px"]), str(row["num_tokens"]), _gflops(row["total"]), _gflops(row["total_plus_probe"]))
        for row in table["rows"]
    ]
    _print_table(header, lines)


def _print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    for cells in (header, *lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))


def _run_flops(args: argparse.Namespace) -> int:
    if args.model is None and args.teacher is None:
        args.model = "canvit-b16"
    tables: dict[str, dict] = {}
    if args.model is not None:
        tables["canvit"] = _canvit_rows(args)
    if args.teacher is not None:
        tables["teacher"] = _teacher_rows(args)
    if args.json:
        print(json.dumps(tables, indent=1))
        return 0
    if "canvit" in tables:
        _print_canvit(tables["canvit"], args.num_classes)
    if "teacher" in tables:
        if "canvit" in tables:
            print()
        _print_teacher(tables["teacher"], args.num_classes)
    return 0


def _add_dataclass_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One --flag per field of a frozen config dataclass; unset flags keep the config file's or default value."""
    import dataclasses

    for field in dataclasses.fields(config_class):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(
                flag, type=kind, nargs="+", default=None, help=f"(default {' '.join(map(str, default))})"
            )
        else:
            parser.add_argument(flag, type=type(default), default=None, help=f"(default {default})")


def _config_from_args(args: argparse.Namespace, config_class: type):
    """Config file (--config, JSON or TOML) overridden by explicit flags."""
    import dataclasses

    base = config_class.from_file(args.config).to_dict() if args.config else {}
    for field in dataclasses.fields(config_class):
        value = getattr(args, field.name)
        if value is not None:
            base[field.name] = tuple(value) if isinstance(value, list) else value
    return config_class.from_dict(base)


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    from saccade.pretrain.config import PretrainConfig

    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a CanViT by dense latent distillation",
        description=(
            "Passive-to-active dense latent distillation (paper §5): per step an F-IID and an R-IID rollout from fresh "
            "canvases, truncated BPTT, MSE to standardized teacher patch and CLS features. Resumes from "
            "OUTPUT_DIR/checkpoint.pt; SIGTERM / SIGINT checkpoint and stop. Launch with torchrun for data parallelism."
        ),
    )
    parser.add_argument("--config", help="JSON or TOML file of PretrainConfig fields; flags override it")
    parser.add_argument(
        "--data", required=True, help="training data: a teacher-feature shard folder, or 'synthetic' for a smoke run"
    )
    parser.add_argument("--val-data", help="held-out data, same kinds as --data")
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much training time")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dataclass_flags(parser, PretrainConfig)
    parser.set_defaults(run=_run_pretrain)


def _distillation_data(spec: str | None, config, *, seed: int):
    """'synthetic' or a shard folder -> a distillation dataset (None for None)."""
    if spec is None:
        return None
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        grid, size = config.canvas_grid, config.canvas_grid * 16
        return synthetic_dataset(max(256, 4 * config.batch_size), scene_px=size, grid=grid, dim=32, seed=seed)
    from pathlib import Path

    if not Path(spec).is_dir():
        raise ValueError(f"--data {spec}: no such shard folder (export one with `saccade export-features`)")
    from saccade.data.shards import ShardDataset

    return ShardDataset(spec)


def _run_pretrain(args: argparse.Namespace) -> int:
    from saccade.pretrain.config import PretrainConfig
    from saccade.pretrain.trainer import pretrain

    config = _config_from_args(args, PretrainConfig)
    train_set = _distillation_data(args.data, config, seed=config.seed)
    val_set = _distillation_data(args.val_data, config, seed=config.seed + 10_000)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    result = pretrain(config, train_set, val_set, device=args.device, max_seconds=max_seconds, progress=not args.quiet)
    print(json.dumps({"steps": result.steps_done, "output_dir": str(result.output_dir), **result.summary}, indent=1))
    return 0


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_flops, _add_pretrain)


def build_parser() -> argparse.ArgumentParser:
    """The `saccade` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="saccade", description="CanViT: active-vision foundation models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv (default sys.argv[1:]), run the subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"saccade {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
