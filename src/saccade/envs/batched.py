"""The glimpse environment, batched: B scenes step together through one model forward per glimpse.

A frozen CanViT looks at each scene for `num_glimpses` glimpses from a fresh canvas. The observation is
`saccade.policies.observation.observation_features` (pooled canvas, recurrent CLS, step, past viewpoints,
coverage); the reward of a glimpse is the rise of the objective's per-scene score. Everything stays in
torch; `saccade.envs.gym_env` wraps this class for gymnasium (one scene, or a vector of scenes).
`measure_candidates` runs every candidate viewpoint from the current states (candidates folded into the
batch) and `step_to_candidates` then moves to chosen ones without another forward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.data.scenes import normalize
from saccade.envs.gains import MeasuredGains, select_states
from saccade.envs.objectives import Objective
from saccade.envs.spaces import action_to_viewpoint, check_scale_bounds
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.canvit import CanViT, RecurrentState, as_canvit
from saccade.policies.observation import ObservationConfig, observation_features

__all__ = ["BatchStep", "GlimpseBatchEnv", "GlimpseEnvConfig"]


@dataclass(frozen=True, kw_only=True)
class GlimpseEnvConfig:
    """Episode and rendering settings of the glimpse environments."""

    episode: EpisodeConfig = EPISODES["cpu"]
    """Glimpses per episode T, glimpse side and canvas grid G (the teacher grid for the distillation objective)."""
    min_scale: float = 0.25
    """Smallest scale an action can ask for."""
    max_scale: float = 1.0
    """Largest scale an action can ask for."""
    observation: ObservationConfig = dataclasses.field(default_factory=ObservationConfig)
    """Observation sizes."""
    max_batch: int = 128
    """Rows per forward when measuring candidate viewpoints."""

    def __post_init__(self) -> None:
        positive_int("GlimpseEnvConfig.max_batch", self.max_batch)
        check_scale_bounds(self.min_scale, self.max_scale)


@dataclass(frozen=True)
class BatchStep:
    """Result of one batched step."""

    observation: Tensor  # [B, F]
    reward: Tensor  # [B] score after - score before
    score: Tensor  # [B] score after the glimpse
    done: bool  # the episode's last glimpse


class GlimpseBatchEnv:
    """B scenes of a dataset looked at together by a frozen CanViT (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        scenes: Tensor,
        targets: Tensor,
        objective: Objective,
        config: GlimpseEnvConfig | None = None,
    ) -> None:
        self.canvit: CanViT = as_canvit(model)
        if scenes.ndim != 4 or scenes.shape[1] != 3 or len(targets) != len(scenes):
            raise ValueError(
                f"scenes must be [N, 3, H, W] with one target each, got {tuple(scenes.shape)} and "
                f"{len(targets)} targets"
            )
        self.model = model.eval().requires_grad_(False)
        self.scenes, self.targets, self.objective = scenes, targets, objective
        self.config = config or GlimpseEnvConfig()
        self.device = next(self.canvit.parameters()).device
        self.indices: Tensor | None = None

    @property
    def num_scenes(self) -> int:
        return len(self.scenes)

    @torch.no_grad()
    def reset(self, indices: Tensor | Sequence[int]) -> Tensor:
        """Start episodes on the scenes `indices` [B] from fresh canvases; returns the observation [B, F]."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        if indices.ndim != 1 or len(indices) == 0 or int(indices.min()) < 0 or int(indices.max()) >= self.num_scenes:
            raise ValueError(f"indices must be a non-empty [B] in [0, {self.num_scenes}), got {indices.tolist()}")
        self.indices = indices
        scenes = self.scenes[indices]
        self.batch_scenes = (normalize(scenes) if scenes.dtype == torch.uint8 else scenes.float()).to(self.device)
        self.batch_targets = self.objective.prepare(self.targets[indices].to(self.device))
        B = len(indices)
        self.state: RecurrentState = self.canvit.init_state(batch_size=B, canvas_grid=self.config.episode.canvas_grid)
        self.history = torch.zeros(B, 0, 3, device=self.device)  # [B, t, 3]
        self.t = 0
        self.score = self.objective.score(self.state, self.batch_targets)  # [B]
        self._gains: MeasuredGains | None = None
        return self.observe()

    def observe(self) -> Tensor:
        """[B, F] observation of the current states."""
        return observation_features(self.state, self.history, self.config.observation)

    @torch.no_grad()
    def step(self, viewpoint: Viewpoint) -> BatchStep:
        """Glimpse every scene at its viewpoint [B]."""
        self._check_running()
        viewpoint = viewpoint.to(self.device)
        glimpse = sample_glimpse(self.batch_scenes, viewpoint, self.config.episode.glimpse_px)  # [B, 3, S, S]
        return self._advance(self.canvit(glimpse, self.state, viewpoint).state, viewpoint.to_yxs())

    def step_actions(self, actions: Tensor) -> BatchStep:
        """Glimpse at actions [B, 3] in [-1, 1] (see saccade.envs.spaces)."""
        cfg = self.config
        return self.step(action_to_viewpoint(actions.to(self.device), min_scale=cfg.min_scale, max_scale=cfg.max_scale))

    @torch.no_grad()
    def measure_candidates(self, candidates: Tensor) -> Tensor:
        """[B, K] measured gains of candidate viewpoints [K, 3] from the current states (B * K glimpse steps)."""
        self._check_running()
        gains = MeasuredGains(
            self.model,
            self.batch_scenes,
            self.batch_targets,
            self.objective,
            glimpse_px=self.config.episode.glimpse_px,
            max_batch=self.config.max_batch,
            keep_states=True,
        )
        result = gains(self.state, self.history, candidates.to(self.device))
        self._gains, self._candidates = gains, candidates.to(self.device)
        return result

    def step_to_candidates(self, choice: Tensor) -> BatchStep:
        """Move each scene to its candidate `choice` [B] of the last `measure_candidates`, without a forward."""
        if self._gains is None or self._gains.last_states is None:
            raise ValueError("step_to_candidates needs a measure_candidates call at the current step")
        B, K = len(self.indices), len(self._candidates)
        choice = choice.to(self.device).long()
        rows = torch.arange(B, device=self.device) * K + choice  # [B]
        states = select_states(self._gains.last_states, rows)
        return self._advance(states, self._candidates[choice])

    def _advance(self, state: RecurrentState, yxs: Tensor) -> BatchStep:
        score = self.objective.score(state, self.batch_targets)  # [B]
        reward = score - self.score
        self.state, self.score, self._gains = state, score, None
        self.history = torch.cat([self.history, yxs.float()[:, None]], dim=1)  # [B, t + 1, 3]
        self.t += 1
        done = self.t >= self.config.episode.num_glimpses
        return BatchStep(observation=self.observe(), reward=reward, score=score, done=done)

    def _check_running(self) -> None:
        if self.indices is None:
            raise ValueError("call reset(indices) before stepping")
        if self.t >= self.config.episode.num_glimpses:
            raise ValueError(f"the episode is over after {self.config.episode.num_glimpses} glimpses: call reset")
