"""`saccade flops`: analytic FLOPs and parameters per glimpse (paper App. D.2), and the teacher's."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from saccade.cli._checks import model_spec
from saccade.cli._tables import print_table
from saccade.episode_config import EPISODES
from saccade.flops import TeacherSpecName


@dataclass(frozen=True, kw_only=True)
class FlopsCommand:
    """Analytic FLOPs (2 per multiply-accumulate; matmuls and convs only) of one CanViT glimpse step at several canvas
    grids, and of passive DINOv3 baselines. GFLOPs = 1e9 FLOPs."""

    model: str | None = None
    """A CanViT preset (saccade.PRESETS) or checkpoint folder (default canvit-b16 unless only --teacher is given)."""
    glimpse_px: int = EPISODES["paper"].glimpse_px
    """Glimpse side in pixels."""
    grids: tuple[int, ...] = (8, 16, 32, 64)
    """Canvas grids G."""
    num_classes: int = 150
    """Classes of the segmentation probe (150: ADE20K)."""
    teacher: TeacherSpecName | None = None
    """Also count a passive DINOv3 baseline."""
    input_px: tuple[int, ...] = (128, 256, 512)
    """Teacher input sides."""
    json: bool = False
    """Print exact integer counts as JSON."""


def _canvit_rows(args: FlopsCommand) -> dict:
    """Per-grid FLOPs of the --model preset or checkpoint, exact ints."""
    from saccade.flops import glimpse_flops, parameter_count, seg_probe_flops
    from saccade.loading import load
    from saccade.model.config import PRESETS, preset

    config = preset(args.model) if args.model in PRESETS else load(args.model).canvit.config
    rows = []
    for grid in args.grids:
        breakdown = glimpse_flops(config, glimpse_px=args.glimpse_px, canvas_grid=grid)
        probe = seg_probe_flops(config.canvas_dim, grid, args.num_classes)
        rows.append(
            {"canvas_grid": grid, **breakdown.to_dict(), "probe": probe, "total_plus_probe": breakdown.total + probe}
        )
    return {"model": args.model, "parameters": parameter_count(config), "glimpse_px": args.glimpse_px, "rows": rows}


def _teacher_rows(args: FlopsCommand) -> dict:
    """Per-input-size FLOPs of the --teacher baseline, exact ints."""
    from saccade.flops import DINOV3_NUM_PREFIX_TOKENS, TEACHER_SPECS, seg_probe_flops, teacher_flops

    spec = TEACHER_SPECS[args.teacher]
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
    print_table(header, lines)
    print("read / write: GFLOPs of one Read / one Write")


def _print_teacher(table: dict, num_classes: int) -> None:
    print(f"{table['teacher']} (passive, one forward)")
    header = ("input px", "tokens", "GFLOPs", f"+ probe({num_classes}) GFLOPs")
    lines = [
        (str(row["input_px"]), str(row["num_tokens"]), _gflops(row["total"]), _gflops(row["total_plus_probe"]))
        for row in table["rows"]
    ]
    print_table(header, lines)


def run_flops(args: FlopsCommand) -> int:
    if args.model is None and args.teacher is None:
        args = dataclasses.replace(args, model="canvit-b16")
    if args.model is not None:
        model_spec(args.model)
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
