"""measure: the one per-glimpse loop. For each policy and run, roll out over every scene and score each scene after
each glimpse (paper §6: metric versus glimpse t).

A harness configures it with its batches (scenes and their prepared targets), how to build each policy for a batch,
and a per-scene score; it turns the samples [R, N, T, ...] into Curves (`saccade.evaluate.curves`). Run r of a
policy draws from one generator seeded with its r-th seed (`saccade.policies.run_seeds`), shared by the batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from saccade.episode import iter_rollout
from saccade.episode_config import EpisodeConfig
from saccade.model.canvit import RecurrentState
from saccade.policies import Policy

__all__ = ["PolicyBuilder", "PolicyRuns", "Score", "measure"]

PolicyBuilder = Callable[[Tensor, Any, torch.Generator], Policy]
"""(scenes [B, 3, H, W], prepared targets of those scenes, the run's generator) -> the policy for that batch."""
Score = Callable[[RecurrentState, Any], Tensor]
"""(state after a glimpse, prepared targets) -> [B, ...] one score (or count tensor) per scene."""


@dataclass(frozen=True)
class PolicyRuns:
    """One policy to measure: its label, the seed of each run, and how to build it for a batch."""

    label: str
    seeds: Sequence[int]
    build: PolicyBuilder


@torch.no_grad()
def measure(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Any]],
    policies: Sequence[PolicyRuns],
    *,
    score: Score,
    episode: EpisodeConfig,
    progress: bool = False,
    description: str = "",
) -> dict[str, Tensor]:
    """{label: [R, N, T, ...]} score of every scene after every glimpse of every run of every policy.

    `batches` is iterated once per run (a DataLoader or a list): (scenes [B, 3, H, W], prepared targets).
    """
    samples = {}
    for policy in policies:
        runs = []
        for run, seed in enumerate(policy.seeds):
            label = f"{description}{policy.label} run {run + 1}/{len(policy.seeds)}"
            runs.append(_one_run(model, batches, policy, seed, score, episode, progress, label))
        samples[policy.label] = torch.stack(runs)  # [R, N, T, ...]
    return samples


def _one_run(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Any]],
    policy: PolicyRuns,
    seed: int,
    score: Score,
    episode: EpisodeConfig,
    progress: bool,
    description: str,
) -> Tensor:
    """[N, T, ...] per-scene scores of one run."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    rows = []
    for scenes, targets in tqdm(batches, desc=description, disable=not progress, leave=False):
        scenes = scenes.to(device)
        steps = iter_rollout(
            model,
            scenes,
            policy.build(scenes, targets, generator),
            num_glimpses=episode.num_glimpses,
            glimpse_px=episode.glimpse_px,
            canvas_grid=episode.canvas_grid,
        )
        rows.append(torch.stack([score(step.state, targets) for step in steps], dim=1))  # [B, T, ...]
    return torch.cat(rows)  # [N, T, ...]
