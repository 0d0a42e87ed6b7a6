"""Shared test helpers: the reference fixture (tests/data/reference) and a seeded generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REFERENCE = Path(__file__).parent / "data" / "reference"


def reference_backbone_specs() -> dict[str, dict]:
    """The fixture's backbone, as load_pretrained's backbone_specs."""
    backbone = json.loads((REFERENCE / "config.json").read_text())["backbone"]
    fields = ("embed_dim", "num_heads", "num_blocks", "patch_size", "ffn_ratio", "rope_base", "layerscale_init")
    return {backbone["name"]: {name: backbone[name] for name in fields}}


@pytest.fixture(scope="session")
def reference() -> dict[str, dict[str, torch.Tensor]]:
    """All reference tensor files, by stem."""
    names = ("inputs", "outputs", "traces", "common", "training", "eg_c2f", "seg_probe")
    return {name: load_file(REFERENCE / f"{name}.safetensors") for name in names}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Runs (pretraining, the demo) set torch's thread count for their process: keep each test's to itself."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture()
def small_teacher(monkeypatch):
    """The bundled teacher replaced by a small random DINOv2 of canvit-tiny's head width (weight selection)."""
    from saccade.teachers import dinov2_bundled
    from saccade.teachers.dinov2_bundled import DinoV2Teacher
    from tests.pretrain.test_weight_selection import _teacher

    teacher = _teacher(dim=128, heads=4, blocks=5, patch=14)
    monkeypatch.setattr(dinov2_bundled, "load_bundled_dinov2", lambda: DinoV2Teacher(teacher))
    return teacher
