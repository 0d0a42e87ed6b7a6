"""Glimpse environments around a frozen CanViT: where to look next as a decision problem (issue 10).

- `GlimpseBatchEnv` (batched, torch): B scenes step together; observation = compact view of the state,
  action = viewpoint, reward = the glimpse's gain on an objective (`objectives`).
- `MeasuredGains`: the measured one-step gain of every candidate viewpoint (the oracle's scorer).
- `saccade.envs.gym_env`: gymnasium `GlimpseEnv` / `GlimpseVectorEnv` (optional dependency, imported there).
"""

from saccade.envs.batched import BatchStep, GlimpseBatchEnv, GlimpseEnvConfig
from saccade.envs.gains import MeasuredGains, step_candidates
from saccade.envs.objectives import (
    OBJECTIVES,
    ClassificationObjective,
    DistillationObjective,
    Objective,
    SegmentationObjective,
)
from saccade.envs.spaces import action_to_viewpoint, viewpoint_to_action

__all__ = [
    "OBJECTIVES",
    "BatchStep",
    "ClassificationObjective",
    "DistillationObjective",
    "GlimpseBatchEnv",
    "GlimpseEnvConfig",
    "MeasuredGains",
    "Objective",
    "SegmentationObjective",
    "action_to_viewpoint",
    "step_candidates",
    "viewpoint_to_action",
]
