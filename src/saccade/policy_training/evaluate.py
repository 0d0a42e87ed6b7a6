"""`saccade evaluate-policy`: per-glimpse objective of the learned policy beside C2F, EG-C2F, R-IID and the oracle.

Every policy runs `num_glimpses` glimpses over each evaluation scene from a fresh canvas; after glimpse t
the objective's per-scene score is recorded (distillation: standardized patch cosine). Random-order policies
(the PolicySpec says: C2F's tile order, R-IID) run `num_runs` times, run r seeded with seed + r; the other
policies run once. Intervals are 95% percentile bootstraps over scenes and runs; differences to C2F are
paired (the same scenes).

EG-C2F needs per-cell class probabilities: without a segmentation probe, its entropy source here is the
softmax over the D_t channels of the predicted standardized teacher patches at each canvas cell.
The oracle measures every candidate of the learned policy's grid (the same candidates), so it bounds every
one-step greedy policy on that grid. `learned-C2F` is the learned scorer held to the C2F schedule: at each
step the unvisited tile of the current quadtree level with the highest predicted gain (EG-C2F's structure).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from saccade.data.scenes import normalize
from saccade.envs.gains import MeasuredGains
from saccade.envs.objectives import DistillationObjective
from saccade.evaluate.curves import Curve, over_scenes
from saccade.evaluate.measure import PolicyRuns, measure
from saccade.model.canvit import RecurrentState
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import POLICIES, Policy, PolicyContext, PolicySpec, resolve_policy, run_seeds
from saccade.policies.greedy import GreedyOrder
from saccade.policies.learned import GainRegressor
from saccade.policy_training.config import PolicyEvalConfig
from saccade.policy_training.data import SceneSet

__all__ = ["METRIC", "POLICY_NAMES", "evaluate_policy_curves", "feature_entropy_decoder"]

POLICY_NAMES = ("learned", "learned-C2F", "C2F", "EG-C2F", "R-IID", "oracle")
"""The compared policies: registry names (official or paper), and LEARNED_C2F."""
METRIC = "standardized patch cosine"
"""What the distillation objective scores after each glimpse."""
LEARNED_C2F = "learned-C2F"
"""The learned policy held to the C2F schedule (PolicyContext.learned_order = "coarse_to_fine")."""


def feature_entropy_decoder(model: CanViTForPretraining) -> Callable[[RecurrentState], Tensor]:
    """EG-C2F entropy source: logits [B, D_t, G, G] = the predicted standardized teacher patches per cell."""

    def decode(state: RecurrentState) -> Tensor:
        predictions = model.predict_teacher_patches(state)  # [B, G*G, D_t]
        B, _, D = predictions.shape
        G = state.canvas_grid
        return predictions.transpose(1, 2).reshape(B, D, G, G)  # [B, D_t, G, G]

    return decode


def _resolve(name: str) -> tuple[PolicySpec, GreedyOrder]:
    """(spec, learned schedule) of a compared policy; ValueError naming the choices."""
    if name == LEARNED_C2F:
        return POLICIES["learned"], "coarse_to_fine"
    try:
        return POLICIES[resolve_policy(name)], "free"
    except ValueError as error:
        raise ValueError(f"{error}, or {LEARNED_C2F!r}") from None


def _policy_runs(
    name: str,
    model: CanViTForPretraining,
    regressor: GainRegressor,
    objective: DistillationObjective,
    config: PolicyEvalConfig,
) -> PolicyRuns:
    """The runs of policy `name` (seed + run when its order is random), built per batch from a context offering
    every need: the feature-entropy decoder, the measured gains, the regressor and its candidates."""
    spec, order = _resolve(name)
    decoder = feature_entropy_decoder(model)

    def build(scenes: Tensor, targets: Tensor, generator: torch.Generator) -> Policy:
        gains = MeasuredGains(
            model, scenes, targets, objective, glimpse_px=config.episode.glimpse_px, max_batch=config.max_batch
        )
        context = PolicyContext(
            batch_size=len(scenes),
            num_glimpses=config.episode.num_glimpses,
            canvas_grid=config.episode.canvas_grid,
            generator=generator,
            decoder=decoder,
            scorer=gains,
            candidates=regressor.candidates(),
            regressor=regressor,
            learned_order=order,
        )
        return spec.build(context)

    return PolicyRuns(name, run_seeds(spec, num_runs=config.num_runs, seed=config.seed), build)


def _batches(scenes: SceneSet, objective: DistillationObjective, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """(images [B, 3, H, W] normalized, the objective's prepared targets) per batch of `scenes`."""
    batches = []
    for start in range(0, len(scenes), batch_size):
        batch = scenes.scenes[start : start + batch_size]
        images = normalize(batch) if batch.dtype == torch.uint8 else batch.float()  # [B, 3, H, W]
        batches.append((images, objective.prepare(scenes.targets[start : start + batch_size])))
    return batches


def evaluate_policy_curves(
    model: CanViTForPretraining,
    regressor: GainRegressor,
    scenes: SceneSet,
    config: PolicyEvalConfig,
    *,
    policies: tuple[str, ...] = POLICY_NAMES,
    progress: bool = True,
) -> list[Curve]:
    """One Curve per policy: the objective's per-scene score after each glimpse (samples [R, N, T]), mean and 95%
    interval over scenes and runs."""
    objective = DistillationObjective(model)
    runs = [_policy_runs(name, model, regressor, objective, config) for name in policies]  # checks the names
    batches = _batches(scenes, objective, config.batch_size)
    samples = measure(model, batches, runs, score=objective.score, episode=config.episode, progress=progress)
    return [
        over_scenes(
            values,
            policy=name,
            metric=METRIC,
            task="distillation",
            num_resamples=config.num_resamples,
            seed=config.seed,
        )
        for name, values in samples.items()
    ]
