"""The local canvas start: Writes land where the glimpse looked, Reads start as no-ops, and only fresh runs get it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import saccade
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.rope import rope_periods
from saccade.pretrain.canvas_start import local_canvas_start, rope_carrier
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.state import build_model

GRID = 8


def _change_under_over_elsewhere(canvit: saccade.CanViT) -> float:
    """Two scenes that differ only in their top-left 32 px, seen by one glimpse of the top-left quadrant (2 x 2
    tokens of 32 scene px each): how much more the canvas differs in the 2 x 2 cells under the changed token than in
    the others."""
    torch.manual_seed(0)
    scenes = torch.randn(4, 3, 128, 128)
    changed = scenes.clone()
    changed[:, :, :32, :32] = torch.randn(4, 3, 32, 32)
    viewpoint = Viewpoint(centers=torch.full((4, 2), -0.5), scales=torch.full((4,), 0.5))
    state = canvit.init_state(batch_size=4, canvas_grid=GRID)
    with torch.no_grad():
        canvases = [
            canvit(sample_glimpse(x, viewpoint, 32), state, viewpoint).state.canvas_patch_grid()
            for x in (scenes, changed)
        ]
    difference = (canvases[0] - canvases[1]).norm(dim=-1).mean(0)  # [G, G]
    under = difference[:2, :2].mean()
    elsewhere = (difference.sum() - difference[:2, :2].sum()) / (GRID**2 - 4)
    return (under / elsewhere).item()


def test_local_start_writes_where_the_glimpse_looked():
    """With the default start a cell cannot tell the glimpse tokens apart (ratio ~1.1); with the local one the
    change lands under the token that changed (measured 3.8)."""
    torch.manual_seed(0)
    canvit = saccade.CanViT(saccade.preset("canvit-tiny")).eval()
    default = _change_under_over_elsewhere(canvit)
    local_canvas_start(canvit)
    local = _change_under_over_elsewhere(canvit)
    assert default < 1.5 < 3 < local, (default, local)


def test_local_start_reads_start_as_no_ops():
    canvit = saccade.CanViT(saccade.preset("canvit-tiny"))
    local_canvas_start(canvit)
    for read in canvit.canvas_reads:
        assert not read.o_map.weight.any() and not read.o_map.bias.any()


def test_carrier_kernel_peaks_at_zero_offset():
    carrier = rope_carrier(48, 100.0).double()  # [Dh]
    quarter = 48 // 4
    periods = rope_periods(48, 100.0).double()  # [n_f]
    weights = carrier[:quarter] ** 2  # the y-axis kernel's weights
    offsets = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    kernel = (weights * torch.cos(2 * torch.pi * offsets[:, None] / periods)).sum(-1)  # [4]
    assert kernel[0] == pytest.approx(1.0, abs=1e-6)
    assert kernel[0] > kernel[1] > kernel[2] and kernel[3] < 0.2


def test_other_projections_are_refused():
    config = dataclasses.replace(saccade.preset("canvit-tiny"), canvas_projections="qkvo")
    with pytest.raises(ValueError, match="canvas_projections='asymmetric'"):
        local_canvas_start(saccade.CanViT(config))


def test_config_takes_the_start_and_only_fresh_models_get_it():
    with pytest.raises(ValueError, match="canvas_start must be one of"):
        PretrainConfig(canvas_start="sharp")
    config = PretrainConfig(model="canvit-tiny", canvas_start="local")
    fresh = build_model(config, teacher_dim=16)
    resumed = build_model(config, teacher_dim=16, resuming=True)
    assert not fresh.canvit.canvas_reads[0].o_map.weight.any()
    assert resumed.canvit.canvas_reads[0].o_map.weight.any()  # the checkpoint's weights will overwrite them
