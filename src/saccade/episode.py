"""Rollouts: run a CanViT over a batch of scenes for T glimpses under a policy (paper §5-6).

`iter_rollout` streams one `Step` per glimpse (viewpoint, glimpse pixels, model output), so long
episodes never hold more than one step; `rollout` collects them. Inference (no autograd) by default;
torch.no_grad rather than torch.inference_mode, so that the canvases it returns can still feed a probe
being trained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.canvit import CanViT, GlimpseOutput, RecurrentState, as_canvit
from saccade.policies import Policy

__all__ = ["Step", "iter_rollout", "rollout"]


@dataclass(frozen=True)
class Step:
    """One glimpse of a rollout."""

    t: int
    viewpoint: Viewpoint  # [B]
    glimpse: Tensor  # [B, C, S, S] the pixels the model saw
    output: GlimpseOutput  # output.state is the state after this glimpse

    @property
    def state(self) -> RecurrentState:
        return self.output.state


def iter_rollout(
    model: nn.Module,
    scenes: Tensor,
    policy: Policy,
    *,
    num_glimpses: int | None = None,
    glimpse_px: int,
    canvas_grid: int,
    state: RecurrentState | None = None,
    grad: bool = False,
) -> Iterator[Step]:
    """Yield a Step per glimpse of `model` (a CanViT, or anything with a `.canvit`) over scenes [B, C, H, W].

    Args:
        num_glimpses: T; defaults to the policy's length (required for unbounded policies).
        glimpse_px, canvas_grid: the episode's geometry (saccade.episode_config.EpisodeConfig).
        state: start from this state instead of a fresh canvas.
        grad: record gradients (training); otherwise every step runs under torch.no_grad().
    """
    canvit: CanViT = as_canvit(model)
    if scenes.ndim != 4:
        raise ValueError(f"scenes must be [B, C, H, W], got {tuple(scenes.shape)}")
    if scenes.shape[2] < 1 or scenes.shape[3] < 1:
        raise ValueError(f"scenes must be at least 1 x 1 px, got {scenes.shape[2]} x {scenes.shape[3]}")
    batch_size = scenes.shape[0]
    if policy.batch_size != batch_size:
        raise ValueError(f"policy is built for batch {policy.batch_size}, scenes have batch {batch_size}")
    if num_glimpses is None:
        if policy.num_steps is None:
            raise ValueError("num_glimpses is required for a policy without a fixed length")
        num_glimpses = policy.num_steps
    if num_glimpses < 1 or (policy.num_steps is not None and num_glimpses > policy.num_steps):
        raise ValueError(f"num_glimpses must be in [1, {policy.num_steps or 'inf'}], got {num_glimpses}")

    policy.reset()
    if state is None:
        with _grad_mode(grad):
            state = canvit.init_state(batch_size=batch_size, canvas_grid=canvas_grid)
    for t in range(num_glimpses):
        with _grad_mode(grad):
            viewpoint = policy.step(t, state).to(scenes.device)
            glimpse = sample_glimpse(scenes, viewpoint, glimpse_px)  # [B, C, S, S]
            output = canvit(glimpse, state, viewpoint)
        state = output.state
        yield Step(t=t, viewpoint=viewpoint, glimpse=glimpse, output=output)


def rollout(model: nn.Module, scenes: Tensor, policy: Policy, **kwargs) -> list[Step]:
    """All steps of `iter_rollout` as a list (same arguments)."""
    return list(iter_rollout(model, scenes, policy, **kwargs))


def _grad_mode(grad: bool) -> contextlib.AbstractContextManager:
    # Entered and left around each step, never across a `yield`: a mode held open by a suspended
    # generator would leak into the caller's code.
    return contextlib.nullcontext() if grad else torch.no_grad()
