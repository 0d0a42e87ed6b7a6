"""Deployment: one CanViT glimpse step as a tensor-in / tensor-out graph, via torch.export (.pt2) and ONNX.

- step.py      GlimpseStep: the wrapper module (fixed glimpse size and canvas grid, dynamic batch)
- program.py   torch.export.export / save / load with metadata
- onnx.py      ONNX export (dynamo exporter) and OnnxStep, an onnxruntime runner (optional packages)
- parity.py    exported vs eager, per batch size
- pipeline.py  export_glimpse_step: file + initial state + parity, what `saccade export` runs; load_initial_state
"""

from saccade.export.parity import ParityReport, check_parity
from saccade.export.pipeline import FORMATS, ExportResult, export_glimpse_step, load_initial_state
from saccade.export.program import export_program, load_program, save_program
from saccade.export.step import GlimpseStep

__all__ = [
    "FORMATS",
    "ExportResult",
    "GlimpseStep",
    "ParityReport",
    "check_parity",
    "export_glimpse_step",
    "export_program",
    "load_initial_state",
    "load_program",
    "save_program",
]
