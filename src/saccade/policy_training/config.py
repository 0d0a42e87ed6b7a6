"""Settings of `saccade train-policy` and `saccade evaluate-policy`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from saccade._checks import positive_int
from saccade.config_files import config_from_dict, config_to_dict
from saccade.episode_config import EPISODES, EpisodeConfig

__all__ = ["PolicyEvalConfig", "PolicyTrainConfig"]


@dataclass(frozen=True, kw_only=True)
class PolicyTrainConfig:
    """Greedy one-step gain regression: collect measured gains in rounds, fit an MLP, act greedily."""

    objective: str = "distillation"
    """Reward objective (distillation: standardized teacher-patch cosine)."""
    episode: EpisodeConfig = EPISODES["cpu"]
    """Glimpses per training episode, glimpse side and canvas grid (the teacher grid); `saccade train-policy` starts
    from the episode the model was pretrained with."""
    candidate_levels: tuple[int, ...] = (0, 1, 2)
    """Quadtree levels of the candidate viewpoints."""
    half_offsets: bool = False
    """Add candidates offset by half a tile (59 instead of 21)."""
    round_scenes: tuple[int, ...] = (192, 96, 96)
    """Training scenes per collection round: round 0 runs the behaviour mix, later rounds the learned policy."""
    behaviour_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)
    """Round-0 behaviour mix: oracle, coarse_to_fine, random candidate."""
    learned_weight: float = 0.7
    """Later rounds: share of scenes run by the learned policy (the rest by the oracle)."""
    epsilon: float = 0.1
    """Probability of a uniform candidate instead of the behaviour's choice."""
    steps: int = 800
    """Optimizer steps of each fit."""
    batch_size: int = 256
    """States per optimizer step."""
    lr: float = 1e-3
    """Peak learning rate (cosine decay to 0)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    hidden_dim: int = 128
    """MLP width."""
    num_hidden_layers: int = 2
    """MLP hidden layers."""
    pool_grid: int = 2
    """Canvas pooling of the observation (pool_grid x pool_grid cells)."""
    coverage_grid: int = 8
    """Coverage grid of the observation."""
    val_fraction: float = 0.1
    """Share of the collected scenes held out to select the fit's best step."""
    rollout_batch: int = 16
    """Scenes per collection batch."""
    max_batch: int = 128
    """Rows per model forward when measuring candidates."""
    seed: int = 0
    """Seeds scene order, behaviours, exploration and the fit."""
    output_dir: str = "runs/policy"
    """Where policy.safetensors and metrics.json go."""

    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        "num_glimpses": "episode.num_glimpses",
        "glimpse_px": "episode.glimpse_px",
        "canvas_grid": "episode.canvas_grid",
    }  # the flat keys of policies trained before the episode was one sub-config

    def __post_init__(self) -> None:
        owner = "PolicyTrainConfig"
        for name in ("steps", "batch_size", "hidden_dim"):
            positive_int(f"{owner}.{name}", getattr(self, name))
        for name in ("num_hidden_layers", "pool_grid", "coverage_grid", "rollout_batch", "max_batch"):
            positive_int(f"{owner}.{name}", getattr(self, name))
        if not self.round_scenes or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.round_scenes
        ):
            raise ValueError(f"{owner}.round_scenes must be positive ints, got {self.round_scenes!r}")
        if len(self.behaviour_weights) != 3 or min(self.behaviour_weights) < 0 or sum(self.behaviour_weights) <= 0:
            raise ValueError(
                f"{owner}.behaviour_weights must be 3 weights >= 0, not all 0; got {self.behaviour_weights}"
            )
        for name in ("learned_weight", "epsilon", "val_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{owner}.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.objective != "distillation":
            raise ValueError(
                f"{owner}.objective: the CLI trains on 'distillation'; probe objectives are available through "
                f"saccade.envs (got {self.objective!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyTrainConfig:
        return config_from_dict(cls, data)


@dataclass(frozen=True, kw_only=True)
class PolicyEvalConfig:
    """Per-glimpse comparison of the learned policy with C2F, EG-C2F, R-IID and the oracle."""

    episode: EpisodeConfig = EPISODES["cpu"]
    """Glimpses per episode (t = 0 .. T-1), glimpse side and canvas grid; `saccade evaluate-policy` starts from the
    episode the policy was trained with."""
    num_runs: int = 3
    """Runs of the stochastic policies (C2F tile order, R-IID); per-scene values are averaged over runs."""
    batch_size: int = 32
    """Scenes per rollout batch."""
    max_batch: int = 128
    """Rows per forward when the oracle measures candidates."""
    num_resamples: int = 10_000
    """Bootstrap resamples of the 95% intervals over scenes."""
    seed: int = 0
    """Seeds the stochastic policies and the bootstrap."""

    def __post_init__(self) -> None:
        for name in ("num_runs", "batch_size", "max_batch"):
            positive_int(f"PolicyEvalConfig.{name}", getattr(self, name))
