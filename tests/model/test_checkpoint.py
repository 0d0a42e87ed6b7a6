"""Checkpoints: our folder format round-trips; authors' folders load; every mismatch is an error that lists keys."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from saccade import CanViT, CanViTForPretraining, CheckpointError, load_pretrained, preset, save_pretrained
from saccade.model.compat import rename_legacy_keys
from tests.conftest import REFERENCE, reference_backbone_specs

TINY = preset("canvit-tiny")


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_bare_round_trip(tmp_path):
    model = CanViT(TINY)
    save_pretrained(model, tmp_path / "bare")
    loaded = load_pretrained(tmp_path / "bare")
    assert type(loaded) is CanViT and loaded.config == model.config
    assert_same_weights(model, loaded)
    assert not list(tmp_path.glob("bare/*.tmp")), "temporary files left behind"


def test_pretraining_round_trip(tmp_path):
    model = CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4)
    model.teacher_patch_standardizer.fit(torch.randn(5, 16, 24))
    model.teacher_cls_standardizer.fit(torch.randn(5, 24))
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded, CanViTForPretraining)
    assert (loaded.teacher_dim, loaded.teacher_patch_grid) == (24, 4)
    assert bool(loaded.teacher_patch_standardizer.fitted)
    assert_same_weights(model, loaded)


@pytest.mark.reference
@pytest.mark.parametrize("layout", ["checkpoint_v0.2", "checkpoint_v0.1"])
def test_authors_folders_round_trip_through_ours(tmp_path, layout):
    theirs = load_pretrained(REFERENCE / layout, backbone_specs=reference_backbone_specs())
    save_pretrained(theirs, tmp_path)
    assert_same_weights(theirs, load_pretrained(tmp_path))


@pytest.mark.reference
def test_legacy_key_map_matches_the_published_one():
    keymap = json.loads((REFERENCE / "legacy_keymap.json").read_text())
    mapping = {k: v for k, v in keymap.items() if isinstance(v, str) and "." in k}
    renamed = rename_legacy_keys({old: torch.zeros(()) for old in mapping.values()}, pretraining=True)
    assert set(renamed) == set(mapping)


@pytest.mark.reference
def test_authors_bare_layouts(tmp_path):
    """A bare 0.2 folder (CanViT config at the top) and a bare 0.1 folder (no heads) load as CanViT."""
    tensors = load_file(REFERENCE / "checkpoint_v0.2" / "model.safetensors")
    config = json.loads((REFERENCE / "checkpoint_v0.2" / "config.json").read_text())
    bare = {k.removeprefix("canvit."): v for k, v in tensors.items() if k.startswith("canvit.")}
    (tmp_path / "v02").mkdir()
    save_file(bare, tmp_path / "v02" / "model.safetensors")
    (tmp_path / "v02" / "config.json").write_text(json.dumps(config["canvit_config"]))
    model = load_pretrained(tmp_path / "v02", backbone_specs=reference_backbone_specs())
    assert type(model) is CanViT

    legacy = load_file(REFERENCE / "checkpoint_v0.1" / "model.safetensors")
    legacy_config = json.loads((REFERENCE / "checkpoint_v0.1" / "config.json").read_text())
    legacy_config["model_config"].pop("teacher_dim")
    heads = ("scene_", "cls_standardizers")
    (tmp_path / "v01").mkdir()
    save_file({k: v for k, v in legacy.items() if not k.startswith(heads)}, tmp_path / "v01" / "model.safetensors")
    (tmp_path / "v01" / "config.json").write_text(json.dumps(legacy_config))
    legacy_model = load_pretrained(tmp_path / "v01", backbone_specs=reference_backbone_specs())
    assert type(legacy_model) is CanViT
    assert_same_weights(model, legacy_model)


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path):
    save_pretrained(CanViT(TINY), tmp_path)
    return tmp_path


def test_missing_and_unexpected_keys_are_listed(saved):
    tensors = load_file(saved / "model.safetensors")
    tensors.pop("backbone.blocks.0.norm1.weight")
    tensors["backbone.norm.weight"] = torch.ones(64)
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError) as error:
        load_pretrained(saved)
    assert "1 missing key(s): backbone.blocks.0.norm1.weight" in str(error.value)
    assert "1 unexpected key(s): backbone.norm.weight" in str(error.value)


def test_misshaped_keys_are_listed(saved):
    tensors = load_file(saved / "model.safetensors")
    tensors["init_canvas_patch"] = torch.zeros(1, 1, 32)
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"init_canvas_patch: checkpoint \(1, 1, 32\) vs model \(1, 1, 96\)"):
        load_pretrained(saved)


def test_corrupt_weights(saved):
    (saved / "model.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_pretrained(saved)


def test_corrupt_and_unknown_config(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pretrained(saved)
    (saved / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(CheckpointError, match="not a known checkpoint format"):
        load_pretrained(saved)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_pretrained(tmp_path)


@pytest.mark.reference
def test_unknown_backbone_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"backbone_specs="):
        load_pretrained(REFERENCE / "checkpoint_v0.2")


def test_pretraining_checkpoint_into_wrong_grid_is_an_error(tmp_path):
    model = CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4)
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["teacher_patch_grid"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"teacher_patch_standardizer\.mean"):
        load_pretrained(tmp_path)


def test_copy_of_folder_is_self_contained(saved, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    assert type(load_pretrained(copy)) is CanViT


def test_non_finite_weights_are_refused_by_name(saved):
    tensors = load_file(saved / "model.safetensors")
    tensors["backbone.blocks.0.attn.qkv.weight"][0, :3] = float("nan")
    tensors["init_canvas_patch"][0, 0, 5] = float("inf")
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError) as error:
        load_pretrained(saved)
    message = str(error.value)
    assert "2 non-finite tensor(s)" in message
    assert "backbone.blocks.0.attn.qkv.weight (3 NaN)" in message and "init_canvas_patch (1 inf)" in message


def test_integer_tensors_in_place_of_floats_are_refused_by_name(saved):
    tensors = load_file(saved / "model.safetensors")
    tensors["init_canvas_patch"] = tensors["init_canvas_patch"].round().long()
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"1 wrong-dtype key\(s\): init_canvas_patch: checkpoint torch\.int64 vs"):
        load_pretrained(saved)
