"""ONNX export of a GlimpseStep (torch's dynamo exporter, from the torch.export program) and an onnxruntime runner.

The batch stays dynamic (dim 0 of every input and output is named `batch`); glimpse size and canvas grid
are fixed. The model's metadata_props carry `saccade.json`, the same metadata as the .pt2 archive.
Needs the optional packages onnx and onnxscript (export) and onnxruntime (running): `pip install 'saccade[export]'`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.export import ExportedProgram

from saccade.export.program import METADATA_FILE, export_program, step_metadata
from saccade.export.step import GlimpseStep

__all__ = ["OnnxStep", "export_onnx"]

INSTALL_HINT = "pip install 'saccade[export]' (onnx, onnxscript, onnxruntime)"
BATCH_DIM = "batch"
MAX_INLINE_BYTES = 1 << 30
"""Weights up to 1 GiB go inside the .onnx file (protobuf's limit is 2 GiB); larger ones beside it as external data."""


def export_onnx(step: GlimpseStep, path: str | os.PathLike, *, program: ExportedProgram | None = None) -> Path:
    """Write `step` to `path` (.onnx) with a dynamic batch; `program` reuses an existing torch.export of it."""
    for module in ("onnx", "onnxscript"):
        _require(module, "ONNX export")
    program = program if program is not None else export_program(step)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_exporter():
        onnx_program = torch.onnx.export(
            program,
            input_names=list(step.input_names),
            output_names=list(step.output_names),
            dynamo=True,
            verbose=False,
        )
    _name_batch_dim(onnx_program.model.graph)
    onnx_program.model.metadata_props[METADATA_FILE] = json.dumps(step_metadata(step), sort_keys=True)
    num_bytes = sum(p.numel() * p.element_size() for p in step.parameters())
    onnx_program.save(path, external_data=num_bytes > MAX_INLINE_BYTES)
    return path


class OnnxStep:
    """An exported .onnx glimpse step in onnxruntime: call it with the GlimpseStep's five tensors, get its outputs."""

    def __init__(self, path: str | os.PathLike, *, providers: list[str] | None = None) -> None:
        """providers: onnxruntime execution providers (default CPU only)."""
        ort = _require("onnxruntime", "running an ONNX glimpse step")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}")
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.input_names = tuple(node.name for node in self.session.get_inputs())
        self.output_names = tuple(node.name for node in self.session.get_outputs())
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_FILE)
        self.metadata: dict[str, Any] = json.loads(text) if text else {}

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Inputs in `input_names` order (CPU or any device; copied to host) -> CPU float tensors."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs {list(self.input_names)}, got {len(inputs)}")
        self._check_shapes(inputs)
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in zip(self.input_names, inputs, strict=True)}
        return tuple(torch.from_numpy(array) for array in self.session.run(list(self.output_names), feed))

    def _check_shapes(self, inputs: tuple[Tensor, ...]) -> None:
        """Raise ValueError naming the first input whose shape differs from the metadata's ("B" is the batch)."""
        shapes = self.metadata.get("inputs", {})
        batch_size = inputs[0].shape[0] if inputs[0].ndim else None
        for name, tensor in zip(self.input_names, inputs, strict=True):
            expected = shapes.get(name)
            if expected is None:
                continue
            wanted = [batch_size if dim == "B" else dim for dim in expected]
            if list(tensor.shape) != wanted:
                shown = "[" + ", ".join(map(str, expected)) + "]"
                got = tuple(tensor.shape)
                raise ValueError(f"{name} must be {shown} (B = {batch_size}) for this ONNX step, got {got}")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter narrates its passes on stdout and logs notes (optimizer, torchvision ops); keep output clean."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _name_batch_dim(graph) -> None:
    """Rename torch.export's batch symbol (e.g. "s21") to "batch" on every value of the ONNX graph."""
    import onnx_ir as ir

    symbol = graph.inputs[0].shape[0]
    if not isinstance(symbol, ir.SymbolicDim) or symbol.value is None:
        raise RuntimeError(f"the exported ONNX graph has a static batch dimension {symbol!r}")
    values = [*graph.inputs, *graph.outputs]
    values += [value for node in ir.traversal.RecursiveGraphIterator(graph) for value in node.outputs]
    for value in values:
        if value.shape is None or not any(dim == symbol for dim in value.shape):
            continue
        dims = [ir.SymbolicDim(BATCH_DIM) if dim == symbol else dim for dim in value.shape]
        value.shape = ir.Shape(dims)


def _require(module: str, purpose: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the package {module!r}: {INSTALL_HINT}") from error
