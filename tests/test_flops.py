"""Analytic FLOPs and parameter counts against the authors' official counter (tests/data/reference/flops.json)."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from saccade.flops import (
    TEACHER_SPECS,
    glimpse_flops,
    parameter_count,
    seg_probe_flops,
    state_dict_numel,
    teacher_flops,
    vit_flops,
)
from saccade.model.config import BACKBONES, PRESETS, CanViTConfig

REFERENCE = Path(__file__).parent / "data" / "reference"
FLOPS = json.loads((REFERENCE / "flops.json").read_text())


def _row_id(row: dict[str, Any]) -> str:
    return f"{row['config'].split(' (')[0]}-px{row['glimpse_px']}-G{row['canvas_grid']}".replace(" ", "_")


def _row_config(row: dict[str, Any]) -> CanViTConfig:
    """The CanViT config of a flops.json row: the flagship with the row's fields changed."""
    canvas_dim = row.get("canvas_dim", 1024)
    return CanViTConfig(
        backbone_name=row["backbone"],
        canvas_num_heads=canvas_dim // 128,
        canvas_head_dim=128,
        canvas_projections=row.get("canvas_projections", "asymmetric"),
        enable_reads=row.get("enable_reads", True),
        rw_stride=row.get("rw_stride", 2),
    )


@pytest.mark.parametrize("row", FLOPS["canvit"], ids=_row_id)
def test_glimpse_flops_match_official(row: dict[str, Any]) -> None:
    config = _row_config(row)
    flops = glimpse_flops(config, glimpse_px=row["glimpse_px"], canvas_grid=row["canvas_grid"])
    assert flops.total == row["glimpse_flops"]
    expected = {
        "num_glimpse_tokens": flops.num_glimpse_tokens,
        "num_canvas_tokens": flops.num_canvas_tokens,
        "read_flops": flops.read_flops,
        "write_flops": flops.write_flops,
    }
    for key, value in expected.items():
        if key in row:
            assert value == row[key], key
    if "seg_probe_150_flops" in row:
        probe = seg_probe_flops(config.canvas_dim, row["canvas_grid"], 150)
        assert probe == row["seg_probe_150_flops"]
        assert flops.total + probe == row["glimpse_plus_probe_flops"]


def test_tiny_preset_is_the_fixture_model() -> None:
    fixture = json.loads((REFERENCE / "config.json").read_text())
    config = PRESETS["canvit-tiny"]
    for key in ("embed_dim", "num_heads", "num_blocks", "patch_size", "mlp_hidden_dim"):
        assert getattr(config.backbone, key) == fixture["backbone"][key], key
    for key, value in fixture["canvit"].items():
        if hasattr(config, key):
            assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), key


@pytest.mark.parametrize("row", FLOPS["fixtures"], ids=lambda row: row["fixture"])
def test_fixture_glimpse_flops_match_official(row: dict[str, Any]) -> None:
    flops = glimpse_flops(PRESETS["canvit-tiny"], glimpse_px=row["glimpse_px"], canvas_grid=row["canvas_grid"])
    assert flops.total == row["glimpse_flops"]


@pytest.mark.parametrize("row", FLOPS["dinov3"], ids=lambda row: f"{row['model']}-{row['input_px']}")
def test_dinov3_flops_match_official(row: dict[str, Any]) -> None:
    assert teacher_flops(row["model"], row["input_px"]) == row["flops"]
    assert vit_flops(TEACHER_SPECS[row["model"]], row["input_px"]) == row["flops"]


@pytest.mark.parametrize("name", sorted(FLOPS["parameter_counts"]))
def test_parameter_counts_match_official(name: str) -> None:
    expected = FLOPS["parameter_counts"][name]
    config = PRESETS[name.split(" ")[0]]
    readouts = {"teacher_dim": 768, "teacher_patch_grid": 32} if "readouts" in name else {}
    teacher_dim = readouts.get("teacher_dim")
    assert parameter_count(config, teacher_dim=teacher_dim) == expected["parameters"]
    assert state_dict_numel(config, **readouts) == expected["state_dict_elements"]


