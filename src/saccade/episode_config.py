"""The geometry of an episode, in one place: scene size, glimpse size, canvas grid and glimpse count.

Every run config that rolls a model out (pretraining, evaluation, policy training and evaluation, the glimpse
environment, the main job) holds one `EpisodeConfig` as its `episode` field instead of loose copies, and saccade's
checkpoints record the episode they were trained with, so downstream commands read it from the checkpoint
(`saccade.load`). Two named regimes:

| name | scene px | glimpse px | canvas grid | glimpses | what |
| --- | --- | --- | --- | --- | --- |
| `paper` | 512 | 128 | 32 | 21 | the paper's geometry: 128 px glimpses of 512 px scenes, C2F over 3 levels |
| `cpu` | 128 | 32 | 8 | 10 | the 2-core CPU regime of the main job and the data-scarce experiments (1/4 the sides) |

Torch-free, so the command line can build its parser without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from saccade._checks import positive_int

__all__ = ["EPISODES", "EpisodeConfig", "EpisodeName"]


@dataclass(frozen=True, kw_only=True)
class EpisodeConfig:
    """Where and how a model looks: the geometry every glimpse of an episode shares."""

    scene_px: int = 512
    """Side in pixels the scene is resized to before glimpses are sampled from it."""
    glimpse_px: int = 128
    """Glimpse side in pixels (a multiple of the backbone's patch size)."""
    canvas_grid: int = 32
    """Canvas side G in cells (G x G canvas tokens); for distillation, the teacher's patch grid."""
    num_glimpses: int = 21
    """Glimpses per episode T (21 = the 1 + 4 + 16 tiles of a 3-level C2F quadtree)."""

    def __post_init__(self) -> None:
        for name in ("scene_px", "glimpse_px", "canvas_grid", "num_glimpses"):
            positive_int(f"EpisodeConfig.{name}", getattr(self, name))
        if self.glimpse_px > self.scene_px:
            raise ValueError(f"EpisodeConfig.glimpse_px ({self.glimpse_px}) must not exceed scene_px ({self.scene_px})")


EpisodeName = Literal["paper", "cpu"]

EPISODES: dict[EpisodeName, EpisodeConfig] = {
    "paper": EpisodeConfig(),
    "cpu": EpisodeConfig(scene_px=128, glimpse_px=32, canvas_grid=8, num_glimpses=10),
}
