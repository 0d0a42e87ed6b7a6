"""Export a glimpse step end to end: the graph file, its initial state beside it, and the parity check.

`export_glimpse_step(step, "step.onnx")` writes step.onnx (or a .pt2 for torch-export) and
step.init.safetensors, the fresh state (canvas [1, M, D_cv], recurrent_cls [1, 1, D_bb]) to broadcast
over the batch for the first glimpse, then reloads the file and compares it with the eager step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safetensors.torch import save_file

from saccade.export.parity import ParityReport, check_parity
from saccade.export.program import export_program, load_program, save_program, step_metadata
from saccade.export.step import GlimpseStep

__all__ = ["DEFAULT_TOLERANCE", "FORMATS", "ExportResult", "export_glimpse_step", "format_from_suffix"]

Format = Literal["onnx", "torch-export"]
FORMATS: tuple[Format, ...] = ("onnx", "torch-export")
SUFFIXES: dict[Format, str] = {"onnx": ".onnx", "torch-export": ".pt2"}
DEFAULT_TOLERANCE: dict[Format, float] = {"onnx": 1e-4, "torch-export": 1e-5}
"""ONNX Runtime's kernels round differently from torch's (~1e-6 here); torch.export runs torch's own ops."""


@dataclass(frozen=True)
class ExportResult:
    """Files written and the parity of the reloaded export with the eager step."""

    path: Path
    initial_state_path: Path
    parity: ParityReport


def format_from_suffix(path: str | os.PathLike) -> Format:
    """ "onnx" for .onnx, "torch-export" for .pt2; ValueError otherwise."""
    suffix = Path(path).suffix
    for name, known in SUFFIXES.items():
        if suffix == known:
            return name
    raise ValueError(f"cannot tell the format from {str(path)!r}: use a .onnx or .pt2 file name, or name the format")


def export_glimpse_step(
    step: GlimpseStep,
    path: str | os.PathLike,
    *,
    format: Format | None = None,
    batch_sizes: tuple[int, ...] = (1, 3),
    tolerance: float | None = None,
) -> ExportResult:
    """Export `step` to `path` in `format` (default: from the suffix), write its initial state, check parity."""
    format = format or format_from_suffix(path)
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    tolerance = DEFAULT_TOLERANCE[format] if tolerance is None else tolerance
    path = Path(path)
    program = export_program(step)
    if format == "onnx":
        from saccade.export.onnx import OnnxStep, export_onnx

        export_onnx(step, path, program=program)
        run = OnnxStep(path)
    else:
        save_program(program, path, metadata=step_metadata(step))
        run = load_program(path)[0].module()
    initial_state_path = path.with_suffix(".init.safetensors")
    canvas, recurrent_cls = step.initial_state(1)
    save_file({"canvas": canvas.cpu(), "recurrent_cls": recurrent_cls.cpu()}, initial_state_path)
    parity = check_parity(step, run, runtime=format, tolerance=tolerance, batch_sizes=batch_sizes)
    return ExportResult(path=path, initial_state_path=initial_state_path, parity=parity)
