"""saccade: active-vision foundation models; a faithful, fast, checkpoint-compatible CanViT.

The public names below are imported on first use (PEP 562), so `import saccade.cli` and `saccade --help` do not
pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saccade.geometry import Viewpoint, grid_coords
    from saccade.glimpse import sample_glimpse
    from saccade.loading import LoadedModel, load, load_pretrained
    from saccade.model.canvit import CanViT, GlimpseOutput, RecurrentState
    from saccade.model.checkpoint import CheckpointError, save_pretrained
    from saccade.model.config import PRESETS, CanViTConfig, ViTSpec, preset
    from saccade.model.pretraining import CanViTForPretraining

_HOMES = {
    "saccade.geometry": ("Viewpoint", "grid_coords"),
    "saccade.glimpse": ("sample_glimpse",),
    "saccade.loading": ("LoadedModel", "load", "load_pretrained"),
    "saccade.model.canvit": ("CanViT", "GlimpseOutput", "RecurrentState"),
    "saccade.model.checkpoint": ("CheckpointError", "save_pretrained"),
    "saccade.model.config": ("PRESETS", "CanViTConfig", "ViTSpec", "preset"),
    "saccade.model.pretraining": ("CanViTForPretraining",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, then keep it here."""
    if name not in _HOME_OF:
        raise AttributeError(f"module 'saccade' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
