"""Where Canvas Attention starts: the default initialisation, or local (writes and reads attend by position).

With the default start, Canvas Attention logits are of order one, so a Write spreads a glimpse over the whole
canvas: after a quadrant glimpse every cell changes alike (benchmarks/canvas_locality.py), and at the main job's
CPU budget training never makes them sharp, so zoomed glimpses add nothing (docs/main-job.md). The local start
(`PretrainConfig.canvas_start = "local"`) sets biases so that from step 0 a canvas cell attends to the glimpse
tokens near it in the scene, and a glimpse token reads the canvas cells near it, on top of content:

- a carrier vector u of the canvas head width, whose RoPE kernel rot(u, p) . rot(u, q) = K(dy) + K(dx) is a
  Gaussian of the scene-relative offset (fitted with non-negative weights over the RoPE frequencies);
- Writes: the canvas LayerNorm's bias holds query_scale * u and the glimpse keys' bias key_scale * u, so the
  logit between a cell and a token gains logit_gap * (K(dy) + K(dx)); Reads alike, the other way round;
- Read output maps start at zero, so the first glimpses run the backbone as if there were no canvas;
- with a Write sink (`CanViTConfig.canvas_write_sink`), its logit starts at logit_gap * (zoom - 1/2), zoom =
  log2(1 / scale): -5 for a full-scene glimpse (every cell takes a full step), 5 for a quadrant (cells more than
  about a quadrant away keep most of what they held), 15 for a 1/16 tile (only its own cells and their
  neighbours change). Without the sink a far cell still takes a full step towards the glimpse's average value.

The "local-position" start (`apply_canvas_start`) also zeroes the Writes' query LayerNorm and key map weights, so
that a Write attends by scene position alone, and cuts the sink at 12 logits per zoom level. With content in the
queries, a canvas that already holds something leaks every glimpse into far cells (about a third of a step per
glimpse), and a key with content lets training close a Write to the 1/16 tiles: with it and a frozen teacher
backbone, the main job's pretraining left their cells unchanged (benchmarks/write_retention.py, docs/main-job.md).
`PretrainConfig.freeze_write_attention` keeps it that way.

Measured on the main job's recipe (1,300 steps, 2 cores; docs/main-job.md): held-out C2F patch cosine 0.326 at
t = 0 rising to 0.372 at t = 9, where the default start stays flat (0.342 / 0.346 / 0.342 / 0.336 at t = 0 / 3 /
6 / 9); RFS, which only repeats the full-scene glimpse, stops at 0.342. With the Write sink as well, 0.340 -> 0.352:
the 1/16 tiles then write only near themselves and add nothing.
"""

from __future__ import annotations

import torch

from saccade.model.canvit import CanViT
from saccade.model.rope import rope_periods

__all__ = ["apply_canvas_start", "local_canvas_start", "rope_carrier"]

STRICT_SINK_PER_ZOOM = 12.0
"""The "local-position" start's sink slope: a 1/16 tile's cut lies between its own cells' logits and their
neighbours' (benchmarks/write_retention.py)."""


def apply_canvas_start(canvit: CanViT, start: str) -> None:
    """Apply a `PretrainConfig.canvas_start` by name: "default" leaves the initialisation as it is."""
    if start == "local":
        local_canvas_start(canvit)
    elif start == "local-position":
        local_canvas_start(canvit, position_only=True, sink_per_zoom=STRICT_SINK_PER_ZOOM)
    elif start != "default":
        raise ValueError(f"unknown canvas start {start!r}; expected 'default', 'local' or 'local-position'")


def rope_carrier(head_dim: int, rope_base: float, width: float = 0.2) -> torch.Tensor:
    """[head_dim] vector u whose RoPE kernel K(dy) + K(dx) peaks at zero offset, K(0) = 1 on each axis.

    K(d) = sum_k w_k cos(2 pi d / period_k), w_k = u_k^2 on the y and x angle dims, is fitted (w >= 0, projected
    gradient) to a Gaussian of `width` in scene units (the scene spans [-1, 1]) over |d| <= 2.
    """
    num_freqs = head_dim // 4
    distances = torch.linspace(-2, 2, 401, dtype=torch.float64)  # [401]
    periods = rope_periods(head_dim, rope_base).double()  # [n_f]
    basis = torch.cos(2 * torch.pi * distances[:, None] / periods)  # [401, n_f]
    target = torch.exp(-(distances**2) / (2 * width**2))  # [401]
    weights = torch.full((num_freqs,), 1.0 / num_freqs, dtype=torch.float64)  # [n_f]
    step = 1 / torch.linalg.matrix_norm(basis, ord=2) ** 2
    for _ in range(5000):
        weights = (weights - step * basis.T @ (basis @ weights - target)).clamp_min(0)
    weights = weights / (basis @ weights)[200]  # K(0) = 1
    carrier = torch.zeros(head_dim, dtype=torch.float64)
    carrier[:num_freqs] = weights.sqrt()  # y angles
    carrier[num_freqs : 2 * num_freqs] = weights.sqrt()  # x angles; their rotation partners stay 0
    return carrier.float()


@torch.no_grad()
def local_canvas_start(
    canvit: CanViT,
    *,
    logit_gap: float = 10.0,
    query_scale: float = 4.0,
    position_only: bool = False,
    sink_per_zoom: float | None = None,
) -> None:
    """Set `canvit`'s Canvas Attention to attend by scene position (see the module docstring), in place.

    Prefix tokens (CLS, registers: no rotation) look as if they sat at the scene centre. Needs the paper's
    asymmetric projections (a Write's queries and a Read's keys are the canvas LayerNorm's output).

    `position_only` zeroes the Writes' canvas LayerNorm weight and key map weight, so that a Write attends by scene
    position alone: otherwise, once the canvas has content, that content meets the keys' position carrier and a far
    cell takes about a third of a step per glimpse (benchmarks/write_retention.py). `sink_per_zoom` is the sink
    logit's slope per zoom level (logit_gap when None); 1.2 * logit_gap puts a 1/16 tile's cut between its own
    cells' logits and their neighbours'.
    """
    config = canvit.config
    if config.canvas_projections != "asymmetric":
        raise ValueError(
            f"the local canvas start needs canvas_projections='asymmetric', got {config.canvas_projections!r}"
        )
    carrier = rope_carrier(config.canvas_head_dim, config.backbone.rope_base).repeat(config.canvas_num_heads)
    key_scale = logit_gap * config.canvas_head_dim**0.5 / query_scale
    for write in canvit.canvas_writes:
        write.ln_q.bias.copy_(query_scale * carrier)
        if position_only:
            write.ln_q.weight.zero_()
            write.k_map.weight.zero_()
        write.k_map.bias.copy_(key_scale * carrier)
        if write.sink_logit is not None and write.sink_zoom is not None:
            write.sink_logit.fill_(-logit_gap / 2)
            write.sink_zoom.fill_(logit_gap if sink_per_zoom is None else sink_per_zoom)
    for read in canvit.canvas_reads:
        read.ln_kv.bias.copy_(query_scale * carrier)
        read.q_map.bias.copy_(key_scale * carrier)
        read.o_map.weight.zero_()
        read.o_map.bias.zero_()
