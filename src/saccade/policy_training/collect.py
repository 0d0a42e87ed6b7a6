"""Training data of the gain regressor: measured one-step gains of every candidate at visited states.

Episodes run in the batched environment; at every step the features of the current state and of every
candidate are recorded with the candidate's MEASURED gain (all candidates folded into the batch), then
each scene moves on by its behaviour policy, on one of the candidate states already computed (no extra
forward). Behaviours, drawn per scene: 'oracle' (best measured candidate), 'coarse_to_fine' (the C2F
order on the candidates), 'random' (a uniform candidate), 'learned' (best predicted candidate); every
step, with probability `epsilon`, a uniform candidate replaces the behaviour's choice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saccade.envs.batched import GlimpseBatchEnv
from saccade.policies.learned import GainRegressor
from saccade.policies.observation import candidate_features
from saccade.policies.quadtree import coarse_to_fine

__all__ = ["BEHAVIOURS", "GainSamples", "collect_gains"]

BEHAVIOURS = ("oracle", "coarse_to_fine", "random", "learned")


@dataclass(frozen=True)
class GainSamples:
    """One row per visited state."""

    observations: Tensor  # [S, F]
    candidate_features: Tensor  # [S, K, F_c]
    gains: Tensor  # [S, K] measured one-step gains
    steps: Tensor  # [S] glimpse index t of the decision
    scenes: Tensor  # [S] scene index

    def __len__(self) -> int:
        return len(self.gains)

    @staticmethod
    def cat(parts: Sequence[GainSamples]) -> GainSamples:
        names = [field.name for field in dataclasses.fields(GainSamples)]
        return GainSamples(*(torch.cat([getattr(part, name) for part in parts]) for name in names))

    def rows(self, index: Tensor) -> GainSamples:
        return GainSamples(*(getattr(self, field.name)[index] for field in dataclasses.fields(self)))


def _candidate_index(viewpoints: Tensor, candidates: Tensor) -> Tensor:
    """[B] index of each viewpoint [B, 3] among the candidates [K, 3] (must be one of them)."""
    distance = (viewpoints[:, None, :] - candidates[None]).abs().amax(dim=2)  # [B, K]
    best = distance.min(dim=1)
    if bool((best.values > 1e-5).any()):
        raise ValueError("C2F viewpoints must be among the candidates: include quadtree levels 0 .. 2")
    return best.indices


def _choices(
    behaviour: Tensor,
    gains: Tensor,
    c2f: Tensor,
    predicted: Tensor | None,
    *,
    epsilon: float,
    generator: torch.Generator,
) -> Tensor:
    """[B] candidate index per scene under its behaviour [B] (indices into BEHAVIOURS)."""
    B, K = gains.shape
    uniform = torch.randint(K, (B,), generator=generator)  # [B]
    choice = torch.where(behaviour == 0, gains.argmax(dim=1).cpu(), uniform)
    choice = torch.where(behaviour == 1, c2f, choice)
    if predicted is not None:
        choice = torch.where(behaviour == 3, predicted.argmax(dim=1).cpu(), choice)
    explore = torch.rand(B, generator=generator) < epsilon  # [B]
    return torch.where(explore, uniform, choice)


@torch.no_grad()
def collect_gains(
    env: GlimpseBatchEnv,
    scene_indices: Tensor,
    candidates: Tensor,
    *,
    behaviour_weights: dict[str, float],
    epsilon: float,
    generator: torch.Generator,
    regressor: GainRegressor | None = None,
    rollout_batch: int = 16,
    progress: bool = True,
    description: str = "collect",
) -> GainSamples:
    """Gains of every candidate [K, 3] at each step of episodes on `scene_indices`, behaviours drawn per scene."""
    unknown = sorted(set(behaviour_weights) - set(BEHAVIOURS))
    if unknown or not behaviour_weights:
        raise ValueError(f"behaviour weights must name some of {list(BEHAVIOURS)}, got {sorted(behaviour_weights)}")
    if behaviour_weights.get("learned", 0) > 0 and regressor is None:
        raise ValueError("the 'learned' behaviour needs a regressor")
    weights = torch.tensor([float(behaviour_weights.get(name, 0.0)) for name in BEHAVIOURS])  # [4]
    obs_config = env.config.observation
    parts = []
    batches = scene_indices.split(rollout_batch)
    total = len(scene_indices) * env.config.episode.num_glimpses
    bar = tqdm(total=total, desc=description, disable=not progress, leave=False)
    for indices in batches:
        B = len(indices)
        behaviour = torch.multinomial(weights, B, replacement=True, generator=generator)  # [B]
        c2f = coarse_to_fine(B, generator=generator)
        env.reset(indices)
        for t in range(env.config.episode.num_glimpses):
            observations = env.observe()  # [B, F]
            features = candidate_features(env.state, env.history, candidates, obs_config)  # [B, K, F_c]
            gains = env.measure_candidates(candidates)  # [B, K]
            predicted = regressor(observations, features) if regressor is not None else None
            c2f_choice = _candidate_index(c2f.step(t).to_yxs(), candidates.cpu()) if t < c2f.num_steps else None
            if c2f_choice is None:
                c2f_choice = torch.randint(len(candidates), (B,), generator=generator)
            choice = _choices(behaviour, gains, c2f_choice, predicted, epsilon=epsilon, generator=generator)
            parts.append(
                GainSamples(
                    observations=observations.cpu(),
                    candidate_features=features.cpu(),
                    gains=gains.cpu(),
                    steps=torch.full((B,), t, dtype=torch.long),
                    scenes=indices.clone(),
                )
            )
            env.step_to_candidates(choice)
            bar.update(B)
    bar.close()
    return GainSamples.cat(parts)
