"""The only module that knows the authors' checkpoint formats (canvit-pytorch 0.1 and 0.2).

Our parameter names follow the 0.2 layout, so a 0.2 folder loads as is; 0.1 key names are renamed
here. Configs are translated into CanViTConfig; backbones other than BACKBONES need a spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from saccade.model.config import BACKBONES, CanViTConfig, ViTSpec

__all__ = ["AuthorsCheckpoint", "parse_authors_config", "rename_legacy_keys"]

PUBLISHED_BACKBONES = ("vits16", "vitb16", "vitl16")

# 0.1 -> 0.2 renames, applied in order to every key.
_LEGACY_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^canvas_read\.(\d+)\.", r"canvas_reads.\1."),
    (r"^canvas_write\.(\d+)\.", r"canvas_writes.\1."),
    (r"^(canvas_(?:reads|writes)\.\d+)\.q_norm\.", r"\1.ln_q."),
    (r"^(canvas_(?:reads|writes)\.\d+)\.kv_norm\.", r"\1.ln_kv."),
    (r"^(canvas_(?:reads|writes)\.\d+)\.([qkv])_proj\.", r"\1.\2_map."),
    (r"^(canvas_(?:reads|writes)\.\d+)\.out_proj\.", r"\1.o_map."),
    (r"^canvas_register_init$", "init_canvas_registers"),
    (r"^canvas_spatial_init$", "init_canvas_patch"),
    (r"^recurrent_cls_init$", "init_recurrent_cls"),
    (r"^vpe\.B$", "vpe.frequencies"),
)
_LEGACY_HEAD_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^scene_patches_head\.", "teacher_patch_readout."),
    (r"^scene_cls_head\.", "teacher_cls_readout."),
    (r"^scene_standardizers\.\d+\.", "teacher_patch_standardizer."),
    (r"^cls_standardizers\.\d+\.", "teacher_cls_standardizer."),
    (r"\._initialized$", ".fitted"),
)
_HEAD_PREFIXES = ("scene_patches_head.", "scene_cls_head.", "scene_standardizers.", "cls_standardizers.")


@dataclass(frozen=True)
class AuthorsCheckpoint:
    """What an authors' config.json describes."""

    layout: str  # "0.1" or "0.2"
    canvit_config: CanViTConfig
    teacher_dim: int | None  # None for a bare CanViT
    teacher_patch_grid: int | None


def _resolve_backbone(name: str, backbone_specs: dict[str, dict[str, Any]] | None) -> ViTSpec:
    if backbone_specs and name in backbone_specs:
        return ViTSpec.from_dict(dict(backbone_specs[name]))
    if name in BACKBONES:  # the published ones and those saccade defines (a saccade-published folder)
        return BACKBONES[name]
    raise ValueError(
        f"checkpoint uses backbone {name!r}, which neither the authors nor saccade define {sorted(BACKBONES)}; pass "
        f"backbone_specs={{{name!r}: dict(embed_dim=..., num_heads=..., num_blocks=..., patch_size=..., "
        "ffn_ratio=..., rope_base=..., layerscale_init=...)}"
    )


def _canvit_config_v02(fields: dict[str, Any], backbone_specs) -> CanViTConfig:
    fields = dict(fields)
    name = fields.pop("backbone_name", None)
    if name is None:
        raise ValueError("authors' 0.2 canvit config has no 'backbone_name'")
    return CanViTConfig.from_dict(
        {**fields, "backbone_name": name, "backbone": _resolve_backbone(name, backbone_specs)}
    )


def _canvit_config_v01(name: str, model_config: dict[str, Any], backbone_specs) -> CanViTConfig:
    fields = dict(model_config)
    fields.pop("teacher_dim", None)
    update_mode = fields.pop("canvas_update_mode", "additive")
    fields.pop("gate_bias_init", None)
    if update_mode != "additive":
        raise ValueError(f"0.1 canvas_update_mode {update_mode!r} is not supported (only 'additive' was released)")
    projections = fields.pop("canvas_proj_mode", "asymmetric")
    renamed = {
        "num_backbone_registers": fields.pop("n_backbone_registers", 5),
        "num_canvas_registers": fields.pop("n_canvas_registers", 16),
        "canvas_projections": {"asymmetric": "asymmetric", "full": "qkvo"}.get(projections, projections),
    }
    return CanViTConfig.from_dict(
        {**fields, **renamed, "backbone_name": name, "backbone": _resolve_backbone(name, backbone_specs)}
    )


def parse_authors_config(
    config: dict[str, Any], backbone_specs: dict[str, dict[str, Any]] | None = None
) -> AuthorsCheckpoint | None:
    """Translate an authors' config.json; None when it is not one of their formats."""
    if "canvit_config" in config:  # 0.2 CanViTForPretraining
        return AuthorsCheckpoint(
            layout="0.2",
            canvit_config=_canvit_config_v02(config["canvit_config"], backbone_specs),
            teacher_dim=int(config["teacher_dim"]),
            teacher_patch_grid=int(config["teacher_patch_grid"]),
        )
    if "model_config" in config and "backbone_name" in config:  # 0.1, bare or pretraining
        model_config = config["model_config"]
        grids = config.get("canvas_patch_grid_sizes") or []
        teacher_dim = model_config.get("teacher_dim")
        if teacher_dim is not None and len(grids) != 1:
            raise ValueError(
                f"0.1 checkpoint holds standardizers for grids {grids}; saccade keeps exactly one teacher grid"
            )
        return AuthorsCheckpoint(
            layout="0.1",
            canvit_config=_canvit_config_v01(config["backbone_name"], model_config, backbone_specs),
            teacher_dim=None if teacher_dim is None else int(teacher_dim),
            teacher_patch_grid=int(grids[0]) if teacher_dim is not None else None,
        )
    if "backbone_name" in config and "format" not in config:  # 0.2 bare CanViT
        return AuthorsCheckpoint(
            layout="0.2",
            canvit_config=_canvit_config_v02(config, backbone_specs),
            teacher_dim=None,
            teacher_patch_grid=None,
        )
    return None


def rename_legacy_keys(tensors: dict[str, Tensor], *, pretraining: bool) -> dict[str, Tensor]:
    """0.1 key names -> ours (0.2). Pretraining checkpoints get the bare-model keys under `canvit.`."""
    renamed: dict[str, Tensor] = {}
    for key, tensor in tensors.items():
        new = key
        if key.startswith(_HEAD_PREFIXES):
            for pattern, replacement in _LEGACY_HEAD_RENAMES:
                new = re.sub(pattern, replacement, new)
        else:
            for pattern, replacement in _LEGACY_RENAMES:
                new = re.sub(pattern, replacement, new)
            if pretraining:
                new = "canvit." + new
        renamed[new] = tensor
    return renamed
