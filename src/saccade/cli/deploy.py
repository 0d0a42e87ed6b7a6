"""`saccade export` (one glimpse step to ONNX or torch.export) and `saccade bench` (against the authors' code)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import tyro

from saccade.bench.config import BenchConfig
from saccade.cli._checks import model_spec, output_folder
from saccade.cli._defaults import flag_value
from saccade.cli.evaluate import _recorded_episode
from saccade.config_files import config_to_dict
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.export.pipeline import SUFFIXES, Format

EXPORT_STEM = "glimpse_step"


@dataclass(frozen=True, kw_only=True)
class ExportCommand:
    """Export one CanViT glimpse step (glimpse, viewpoint centers and scales, canvas and recurrent CLS in; new canvas
    and recurrent CLS, plus the teacher readouts of a pretraining checkpoint, out) with a dynamic batch; glimpse size
    and canvas grid are fixed (a checkpoint that records its episode sets them). Writes OUTPUT_DIR/glimpse_step.onnx
    (or .pt2) and glimpse_step.init.safetensors (the fresh state), reloads the export and prints its largest
    difference from the eager model at each batch size; exits 1 above the tolerance."""

    BATCH_FLAG: ClassVar[str] = "--batch-sizes"

    model: str
    """A checkpoint folder (saccade's or the authors'), or a preset with random weights."""
    format: Format = "onnx"
    """onnx (ONNX Runtime checks it) or torch-export (.pt2)."""
    episode: EpisodeConfig = EPISODES["paper"]
    """Glimpse side and canvas grid, fixed in the export."""
    output_dir: str = "export"
    """Folder of the exported step and its initial state."""
    readouts: bool = True
    """Keep a pretraining checkpoint's teacher readouts as outputs."""
    batch_sizes: tuple[int, ...] = (1, 3)
    """Batch sizes of the parity check."""
    tolerance: float | None = None
    """Largest abs difference allowed (default 1e-4 onnx, 1e-5 torch-export)."""
    seed: int = 0
    """Seed of a preset's random weights."""


def export_defaults(argv: list[str]) -> dict[str, Any]:
    """The episode the --model checkpoint records, if any."""
    return _recorded_episode(flag_value(argv, "--model"))


def run_export(command: ExportCommand) -> int:
    import sys

    from saccade.export import GlimpseStep, export_glimpse_step
    from saccade.loading import load

    model_spec(command.model)
    folder = output_folder(command.output_dir, flag="--output-dir")
    loaded = load(command.model, seed=command.seed)
    episode = command.episode
    readouts = None if command.readouts else False
    step = GlimpseStep(loaded.model, glimpse_px=episode.glimpse_px, canvas_grid=episode.canvas_grid, readouts=readouts)
    target = folder / f"{EXPORT_STEM}{SUFFIXES[command.format]}"
    result = export_glimpse_step(
        step, target, format=command.format, batch_sizes=command.batch_sizes, tolerance=command.tolerance
    )
    size_mb = result.path.stat().st_size / 1e6
    grid = episode.canvas_grid
    print(f"{loaded.source}: {episode.glimpse_px} px glimpse, {grid} x {grid} canvas, dynamic batch")
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


@dataclass(frozen=True, kw_only=True)
class BenchCommand:
    """Per-glimpse latency (batch 1) and throughput (batch 16) of CanViT-B and -S at canvas grids 8..128, one
    pretraining step, GFLOP/s against a large matmul and peak memory; with the authors' package (--baseline-path or
    $SACCADE_BENCH_BASELINE) both run interleaved on the same weights and outputs are checked to agree. Writes
    bench.json and bench.md to --output-dir."""

    BATCH_FLAG: ClassVar[str] = "--throughput-batch"

    settings: Annotated[BenchConfig, tyro.conf.arg(name="")]
    quick: bool = False
    """Start from tiny cases (a smoke test of seconds) instead of the full benchmark."""
    output_dir: str = "runs/bench"
    """Where bench.json and bench.md go."""


def bench_defaults(argv: list[str]) -> dict[str, Any]:
    """The quick cases with --quick; the authors' package from $SACCADE_BENCH_BASELINE."""
    from saccade.bench.implementations import BASELINE_ENV

    defaults = config_to_dict(BenchConfig.quick() if "--quick" in argv else BenchConfig())
    return defaults | ({"baseline_path": os.environ[BASELINE_ENV]} if os.environ.get(BASELINE_ENV) else {})


def run_bench(command: BenchCommand) -> int:
    from saccade.bench import run_bench as run

    output_folder(command.output_dir, flag="--output-dir")
    report = run(command.settings)
    json_path, markdown_path = report.write(command.output_dir)
    print(report.to_markdown())
    print(f"wrote {json_path} and {markdown_path}")
    return 0 if all(case.agree is not False for case in report.cases) else 1
