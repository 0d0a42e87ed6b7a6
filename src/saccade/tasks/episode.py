"""The episode a released model runs: from what saccade recorded, else from its repository name, else the paper's.

Precedence, per field: an explicit argument; the episode saccade's pretraining recorded in the checkpoint; the
`g{G}px-s{S}px` of a released name (`canvitb16-add-vpe-pretrain-g128px-s512px-in21k-dv3b16-2026-02-02`); for the
canvas grid, the teacher's patch grid (the grid the model was pretrained to predict), else the released names' rule
scene px = 16 x canvas grid; the paper's episode.
"""

from __future__ import annotations

import dataclasses
import re

from saccade.episode_config import EPISODES, EpisodeConfig

__all__ = ["task_episode"]

RELEASED_GEOMETRY = re.compile(r"g(?P<glimpse_px>\d+)px-s(?P<scene_px>\d+)px")
RELEASED_CELL_PX = 16  # the released names' scene px = 16 x canvas grid


def task_episode(
    name: str,
    *,
    recorded: EpisodeConfig | None = None,
    teacher_patch_grid: int | None = None,
    glimpse_px: int | None = None,
    scene_px: int | None = None,
    canvas_grid: int | None = None,
    num_glimpses: int | None = None,
) -> EpisodeConfig:
    """The episode of the model called `name` (a Hub id, mirror name or folder); see the module docstring."""
    episode = recorded or EPISODES["paper"]
    fields: dict[str, int] = {}
    if recorded is None:
        if match := RELEASED_GEOMETRY.search(str(name)):
            fields |= {key: int(value) for key, value in match.groupdict().items()}
            fields["canvas_grid"] = fields["scene_px"] // RELEASED_CELL_PX
        if teacher_patch_grid is not None:
            fields["canvas_grid"] = teacher_patch_grid
    explicit = {
        "glimpse_px": glimpse_px,
        "scene_px": scene_px,
        "canvas_grid": canvas_grid,
        "num_glimpses": num_glimpses,
    }
    fields |= {key: value for key, value in explicit.items() if value is not None}
    return dataclasses.replace(episode, **fields)
