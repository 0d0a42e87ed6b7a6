"""saccade.load: presets, checkpoint folders (with the episode they record) and config files."""

from __future__ import annotations

import json

import pytest
import torch

import saccade
from saccade.episode_config import EPISODES
from saccade.model.pretraining import CanViTForPretraining


def test_a_preset_loads_as_a_seeded_fresh_model_without_an_episode():
    first, second = saccade.load("canvit-tiny", seed=1), saccade.load("canvit-tiny", seed=1)
    assert first.episode is None and isinstance(first.model, saccade.CanViT)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_folder_gives_back_the_episode_it_was_saved_with(tmp_path):
    model = CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=8)
    saccade.save_pretrained(model, tmp_path / "m", episode=vars(EPISODES["cpu"]))
    loaded = saccade.load(tmp_path / "m")
    assert loaded.episode == EPISODES["cpu"] and loaded.canvit is loaded.model.canvit
    saccade.save_pretrained(model.canvit, tmp_path / "plain")
    assert saccade.load(tmp_path / "plain").episode is None


def test_an_older_pretraining_folder_finds_its_episode_in_the_run_config(tmp_path):
    model = CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=8)
    saccade.save_pretrained(model, tmp_path / "run" / "model")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"glimpse_px": 32, "canvas_grid": 8, "val_glimpses": 10}))
    episode = saccade.load(tmp_path / "run" / "model").episode
    assert (episode.glimpse_px, episode.canvas_grid, episode.num_glimpses) == (32, 8, 10)


def test_a_config_file_and_bad_specs(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(saccade.preset("canvit-tiny").to_dict()))
    assert saccade.load(tmp_path / "tiny.json").model.config == saccade.preset("canvit-tiny")
    with pytest.raises(ValueError, match=r"neither a checkpoint folder, a \.json CanViTConfig file nor a preset"):
        saccade.load("canvit-huge")
    with pytest.raises(FileNotFoundError, match=r"missing\.json does not exist"):
        saccade.load(tmp_path / "missing.json")
