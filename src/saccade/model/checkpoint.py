"""Weights on disk: a folder with config.json + model.safetensors, ours or the authors' (0.1 / 0.2).

Loading is strict: missing, unexpected, mis-shaped or wrong-dtype keys and non-finite tensors raise a
CheckpointError that lists them. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from saccade._io import atomic_write
from saccade.model.canvit import CanViT
from saccade.model.compat import parse_authors_config, rename_legacy_keys
from saccade.model.config import CanViTConfig
from saccade.model.pretraining import CanViTForPretraining

__all__ = ["CheckpointError", "load_pretrained", "load_state_dict_strict", "pretraining_shape", "save_pretrained"]

FORMAT_NAME = "saccade"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it is loaded into, or a corrupt / unknown file."""


def save_pretrained(
    model: CanViT | CanViTForPretraining, path: str | os.PathLike, *, episode: dict[str, int] | None = None
) -> Path:
    """Write `path`/config.json and `path`/model.safetensors (each atomically); returns the folder.

    `episode`: the episode geometry the model was trained with (`EpisodeConfig` fields: scene_px, glimpse_px,
    canvas_grid, num_glimpses), recorded in config.json so that `saccade.load` gives it back.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    if episode is not None:
        config["episode"] = dict(episode)
    if isinstance(model, CanViTForPretraining):
        config |= {"architecture": "CanViTForPretraining", **pretraining_shape(model)}
    elif isinstance(model, CanViT):
        config |= {"architecture": "CanViT", "canvit_config": model.config.to_dict()}
    else:
        raise TypeError(f"save_pretrained takes a CanViT or CanViTForPretraining, got {type(model).__name__}")
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT_NAME}))
    text = json.dumps(config, indent=2, sort_keys=True)
    atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    return folder


def pretraining_shape(model: CanViTForPretraining) -> dict[str, Any]:
    """What builds a CanViTForPretraining of `model`'s shape (config.json's fields; start files record them too)."""
    return {
        "canvit_config": model.config.to_dict(),
        "teacher_dim": model.teacher_dim,
        "teacher_patch_grid": model.teacher_patch_grid,
        "patch_readout_blocks": model.patch_readout_blocks,
    }


def load_pretrained(
    path: str | os.PathLike,
    backbone_specs: dict[str, dict[str, Any]] | None = None,
    *,
    map_location: str | torch.device = "cpu",
) -> CanViT | CanViTForPretraining:
    """Load a folder in our format or the authors' 0.2 / 0.1 format; returns whichever model it holds.

    `backbone_specs` maps a backbone name found in an authors' config to a dict of ViTSpec fields, for
    backbones other than saccade's BACKBONES (the published vits16 / vitb16 / vitl16 and saccade's own).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    config = _read_json(folder / CONFIG_FILE)
    tensors = _read_safetensors(folder / WEIGHTS_FILE)

    if config.get("format") == FORMAT_NAME:
        model = _model_from_own_config(config, folder)
    else:
        authors = parse_authors_config(config, backbone_specs)
        if authors is None:
            raise CheckpointError(
                f"{folder / CONFIG_FILE} is not a known checkpoint format (top-level keys {sorted(config)}); "
                "expected saccade's ('format': 'saccade') or the authors' 0.2 ('canvit_config') or 0.1 "
                "('backbone_name' + 'model_config')"
            )
        if authors.teacher_dim is None:
            model = CanViT(authors.canvit_config)
        else:
            model = CanViTForPretraining(
                authors.canvit_config,
                teacher_dim=authors.teacher_dim,
                teacher_patch_grid=authors.teacher_patch_grid,
            )
        if authors.layout == "0.1":
            tensors = rename_legacy_keys(tensors, pretraining=authors.teacher_dim is not None)
    load_state_dict_strict(model, tensors, source=str(folder / WEIGHTS_FILE))
    return model.to(map_location).eval()


def load_state_dict_strict(model: nn.Module, tensors: dict[str, Tensor], *, source: str) -> None:
    """Copy `tensors` into `model`, or raise CheckpointError listing every missing, unexpected, mis-shaped and
    wrong-dtype key (a float where the model has an integer, ...) and every float tensor holding NaN or inf."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    common = sorted(set(expected) & set(tensors))
    misshaped = [
        f"{key}: checkpoint {tuple(tensors[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in common
        if tensors[key].shape != expected[key].shape
    ]
    wrong_dtype = [
        f"{key}: checkpoint {tensors[key].dtype} vs model {expected[key].dtype}"
        for key in common
        if _dtype_kind(tensors[key]) != _dtype_kind(expected[key])
    ]
    # A NaN weight would not show: the CPU attention kernel returns 0 for a row of NaN scores.
    non_finite = [f"{key} ({counts})" for key in common if (counts := _non_finite_counts(tensors[key]))]
    problems = {
        "missing key(s)": missing,
        "unexpected key(s)": unexpected,
        "mis-shaped key(s)": misshaped,
        "wrong-dtype key(s)": wrong_dtype,
        "non-finite tensor(s)": non_finite,
    }
    if any(problems.values()):
        lines = [f"checkpoint {source} does not fit {type(model).__name__}:"]
        lines += [f"  {len(items)} {title}: " + ", ".join(items) for title, items in problems.items() if items]
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(tensors, strict=True)


def _dtype_kind(tensor: Tensor) -> str:
    """'bool', 'float', 'complex' or 'integer': loading may cast within a kind (float16 -> float32), not across."""
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.is_floating_point():
        return "float"
    return "complex" if tensor.is_complex() else "integer"


def _non_finite_counts(tensor: Tensor) -> str:
    """'' for a finite (or non-float) tensor, else e.g. '3 NaN, 1 inf'."""
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return ""
    counts = ((int(tensor.isnan().sum()), "NaN"), (int(tensor.isinf().sum()), "inf"))
    return ", ".join(f"{count} {what}" for count, what in counts if count)


def _model_from_own_config(config: dict[str, Any], folder: Path) -> CanViT | CanViTForPretraining:
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder}: saccade format version {version} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        canvit_config = CanViTConfig.from_dict(config["canvit_config"])
        architecture = config["architecture"]
        if architecture == "CanViT":
            return CanViT(canvit_config)
        if architecture == "CanViTForPretraining":
            return CanViTForPretraining(
                canvit_config,
                teacher_dim=config["teacher_dim"],
                teacher_patch_grid=config["teacher_patch_grid"],
                patch_readout_blocks=config.get("patch_readout_blocks", 0),  # absent before 2026-12-05
            )
    except KeyError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} lacks the field {error}") from None
    raise CheckpointError(f"{folder / CONFIG_FILE}: unknown architecture {architecture!r}")


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint config {file} does not exist")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{file} must hold a JSON object, got {type(config).__name__}")
    return config


def _read_safetensors(file: Path) -> dict[str, Tensor]:
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint weights {file} do not exist")
    try:
        return load_file(file)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{file} is not a readable safetensors file: {error}") from None
