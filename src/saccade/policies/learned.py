"""The learned glimpse policy: a small MLP regresses each candidate's one-step gain; act greedily on it.

`GainRegressor` maps (observation [B, F], candidate features [B, K, F_c]) to the predicted gain [B, K]
of glimpsing each candidate next (see `saccade.policies.observation`). Inputs are standardized with
statistics fitted on the training data (buffers); the output is in the objective's units. The first
layer is split into an observation part (computed once per state) and a candidate part, which equals a
Linear on their concatenation. Saved as one safetensors file whose metadata holds the config; loading
is strict. Trained by `saccade train-policy` (saccade.policy_training).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from saccade.policies.candidates import candidate_grid
from saccade.policies.greedy import GreedyOrder, GreedyPolicy
from saccade.policies.observation import ObservationConfig, candidate_features, observation_features
from saccade.weights_file import load_strict, read_weights_file, save_weights_file

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = [
    "GainRegressor",
    "GainRegressorConfig",
    "learned",
    "load_gain_regressor",
    "read_gain_regressor_info",
    "save_gain_regressor",
]

FORMAT_NAME = "saccade-learned-policy"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class GainRegressorConfig:
    """Shape of the gain regressor and of the features and candidates it was trained with."""

    canvas_dim: int
    """Canvas width D_cv of the CanViT it reads."""
    cls_dim: int
    """Backbone width D_bb (recurrent CLS)."""
    observation: ObservationConfig = dataclasses.field(default_factory=ObservationConfig)
    """Observation and candidate feature sizes."""
    candidate_levels: tuple[int, ...] = (0, 1, 2)
    """Quadtree levels of the candidate viewpoints."""
    half_offsets: bool = False
    """Also candidates offset by half a tile (59 instead of 21 for levels 0-2)."""
    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_hidden_layers: int = 2
    """Hidden layers (>= 1), GELU after each."""
    objective: str = "distillation"
    """The objective whose gain it predicts (informative)."""

    def __post_init__(self) -> None:
        for name in ("canvas_dim", "cls_dim", "hidden_dim", "num_hidden_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GainRegressorConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.observation, ObservationConfig):
            raise TypeError(f"GainRegressorConfig.observation must be an ObservationConfig, got {self.observation!r}")
        candidate_grid(self.candidate_levels)  # validates the levels

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["candidate_levels"] = list(self.candidate_levels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GainRegressorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GainRegressorConfig fields {unknown}; expected a subset of {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("observation"), dict):
            data["observation"] = ObservationConfig.from_dict(data["observation"])
        if "candidate_levels" in data:
            data["candidate_levels"] = tuple(data["candidate_levels"])
        return cls(**data)


class GainRegressor(nn.Module):
    """Predicted one-step gain [B, K] of each candidate viewpoint, from observation and candidate features."""

    def __init__(self, config: GainRegressorConfig) -> None:
        super().__init__()
        self.config = config
        obs = config.observation
        self.observation_dim = obs.observation_dim(canvas_dim=config.canvas_dim, cls_dim=config.cls_dim)
        self.candidate_dim = obs.candidate_dim(canvas_dim=config.canvas_dim)
        H = config.hidden_dim
        self.register_buffer("observation_mean", torch.zeros(self.observation_dim))  # [F]
        self.register_buffer("observation_std", torch.ones(self.observation_dim))  # [F]
        self.register_buffer("candidate_mean", torch.zeros(self.candidate_dim))  # [F_c]
        self.register_buffer("candidate_std", torch.ones(self.candidate_dim))  # [F_c]
        self.register_buffer("gain_scale", torch.ones(()))  # output units per network unit
        self.observation_in = nn.Linear(self.observation_dim, H)
        self.candidate_in = nn.Linear(self.candidate_dim, H, bias=False)
        layers: list[nn.Module] = [nn.GELU()]
        for _ in range(config.num_hidden_layers - 1):
            layers += [nn.Linear(H, H), nn.GELU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(H, 1)

    def candidates(self, device: torch.device | str | None = None) -> Tensor:
        """[K, 3] the candidate viewpoints this regressor was trained on."""
        return candidate_grid(self.config.candidate_levels, half_offsets=self.config.half_offsets, device=device)

    @torch.no_grad()
    def fit_normalization(self, observations: Tensor, candidates: Tensor, gains: Tensor) -> None:
        """Standardization statistics from training features [S, F], [S, K, F_c] and gains [S, K]."""
        flat = candidates.reshape(-1, candidates.shape[-1])  # [S*K, F_c]
        for features, mean, std in (
            (observations, self.observation_mean, self.observation_std),
            (flat, self.candidate_mean, self.candidate_std),
        ):
            spread = features.std(dim=0)
            mean.copy_(features.mean(dim=0))
            # constant features (e.g. a step index never reached in training) keep unit scale, not a huge one
            std.copy_(torch.where(spread > 1e-6, spread, torch.ones_like(spread)))
        centred = gains - gains.mean(dim=1, keepdim=True)  # [S, K]
        self.gain_scale.copy_(centred.std().clamp_min(1e-8))

    def forward(self, observations: Tensor, candidates: Tensor) -> Tensor:
        """observations [B, F], candidate features [B, K, F_c] -> predicted gains [B, K]."""
        B, _, F_c = candidates.shape
        if observations.shape != (B, self.observation_dim) or F_c != self.candidate_dim:
            raise ValueError(
                f"features must be [B, {self.observation_dim}] and [B, K, {self.candidate_dim}], "
                f"got {tuple(observations.shape)} and {tuple(candidates.shape)}"
            )
        obs = (observations - self.observation_mean) / self.observation_std  # [B, F]
        cand = (candidates - self.candidate_mean) / self.candidate_std  # [B, K, F_c]
        hidden = self.observation_in(obs)[:, None] + self.candidate_in(cand)  # [B, K, H]
        return self.head(self.trunk(hidden))[..., 0] * self.gain_scale  # [B, K]

    def score(self, state: RecurrentState, history: Tensor, candidates: Tensor) -> Tensor:
        """[B, K] predicted gains of `candidates` [K, 3] from `state` and the history [B, t, 3] (a CandidateScorer)."""
        canvas_dim, cls_dim = state.canvas.shape[-1], state.recurrent_cls.shape[-1]
        if (canvas_dim, cls_dim) != (self.config.canvas_dim, self.config.cls_dim):
            raise ValueError(
                f"this learned policy reads a CanViT with canvas width {self.config.canvas_dim} and CLS width "
                f"{self.config.cls_dim}, got a state with {canvas_dim} and {cls_dim}"
            )
        observations = observation_features(state, history, self.config.observation)  # [B, F]
        features = candidate_features(state, history, candidates, self.config.observation)  # [B, K, F_c]
        return self(observations, features)


def learned(
    batch_size: int,
    *,
    regressor: GainRegressor,
    epsilon: float = 0.0,
    order: GreedyOrder = "free",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> GreedyPolicy:
    """The learned policy: greedy on the gains `regressor` predicts for its candidates (`order`: see GreedyPolicy)."""
    if not isinstance(regressor, GainRegressor):
        raise TypeError(f"regressor must be a GainRegressor (load_gain_regressor), got {type(regressor).__name__}")
    return GreedyPolicy(
        batch_size,
        score_candidates=regressor.score,
        candidates=regressor.candidates(),
        epsilon=epsilon,
        order=order,
        name="learned" if order == "free" else "learned_coarse_to_fine",
        generator=generator,
        device=device,
    )


def save_gain_regressor(regressor: GainRegressor, path: str | os.PathLike, *, info: dict | None = None) -> Path:
    """Write weights, buffers and config (plus JSON-ready `info`) to one safetensors file; returns its path."""
    if not isinstance(regressor, GainRegressor):
        raise TypeError(f"save_gain_regressor takes a GainRegressor, got {type(regressor).__name__}")
    config = regressor.config.to_dict()
    return save_weights_file(regressor, path, kind=FORMAT_NAME, version=FORMAT_VERSION, config=config, info=info)


def load_gain_regressor(path: str | os.PathLike) -> GainRegressor:
    """Rebuild a regressor saved by `save_gain_regressor`; strict (lists missing, unexpected, mis-shaped keys)."""
    file = read_weights_file(path, kind=FORMAT_NAME, version=FORMAT_VERSION, what="learned policy")
    regressor = GainRegressor(GainRegressorConfig.from_dict(file.config))
    return load_strict(regressor, file.tensors, source=path).eval()


def read_gain_regressor_info(path: str | os.PathLike) -> dict[str, Any]:
    """The free-form `info` dict saved with a learned policy."""
    return read_weights_file(path, kind=FORMAT_NAME, version=FORMAT_VERSION, what="learned policy").info