def test_headline_numbers() -> None:
    """Paper: 95.2M parameters, 15.8 GFLOPs per glimpse at G=32 with the ADE20K probe; 1.05 GF per R/W pair."""
    config = PRESETS["canvit-b16"]
    flops = glimpse_flops(config, glimpse_px=128, canvas_grid=32)
    assert round((flops.total + seg_probe_flops(1024, 32)) / 1e9, 1) == 15.8
    assert round((flops.read_flops + flops.write_flops) / 1e9, 2) == 1.05
    assert round(parameter_count(config) / 1e6, 1) == 95.2


@pytest.mark.reference
def test_state_dict_numel_matches_fixture_checkpoint() -> None:
    path = REFERENCE / "checkpoint_v0.2" / "model.safetensors"
    if not path.exists():
        pytest.skip(f"{path} absent")
    with path.open("rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(header_size))
    header.pop("__metadata__", None)
    numel = sum(math.prod(entry["shape"]) for entry in header.values())
    assert state_dict_numel(PRESETS["canvit-tiny"], teacher_dim=48, teacher_patch_grid=8) == numel


def test_canvas_cost_is_affine_in_canvas_tokens() -> None:
    config = PRESETS["canvit-b16"]
    totals = [glimpse_flops(config, glimpse_px=128, canvas_grid=grid).total for grid in (8, 16, 24)]
    # G² = 64, 256, 576: equal steps of canvas tokens (192, 320) scale the cost difference.
    assert (totals[1] - totals[0]) * 320 == (totals[2] - totals[1]) * 192


def test_bad_inputs_raise_clear_errors() -> None:
    config = PRESETS["canvit-b16"]
    with pytest.raises(ValueError, match="glimpse_px must be a positive multiple of the patch size 16, got 100"):
        glimpse_flops(config, glimpse_px=100, canvas_grid=8)
    with pytest.raises(ValueError, match="glimpse_px must be a positive int, got 0"):
        glimpse_flops(config, glimpse_px=0, canvas_grid=8)
    with pytest.raises(ValueError, match="canvas_grid must be a positive int, got 0"):
        glimpse_flops(config, glimpse_px=128, canvas_grid=0)
    with pytest.raises(ValueError, match=r"canvas_grid must be a positive int, got 2\.5"):
        glimpse_flops(config, glimpse_px=128, canvas_grid=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        seg_probe_flops(1024, 8, 0)
    with pytest.raises(ValueError, match="input_px must be a positive multiple of the patch size 16, got 130"):
        vit_flops(BACKBONES["vitb16"], 130)
    with pytest.raises(ValueError, match="unknown teacher 'dinov2-vitb14'"):
        teacher_flops("dinov2-vitb14", 224)
    with pytest.raises(ValueError, match="teacher_patch_grid is required"):
        state_dict_numel(config, teacher_dim=768)


# The torch cross-check needs the model; variants cover every branch of the analytic formulas.
TINY_VARIANTS = {
    "tiny": {},
    "qkvo": {"canvas_projections": "qkvo"},
    "no-reads": {"enable_reads": False},
    "no-vpe": {"enable_vpe": False},
    "write-sink": {"canvas_write_sink": True},
    "write-patches-only": {"write_patches_only": True},
}


@pytest.mark.parametrize("variant", sorted(TINY_VARIANTS))
def test_analytic_counts_match_the_model(variant: str) -> None:
    """torch's FlopCounterMode and the model's parameters agree exactly with the analytic counts."""
    pytest.importorskip("saccade.model.canvit")
    from saccade.flops import torch_glimpse_flops
    from saccade.model.canvit import CanViT

    config = dataclasses.replace(PRESETS["canvit-tiny"], **TINY_VARIANTS[variant])
    model = CanViT(config)
    assert sum(parameter.numel() for parameter in model.parameters()) == parameter_count(config)
    assert sum(tensor.numel() for tensor in model.state_dict().values()) == state_dict_numel(config)
    # Exact: FlopCounterMode counts the same ops (Linear, patch conv, VPE matmul, SDPA) with the same
    # 2-per-MAC rule, and nothing the analytic convention leaves out (norms, softmax, RoPE, GELU).
    analytic = glimpse_flops(config, glimpse_px=48, canvas_grid=5).total
    assert torch_glimpse_flops(config, glimpse_px=48, canvas_grid=5) == analytic


def test_teacher_spec_names_are_the_literal_the_command_line_offers():
    from typing import get_args

    from saccade.flops import TeacherSpecName

    assert set(get_args(TeacherSpecName)) == set(TEACHER_SPECS)
