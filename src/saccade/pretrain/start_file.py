"""A pretraining start without its backbone: one small safetensors file that a run continues from.

A saved pretraining model holds every weight: for the main job's ViT-S, 93 MB. When a model was trained with its
backbone frozen at a selection from the teacher (`PretrainConfig.freeze_backbone` with a `backbone_init` other than
"random"), the backbone holds nothing the run learned: the selection gives it back exactly. A start file keeps only
the rest (Writes, canvas inits, teacher readouts, standardizers: 1.7 M numbers, 6.8 MB for the main job) and names
the selection, and `load_start_file` rebuilds the model from both. `save_start_file` refuses a model whose backbone
is not that selection, so a file never silently drops what a run learned.

The file's metadata holds the model's shape (config), the backbone selection, and a free-form record of how it was
made (info: recipe, steps, time). `saccade demo` continues from the one the project ships (`DemoConfig.start`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from saccade.model.checkpoint import pretraining_shape
from saccade.model.config import CanViTConfig
from saccade.model.pretraining import CanViTForPretraining
from saccade.weights_file import load_strict, read_weights_file, save_weights_file

__all__ = ["backbone_keys", "is_start_file", "load_start_file", "save_start_file", "start_file_info"]

FORMAT_NAME = "saccade-pretraining-start"
FORMAT_VERSION = 1
WHAT = "pretraining start"


def is_start_file(spec: str | os.PathLike) -> bool:
    """Whether `spec` names a start file (a .safetensors path) rather than a saved model or Hub id."""
    return str(spec).endswith(".safetensors")


def _shape_record(model: CanViTForPretraining, backbone_init: str) -> dict[str, Any]:
    """What a start file must agree on with the model it goes into."""
    return {**pretraining_shape(model), "backbone_init": backbone_init}


SELECTED = ("canvit.backbone.", "canvit.init_recurrent_cls")
"""The state-dict keys (prefixes) that a backbone_init selection sets (saccade.pretrain.weight_selection): the
backbone's blocks and patch embedding, and the recurrent-CLS init. A start file leaves them out; the backbone
registers and the VPE, which keep their seeded initialisation, stay in it."""


def backbone_keys(model: CanViTForPretraining) -> set[str]:
    """The state-dict keys a start file leaves out (SELECTED)."""
    return {key for key in model.state_dict() if key.startswith(SELECTED)}


def _selected_backbone(model: CanViTForPretraining, backbone_init: str) -> dict[str, torch.Tensor]:
    """The backbone entries a fresh model of `model`'s shape gets from `backbone_init`."""
    from saccade.pretrain.state import select_backbone

    fresh = CanViTForPretraining(
        model.config,
        teacher_dim=model.teacher_dim,
        teacher_patch_grid=model.teacher_patch_grid,
        patch_readout_blocks=model.patch_readout_blocks,
    )
    select_backbone(fresh.canvit, backbone_init)
    state = fresh.state_dict()
    return {key: state[key] for key in backbone_keys(fresh)}


def save_start_file(
    model: CanViTForPretraining, path: str | os.PathLike, *, backbone_init: str, info: dict[str, Any]
) -> Path:
    """Write `model` without its backbone, which must be exactly `backbone_init`'s selection; returns the path."""
    if backbone_init == "random":
        raise ValueError("a start file needs a backbone_init that gives the backbone back (not 'random')")
    state = model.state_dict()
    selected = _selected_backbone(model, backbone_init)
    moved = [key for key, value in selected.items() if not torch.equal(state[key], value)]
    if moved:
        raise ValueError(
            f"the model's backbone is not the {backbone_init!r} selection ({len(moved)} tensors differ, e.g. "
            f"{sorted(moved)[0]}): a start file leaves the backbone out, so it holds only a model pretrained with "
            "the backbone frozen (PretrainConfig.freeze_backbone)"
        )
    config = _shape_record(model, backbone_init)
    leave_out = backbone_keys(model)
    return save_weights_file(
        model, path, kind=FORMAT_NAME, version=FORMAT_VERSION, config=config, info=info, leave_out=leave_out
    )


def load_start_file(model: CanViTForPretraining, path: str | os.PathLike, *, backbone_init: str) -> None:
    """Copy a start file into `model`, whose backbone must already be `backbone_init`'s selection; the file must
    be of `model`'s shape and of that selection (errors name the differing settings)."""
    file = read_weights_file(path, kind=FORMAT_NAME, version=FORMAT_VERSION, what=WHAT)
    expected = _shape_record(model, backbone_init)
    differing = [
        f"{name} {file.config.get(name)!r} in the file, {value!r} here"
        for name, value in expected.items()
        if file.config.get(name) != value
    ]
    if differing:
        raise ValueError(f"{path} is a start of another model: {'; '.join(differing)}")
    state = model.state_dict()
    backbone = {key: state[key] for key in backbone_keys(model)}
    in_file = sorted(set(file.tensors) & set(backbone))
    if in_file:
        raise ValueError(f"{path} holds backbone tensors, which a start file leaves out: {', '.join(in_file)}")
    load_strict(model, {**backbone, **file.tensors}, source=path)


def start_file_info(path: str | os.PathLike) -> dict[str, Any]:
    """The record of how a start file was made (its `info`), and the model it is a start of."""
    file = read_weights_file(path, kind=FORMAT_NAME, version=FORMAT_VERSION, what=WHAT, tensors=False)
    model = CanViTConfig.from_dict(file.config["canvit_config"])
    return {**file.info, "backbone_init": file.config["backbone_init"], "backbone": model.backbone_name}
