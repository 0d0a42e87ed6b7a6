"""torch.export of a GlimpseStep: an ExportedProgram with a dynamic batch, saved as a .pt2 archive.

The archive carries `saccade.json` (input / output names and shapes, glimpse size, canvas grid, model
config) as an extra file; `load_program` returns both. The ONNX export (`saccade.export.onnx`) starts
from the same program, so both formats run the same graph.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.export import Dim, ExportedProgram

from saccade.export.step import GlimpseStep

__all__ = ["METADATA_FILE", "export_program", "load_program", "save_program", "step_metadata"]

METADATA_FILE = "saccade.json"
EXAMPLE_BATCH_SIZE = 2
"""Traced at batch 2: torch.export specializes a dimension seen as 0 or 1, and the batch must stay symbolic."""


def export_program(step: GlimpseStep) -> ExportedProgram:
    """torch.export.export the step, every input's dim 0 one shared dynamic `batch` (>= 1), as a functional graph.

    Traced under no_grad (the model's inference paths write into preallocated tensors), then functionalized
    (`run_decompositions({})`: same ops, no `out=` or in-place ones), so the program also runs with grad enabled.
    """
    if not isinstance(step, GlimpseStep):
        raise TypeError(f"export_program takes a GlimpseStep, got {type(step).__name__}")
    batch = Dim("batch", min=1)
    dynamic_shapes = {name: {0: batch} for name in step.input_names}
    inputs = step.example_inputs(EXAMPLE_BATCH_SIZE)
    with torch.no_grad():
        program = torch.export.export(step, inputs, dynamic_shapes=dynamic_shapes)
    with warnings.catch_warnings():
        # torch's own pytree deprecation notice, raised while it copies the program.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        return program.run_decompositions({})


def step_metadata(step: GlimpseStep) -> dict[str, Any]:
    """What a runtime needs besides the graph: names, shapes ("B" dynamic), sizes and the model config."""
    return {
        "format": "saccade-glimpse-step",
        "format_version": 1,
        "glimpse_px": step.glimpse_px,
        "canvas_grid": step.canvas_grid,
        "num_canvas_registers": step.canvit.config.num_canvas_registers,
        "readouts": step.readouts,
        "inputs": {name: list(shape) for name, shape in step.input_shapes().items()},
        "outputs": list(step.output_names),
        "canvit_config": step.canvit.config.to_dict(),
    }


def save_program(program: ExportedProgram, path: str | os.PathLike, *, metadata: dict[str, Any]) -> Path:
    """torch.export.save to `path` (.pt2) with `metadata` as the extra file saccade.json; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path, extra_files={METADATA_FILE: json.dumps(metadata, indent=1, sort_keys=True)})
    return path


def load_program(path: str | os.PathLike) -> tuple[ExportedProgram, dict[str, Any]]:
    """(program, metadata) from a .pt2 written by `save_program`; run it with `program.module()(*inputs)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported program at {path}")
    extra_files = {METADATA_FILE: ""}
    program = torch.export.load(path, extra_files=extra_files)
    text = extra_files[METADATA_FILE]
    return program, json.loads(text) if text else {}
