"""Export a glimpse step end to end: the graph file, its initial state beside it, and the parity check.

`export_glimpse_step(step, "step.onnx")` writes step.onnx (or a .pt2 for torch-export) and
step.onnx.init.safetensors, the fresh state (canvas [1, M, D_cv], recurrent_cls [1, 1, D_bb]) to broadcast
over the batch for the first glimpse, then reloads the file and compares it with the eager step. The
program's metadata records the state's sha256, so `load_initial_state` refuses a state file that belongs
to another export (say step.pt2's, exported from another model into the same folder).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from saccade.export.parity import ParityReport, check_parity
from saccade.export.program import export_program, load_program, save_program, step_metadata
from saccade.export.step import GlimpseStep

__all__ = [
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "ExportResult",
    "export_glimpse_step",
    "format_from_suffix",
    "initial_state_path",
    "load_initial_state",
]

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
    canvas, recurrent_cls = step.initial_state(1)
    state = {"canvas": canvas.cpu(), "recurrent_cls": recurrent_cls.cpu()}
    state_file = initial_state_path(path)
    metadata = step_metadata(step) | {"initial_state": {"file": state_file.name, "sha256": _state_digest(state)}}
    program = export_program(step)
    if format == "onnx":
        from saccade.export.onnx import OnnxStep, export_onnx

        export_onnx(step, path, program=program, metadata=metadata)
        run = OnnxStep(path)
    else:
        save_program(program, path, metadata=metadata)
        run = load_program(path)[0].module()
    save_file(state, state_file)
    parity = check_parity(step, run, runtime=format, tolerance=tolerance, batch_sizes=batch_sizes)
    return ExportResult(path=path, initial_state_path=state_file, parity=parity)


def initial_state_path(path: str | os.PathLike) -> Path:
    """Where the fresh state of the exported step at `path` lies: step.onnx -> step.onnx.init.safetensors."""
    path = Path(path)
    return path.with_name(path.name + ".init.safetensors")


def load_initial_state(path: str | os.PathLike, metadata: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """(canvas [1, M, D_cv], recurrent_cls [1, 1, D_bb]) beside the exported step at `path`, whose `metadata`
    (OnnxStep.metadata, or load_program's) must record this very state; ValueError otherwise."""
    path = Path(path)
    file = initial_state_path(path)
    recorded = metadata.get("initial_state", {}).get("sha256")
    if recorded is None:
        raise ValueError(f"{path} records no initial state (exported by an older saccade): export it again")
    if not file.is_file():
        raise FileNotFoundError(f"no initial state {file} beside {path}")
    state = load_file(file)
    if set(state) != {"canvas", "recurrent_cls"} or _state_digest(state) != recorded:
        raise ValueError(
            f"{file} does not belong to {path}: its state differs from the one the program recorded "
            f"(sha256 {recorded[:12]}); export again to write both together"
        )
    return state["canvas"], state["recurrent_cls"]


def _state_digest(state: dict[str, Tensor]) -> str:
    """sha256 over the names, shapes, dtypes and bytes of the state tensors."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype};".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()
