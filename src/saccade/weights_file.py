"""A small module's weights and its config in one safetensors file (probes, learned policies).

The file's metadata holds a format name and version, the module's config (JSON) and a free-form `info`
dict (JSON). Writes are atomic (temporary file, then rename); reads never unpickle, check the format, the
version and the JSON (errors name the file), and loading is strict, as for checkpoints: missing, unexpected,
mis-shaped, wrong-dtype and non-finite tensors are listed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from saccade._io import atomic_write
from saccade.model.checkpoint import load_state_dict_strict

__all__ = ["WeightsFile", "load_strict", "read_weights_file", "save_weights_file"]


def save_weights_file(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    kind: str,
    version: int,
    config: dict,
    info: dict | None = None,
    leave_out: Collection[str] = (),
) -> Path:
    """Write `module`'s state dict, but for the keys in `leave_out`, with `kind`, `version`, `config` and `info` in
    the metadata; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = module.state_dict()
    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items() if key not in leave_out}
    metadata = {
        "format": kind,
        "format_version": str(version),
        "config": json.dumps(config, sort_keys=True),
        "info": json.dumps(info or {}, sort_keys=True),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


class WeightsFile:
    """What `read_weights_file` found: tensors, config and info."""

    def __init__(self, tensors: dict[str, Tensor], config: dict[str, Any], info: dict[str, Any]) -> None:
        self.tensors = tensors
        self.config = config
        self.info = info


def read_weights_file(
    path: str | os.PathLike, *, kind: str, version: int, what: str, tensors: bool = True
) -> WeightsFile:
    """Read a file written by `save_weights_file` for `kind` (format versions up to `version`); `what` names it.
    With tensors=False only the metadata is read (WeightsFile.tensors is empty)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            found_tensors = {key: handle.get_tensor(key) for key in handle.keys()} if tensors else {}  # noqa: SIM118
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != kind:
        raise ValueError(f"{path} is not a saccade {what} (metadata format={metadata.get('format')!r})")
    found = metadata.get("format_version", "0")
    if not found.isdecimal():
        raise ValueError(f"{path}: metadata 'format_version' must be an integer, got {found!r}")
    if int(found) > version:
        raise ValueError(f"{path} has {what} format version {found}; this saccade reads <= {version}")
    return WeightsFile(found_tensors, _json_object(path, metadata, "config"), _json_object(path, metadata, "info"))


def _json_object(path: Path, metadata: dict[str, str], key: str) -> dict[str, Any]:
    """metadata[key] parsed as a JSON object ({} when absent); ValueError naming the file and the key otherwise."""
    try:
        value = json.loads(metadata.get(key, "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: metadata {key!r} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: metadata {key!r} must be a JSON object, got {type(value).__name__}")
    return value


def load_strict(module: nn.Module, tensors: dict[str, Tensor], *, source: str | os.PathLike) -> nn.Module:
    """Load `tensors` into `module`; a CheckpointError (a ValueError) lists missing, unexpected, mis-shaped keys."""
    load_state_dict_strict(module, tensors, source=str(source))
    return module
