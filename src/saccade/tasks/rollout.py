"""The episode loop shared by the task wrappers: build the policy from the registry, roll out, decode each glimpse."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from saccade.episode import iter_rollout
from saccade.episode_config import EpisodeConfig
from saccade.model.canvit import CanViT, RecurrentState
from saccade.policies import POLICIES, PolicyContext, resolve_policy

__all__ = ["decode_episode"]


def decode_episode(
    canvit: CanViT,
    scenes: Tensor,  # [B, 3, S, S] ImageNet-normalised
    decode: Callable[[RecurrentState], Tensor],
    episode: EpisodeConfig,
    *,
    policy: str = "C2F",
    generator: torch.Generator | None = None,
    decoder: Callable[[RecurrentState], Tensor] | None = None,
) -> Iterator[Tensor]:
    """`decode(state)` after each of the episode's glimpses under `policy` (a paper or official name).

    `decoder`: per-cell class logits [B, C, G, G] for the policies that need one (EG-C2F).
    """
    spec = POLICIES[resolve_policy(policy)]
    context = PolicyContext(
        batch_size=scenes.shape[0],
        num_glimpses=episode.num_glimpses,
        canvas_grid=episode.canvas_grid,
        device=scenes.device,
        generator=generator,
        decoder=decoder,
    )
    steps = iter_rollout(
        canvit,
        scenes,
        spec.build(context),
        num_glimpses=episode.num_glimpses,
        glimpse_px=episode.glimpse_px,
        canvas_grid=episode.canvas_grid,
    )
    for step in steps:
        yield decode(step.state)
