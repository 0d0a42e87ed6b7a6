"""One way in for models: `saccade.load(spec)` turns a preset name, a checkpoint folder, a Hub id, a mirror name
or a config file into a model and the episode it was trained with.

| spec | model | episode |
| --- | --- | --- |
| a preset name (`canvit-t16d6`, see PRESETS) | a fresh CanViT, seeded with `seed` | None |
| a checkpoint folder (saccade's, the authors' 0.1 / 0.2) | the CanViT or CanViTForPretraining | as recorded, or None |
| a Hub id `org/name` or a mirror name (see saccade.hub) | as for the folder it resolves to | as recorded, or None |
| a `.json` file of CanViTConfig fields | a fresh CanViT, seeded with `seed` | None |

Commands fall back to their own `--episode.*` settings where a model records no episode; a recorded episode is
what the model was trained for, so downstream commands use it unless told otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saccade.config_files import config_from_dict
from saccade.episode_config import EpisodeConfig
from saccade.hub import ModelNotFoundError, resolve_folder
from saccade.model import checkpoint
from saccade.model.canvit import CanViT, as_canvit
from saccade.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from saccade.model.config import PRESETS, CanViTConfig
from saccade.model.pretraining import CanViTForPretraining

__all__ = ["LoadedModel", "as_canvit", "load", "load_pretrained", "recorded_episode"]

PUBLICATION_FILE = "saccade.json"
"""What `saccade publish` adds to the authors' layout: the backbone spec, the episode, the training record."""
# What a model repository holds for saccade: a Hub download fetches only these.
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, PUBLICATION_FILE)


@dataclass(frozen=True)
class LoadedModel:
    """What `load` returns: the model, the episode it was trained with (None: not recorded), and where from."""

    model: CanViT | CanViTForPretraining
    episode: EpisodeConfig | None
    source: str

    @property
    def canvit(self) -> CanViT:
        """The CanViT itself (a pretraining model's `.canvit`)."""
        return as_canvit(self.model)


def load(
    spec: str | os.PathLike,
    *,
    revision: str | None = None,
    seed: int = 0,
    map_location: str | torch.device = "cpu",
) -> LoadedModel:
    """The model named by `spec`: a preset name, a checkpoint folder, a Hub id (at `revision`, None: main), a
    mirror name or a CanViTConfig `.json` file (see module)."""
    path = Path(spec)
    if revision is None and not path.is_dir():
        if path.suffix == ".json":
            if not path.is_file():
                raise FileNotFoundError(f"model config file {path} does not exist")
            return LoadedModel(_fresh(CanViTConfig.from_dict(json.loads(path.read_text())), seed), None, str(path))
        if str(spec) in PRESETS:
            return LoadedModel(_fresh(PRESETS[str(spec)], seed), None, f"{spec} (random init, seed {seed})")
    try:
        folder = resolve_folder(spec, revision=revision, allow_patterns=CHECKPOINT_FILES)
    except ModelNotFoundError as error:
        if "/" in os.fspath(spec):
            raise
        raise ValueError(
            f"model {str(spec)!r} is neither a checkpoint folder, a .json CanViTConfig file nor a preset "
            f"(presets: {sorted(PRESETS)}), nor a released name: {error}"
        ) from None
    source = str(folder) if folder == path else f"{spec}{'' if revision is None else '@' + revision} ({folder})"
    model = checkpoint.load_pretrained(folder, map_location=map_location)
    return LoadedModel(model, recorded_episode(folder), source)


def load_pretrained(
    spec: str | os.PathLike,
    backbone_specs: dict[str, dict[str, Any]] | None = None,
    *,
    revision: str | None = None,
    map_location: str | torch.device = "cpu",
) -> CanViT | CanViTForPretraining:
    """The CanViT or CanViTForPretraining held by a checkpoint folder, a Hub id (at `revision`, None: main) or a
    mirror name, loaded strictly (saccade.model.checkpoint.load_pretrained on the folder it resolves to)."""
    folder = resolve_folder(spec, revision=revision, allow_patterns=CHECKPOINT_FILES)
    return checkpoint.load_pretrained(folder, backbone_specs, map_location=map_location)


def recorded_episode(folder: str | os.PathLike) -> EpisodeConfig | None:
    """The episode saccade recorded in a checkpoint folder's config.json, or in the saccade.json of a folder
    `saccade publish` wrote in the authors' layout; None for the authors' own folders.

    A pretraining model saved before the episode was recorded (saccade 0.1.0 of 2026-12-03 and earlier) finds it
    in its run's config.json one folder up, which held `glimpse_px`, `canvas_grid` and `val_glimpses`.
    """
    folder = Path(folder)
    for file in (folder / CONFIG_FILE, folder / PUBLICATION_FILE):
        episode = _read_object(file).get("episode")
        if episode is not None:
            return config_from_dict(EpisodeConfig, episode, path=f"{file}: episode")
    run_config = _read_object(folder.parent / "config.json")
    if {"glimpse_px", "canvas_grid"} <= set(run_config):
        from saccade.pretrain.config import PretrainConfig  # an older run's config: its own legacy keys

        return PretrainConfig.from_dict(run_config).episode
    return None


def _read_object(file: Path) -> dict:
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _fresh(config: CanViTConfig, seed: int) -> CanViT:
    torch.manual_seed(seed)
    return CanViT(config).eval()
