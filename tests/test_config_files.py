"""Nested configs to and from dicts and files; episode presets; runs written before the episode was nested."""

from __future__ import annotations

import json

import pytest

from saccade.config_files import changed_settings, config_from_dict, config_to_dict, read_config_file
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.evaluate.pipeline import EvaluateRunConfig
from saccade.pretrain.config import PretrainConfig, check_resume


def test_nested_configs_round_trip_through_json():
    config = PretrainConfig(episode=EPISODES["cpu"], rollouts=("full_then_random",), betas=(0.8, 0.9))
    assert PretrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    evaluate = EvaluateRunConfig(model="canvit-tiny", teacher="x", teacher_px=(16, 32))
    assert config_from_dict(EvaluateRunConfig, config_to_dict(evaluate)) == evaluate


def test_an_episode_may_be_named_by_its_preset_and_unknown_keys_name_their_path():
    assert PretrainConfig.from_dict({"episode": "cpu"}).episode == EPISODES["cpu"]
    partial = PretrainConfig.from_dict({"episode": {"canvas_grid": 8}}).episode  # a table updates the default
    assert partial == EpisodeConfig(canvas_grid=8)
    with pytest.raises(
        ValueError, match=r"episode: unknown EpisodeConfig preset 'gpu'; choose from \['cpu', 'paper'\]"
    ):
        PretrainConfig.from_dict({"episode": "gpu"})
    with pytest.raises(ValueError, match=r"^episode: unknown EpisodeConfig settings \['glimpse'\]"):
        PretrainConfig.from_dict({"episode": {"glimpse": 3}})
    with pytest.raises(ValueError, match=r"EpisodeConfig.glimpse_px \(64\) must not exceed scene_px \(32\)"):
        EpisodeConfig(scene_px=32, glimpse_px=64)


def test_a_run_written_with_flat_episode_keys_still_loads_and_resumes():
    old = {"model": "canvit-t16d6", "glimpse_px": 32, "canvas_grid": 8, "val_glimpses": 6, "steps": 10}
    config = PretrainConfig.from_dict(old)
    assert config.episode == EpisodeConfig(glimpse_px=32, canvas_grid=8, num_glimpses=6)
    assert check_resume(old, config, allow_change=False, source="run") == {}
    other_grid = PretrainConfig.from_dict({**old, "canvas_grid": 4})
    with pytest.raises(ValueError, match=r"episode\.canvas_grid 8 in the checkpoint, 4 now"):
        check_resume(old, other_grid, allow_change=True, source="run")


def test_config_files_are_read_as_toml_or_json_with_clear_errors(tmp_path):
    (tmp_path / "a.toml").write_text('episode = "cpu"\nsteps = = 5\n')
    with pytest.raises(ValueError, match=r"a\.toml: not valid TOML"):
        read_config_file(tmp_path / "a.toml")
    (tmp_path / "b.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a table of settings, got a list"):
        read_config_file(tmp_path / "b.json")
    with pytest.raises(FileNotFoundError, match=r"c\.json: no such file"):
        read_config_file(tmp_path / "c.json")
    (tmp_path / "d.toml").write_text('episode = "cpu"\nsteps = 5\n')
    assert PretrainConfig.from_file(tmp_path / "d.toml") == PretrainConfig(episode=EPISODES["cpu"], steps=5)


def test_changed_settings_name_nested_fields_and_read_missing_keys_as_defaults():
    now = PretrainConfig(episode=EPISODES["cpu"], steps=400)
    recorded = {k: v for k, v in PretrainConfig(episode=EPISODES["paper"], steps=50).to_dict().items() if k != "lr"}
    changes = changed_settings(recorded, now)  # lr missing there: today's default, as now's
    assert changes["steps"] == (50, 400)
    assert changes["episode.canvas_grid"] == (32, 8) and "lr" not in changes and "episode" not in changes
    assert changed_settings(now.to_dict(), now) == {}
