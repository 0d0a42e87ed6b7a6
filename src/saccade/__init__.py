"""saccade: active-vision foundation models; a faithful, fast, checkpoint-compatible CanViT."""

from saccade.geometry import Viewpoint, grid_coords
from saccade.glimpse import sample_glimpse
from saccade.loading import LoadedModel, load, load_pretrained
from saccade.model.canvit import CanViT, GlimpseOutput, RecurrentState
from saccade.model.checkpoint import CheckpointError, save_pretrained
from saccade.model.config import PRESETS, CanViTConfig, ViTSpec, preset
from saccade.model.pretraining import CanViTForPretraining

__all__ = [
    "PRESETS",
    "CanViT",
    "CanViTConfig",
    "CanViTForPretraining",
    "CheckpointError",
    "GlimpseOutput",
    "LoadedModel",
    "RecurrentState",
    "ViTSpec",
    "Viewpoint",
    "grid_coords",
    "load",
    "load_pretrained",
    "preset",
    "sample_glimpse",
    "save_pretrained",
]

__version__ = "0.1.0"
