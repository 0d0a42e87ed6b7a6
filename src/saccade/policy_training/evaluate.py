"""`saccade evaluate-policy`: per-glimpse objective of the learned policy beside C2F, EG-C2F, R-IID and the oracle.

Every policy runs `num_glimpses` glimpses over each evaluation scene from a fresh canvas; after glimpse t
the objective's per-scene score is recorded (distillation: standardized patch cosine). Stochastic policies
(C2F's tile order, R-IID) run `num_runs` times and each scene's value is the mean over runs. Intervals are
95% percentile bootstraps over scenes; differences to C2F are paired (the same scenes).

EG-C2F needs per-cell class probabilities: without a segmentation probe, its entropy source here is the
softmax over the D_t channels of the predicted standardized teacher patches at each canvas cell.
The oracle measures every candidate of the learned policy's grid (the same candidates), so it bounds every
one-step greedy policy on that grid. `learned-C2F` is the learned scorer held to the C2F schedule: at each
step the unvisited tile of the current quadtree level with the highest predicted gain (EG-C2F's structure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saccade.data.scenes import normalize
from saccade.envs.gains import MeasuredGains
from saccade.envs.objectives import DistillationObjective
from saccade.episode import iter_rollout
from saccade.evaluate.metrics import bootstrap_ci
from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import Policy, make_policy
from saccade.policies.learned import GainRegressor
from saccade.policy_training.config import PolicyEvalConfig
from saccade.policy_training.data import SceneSet

__all__ = ["POLICY_NAMES", "PolicyCurve", "evaluate_policy_curves", "feature_entropy_decoder", "summarize"]

POLICY_NAMES = ("learned", "learned-C2F", "C2F", "EG-C2F", "R-IID", "oracle")
STOCHASTIC = frozenset({"C2F", "R-IID"})


@dataclass(frozen=True)
class PolicyCurve:
    """Mean and 95% bootstrap half-width over scenes, per glimpse."""

    name: str
    mean: list[float]  # [T]
    half_width: list[float]  # [T]
    num_scenes: int


def feature_entropy_decoder(model: CanViTForPretraining) -> Callable[[RecurrentState], Tensor]:
    """EG-C2F entropy source: logits [B, D_t, G, G] = the predicted standardized teacher patches per cell."""

    def decode(state: RecurrentState) -> Tensor:
        predictions = model.predict_teacher_patches(state)  # [B, G*G, D_t]
        B, _, D = predictions.shape
        G = state.canvas_grid
        return predictions.transpose(1, 2).reshape(B, D, G, G)  # [B, D_t, G, G]

    return decode


PolicyFactory = Callable[[Tensor, Tensor, torch.Generator], Policy]


def _factories(
    model: CanViTForPretraining, regressor: GainRegressor, objective: DistillationObjective, config: PolicyEvalConfig
) -> dict[str, PolicyFactory]:
    """name -> factory(scenes [B, 3, H, W], prepared targets, generator) of a policy for that batch."""
    candidates = regressor.candidates()

    def oracle(scenes: Tensor, targets: Tensor, generator: torch.Generator) -> Policy:
        gains = MeasuredGains(
            model, scenes, targets, objective, glimpse_px=config.glimpse_px, max_batch=config.max_batch
        )
        return make_policy("oracle", batch_size=len(scenes), score_candidates=gains, candidates=candidates)

    return {
        "learned": lambda s, _, g: make_policy("learned", batch_size=len(s), regressor=regressor),
        "learned-C2F": lambda s, _, g: make_policy(
            "learned", batch_size=len(s), regressor=regressor, order="coarse_to_fine"
        ),
        "C2F": lambda s, _, g: make_policy("C2F", batch_size=len(s), generator=g),
        "EG-C2F": lambda s, _, g: make_policy(
            "EG-C2F", batch_size=len(s), canvas_to_probs=feature_entropy_decoder(model), from_logits=True
        ),
        "R-IID": lambda s, _, g: make_policy("R-IID", batch_size=len(s), generator=g),
        "oracle": oracle,
    }


@torch.no_grad()
def _scores(
    model: CanViTForPretraining,
    scenes: SceneSet,
    factory: PolicyFactory,
    objective: DistillationObjective,
    config: PolicyEvalConfig,
    generator: torch.Generator,
    description: str,
    progress: bool,
) -> Tensor:
    """[N, T] per-scene score after each glimpse of one run."""
    rows = []
    for start in tqdm(range(0, len(scenes), config.batch_size), desc=description, disable=not progress, leave=False):
        batch = scenes.scenes[start : start + config.batch_size]
        images = normalize(batch) if batch.dtype == torch.uint8 else batch.float()  # [B, 3, H, W]
        targets = objective.prepare(scenes.targets[start : start + config.batch_size])
        policy = factory(images, targets, generator)
        steps = iter_rollout(
            model,
            images,
            policy,
            num_glimpses=config.num_glimpses,
            glimpse_px=config.glimpse_px,
            canvas_grid=config.canvas_grid,
        )
        rows.append(torch.stack([objective.score(step.state, targets) for step in steps], dim=1))  # [B, T]
    return torch.cat(rows)


def evaluate_policy_curves(
    model: CanViTForPretraining,
    regressor: GainRegressor,
    scenes: SceneSet,
    config: PolicyEvalConfig,
    *,
    policies: tuple[str, ...] = POLICY_NAMES,
    progress: bool = True,
) -> dict[str, Tensor]:
    """name -> [N, T] per-scene scores (stochastic policies averaged over runs)."""
    unknown = sorted(set(policies) - set(POLICY_NAMES))
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose among {list(POLICY_NAMES)}")
    objective = DistillationObjective(model)
    factories = _factories(model, regressor, objective, config)
    results = {}
    for name in policies:
        runs = config.num_runs if name in STOCHASTIC else 1
        per_run = []
        for run in range(runs):
            generator = torch.Generator().manual_seed(config.seed * 1000 + run)
            label = f"{name} run {run + 1}/{runs}"
            per_run.append(_scores(model, scenes, factories[name], objective, config, generator, label, progress))
        results[name] = torch.stack(per_run).mean(dim=0)  # [N, T]
    return results


def summarize(values: Tensor, name: str, *, num_resamples: int = 10_000, seed: int = 0) -> PolicyCurve:
    """Mean and 95% bootstrap half-width over scenes of [N, T] values."""
    mean, half_width = bootstrap_ci(values, num_resamples=num_resamples, generator=torch.Generator().manual_seed(seed))
    return PolicyCurve(name=name, mean=mean.tolist(), half_width=half_width.tolist(), num_scenes=values.shape[0])
