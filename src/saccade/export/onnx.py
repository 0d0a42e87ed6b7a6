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

from saccade.export.pipeline import load_initial_state
from saccade.export.program import METADATA_FILE, export_program, step_metadata
from saccade.export.step import GlimpseStep, check_step_inputs
from saccade.geometry import Viewpoint

__all__ = ["OnnxStep", "export_onnx"]

INSTALL_HINT = "pip install 'saccade[export]' (onnx, onnxscript, onnxruntime)"
BATCH_DIM = "batch"
MAX_INLINE_BYTES = 1 << 30
"""Weights up to 1 GiB go inside the .onnx file (protobuf's limit is 2 GiB); larger ones beside it as external data."""


def export_onnx(
    step: GlimpseStep,
    path: str | os.PathLike,
    *,
    program: ExportedProgram | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `step` to `path` (.onnx) with a dynamic batch; `program` reuses an existing torch.export of it,
    `metadata` replaces step_metadata(step) (export_glimpse_step adds its initial state's digest)."""
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
    metadata = step_metadata(step) if metadata is None else metadata
    onnx_program.model.metadata_props[METADATA_FILE] = json.dumps(metadata, sort_keys=True)
    num_bytes = sum(p.numel() * p.element_size() for p in step.parameters())
    onnx_program.save(path, external_data=num_bytes > MAX_INLINE_BYTES)
    return path


class OnnxStep:
    """An exported .onnx glimpse step in onnxruntime: call it with the GlimpseStep's five tensors, get its outputs.

    The ONNX graph cannot raise, so the runner checks the inputs as the eager step does (shapes, float32, the
    Viewpoint's values) before running it.
    """

    def __init__(self, path: str | os.PathLike, *, providers: list[str] | None = None) -> None:
        """providers: onnxruntime execution providers (default CPU only)."""
        ort = _require("onnxruntime", "running an ONNX glimpse step")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}")
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.input_names = tuple(node.name for node in self.session.get_inputs())
        self.output_names = tuple(node.name for node in self.session.get_outputs())
        self.path = path
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_FILE)
        self.metadata: dict[str, Any] = json.loads(text) if text else {}
        shapes = self.metadata.get("inputs", {})
        if set(shapes) != set(self.input_names):
            raise ValueError(
                f"{path} is not a saccade glimpse step: its {METADATA_FILE} metadata lists inputs {sorted(shapes)}, "
                f"the graph has {list(self.input_names)}"
            )
        self.input_shapes: dict[str, list[int | str]] = {name: shapes[name] for name in self.input_names}

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Inputs in `input_names` order (CPU or any device; copied to host) -> CPU float tensors."""
        check_step_inputs(self.input_shapes, inputs)
        named = dict(zip(self.input_names, inputs, strict=True))
        Viewpoint(centers=named["centers"], scales=named["scales"])  # the eager step's value checks and messages
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in named.items()}
        return tuple(torch.from_numpy(array) for array in self.session.run(list(self.output_names), feed))

    def initial_state(self, batch_size: int = 1) -> tuple[Tensor, Tensor]:
        """Fresh (canvas [B, M, D_cv], recurrent_cls [B, 1, D_bb]) from the file beside this step (checked its own)."""
        canvas, recurrent_cls = load_initial_state(self.path, self.metadata)
        return canvas.expand(batch_size, -1, -1), recurrent_cls.expand(batch_size, -1, -1)


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
