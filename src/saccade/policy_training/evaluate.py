"""`saccade evaluate-policy`: per-glimpse objective of the learned policy beside C2F, EG-C2F, R-IID and the oracle.

Every policy runs `num_glimpses` glimpses over each evaluation scene from a fresh canvas; after glimpse t
the objective's per-scene score is recorded (distillation: standardized patch cosine). Random-order policies
(the PolicySpec says: C2F's tile order, R-IID) run `num_runs` times, run r seeded with seed + r, and each
scene's value is the mean over runs; the others run once. Intervals are 95% percentile bootstraps over
scenes; differences to C2F are paired (the same scenes).

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
from saccade.policies import POLICIES, Policy, PolicyContext, PolicySpec, resolve_policy, run_seeds
from saccade.policies.greedy import GreedyOrder
from saccade.policies.learned import GainRegressor
from saccade.policy_training.config import PolicyEvalConfig
from saccade.policy_training.data import SceneSet

__all__ = ["POLICY_NAMES", "PolicyCurve", "evaluate_policy_curves", "feature_entropy_decoder", "summarize"]

POLICY_NAMES = ("learned", "learned-C2F", "C2F", "EG-C2F", "R-IID", "oracle")
"""The compared policies: registry names (official or paper), and LEARNED_C2F."""
LEARNED_C2F = "learned-C2F"
"""The learned policy held to the C2F schedule (PolicyContext.learned_order = "coarse_to_fine")."""


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


def _resolve(name: str) -> tuple[PolicySpec, GreedyOrder]:
    """(spec, learned schedule) of a compared policy; ValueError naming the choices."""
    if name == LEARNED_C2F:
        return POLICIES["learned"], "coarse_to_fine"
    try:
        return POLICIES[resolve_policy(name)], "free"
    except ValueError as error:
        raise ValueError(f"{error}, or {LEARNED_C2F!r}") from None


def _factory(
    name: str,
    model: CanViTForPretraining,
    regressor: GainRegressor,
    objective: DistillationObjective,
    config: PolicyEvalConfig,
) -> PolicyFactory:
    """factory(scenes [B, 3, H, W], prepared targets, generator) of policy `name` for that batch; the context
    offers every need: the feature-entropy decoder, the measured gains, the regressor and its candidates."""
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

    return build


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
            num_glimpses=config.episode.num_glimpses,
            glimpse_px=config.episode.glimpse_px,
            canvas_grid=config.episode.canvas_grid,
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
    """name -> [N, T] per-scene scores (random-order policies averaged over runs)."""
    objective = DistillationObjective(model)
    factories = {name: _factory(name, model, regressor, objective, config) for name in policies}  # checks the names
    results = {}
    for name in policies:
        seeds = run_seeds(_resolve(name)[0], num_runs=config.num_runs, seed=config.seed)
        per_run = []
        for run, seed in enumerate(seeds):
            generator = torch.Generator().manual_seed(seed)
            label = f"{name} run {run + 1}/{len(seeds)}"
            per_run.append(_scores(model, scenes, factories[name], objective, config, generator, label, progress))
        results[name] = torch.stack(per_run).mean(dim=0)  # [N, T]
    return results


def summarize(values: Tensor, name: str, *, num_resamples: int = 10_000, seed: int = 0) -> PolicyCurve:
    """Mean and 95% bootstrap half-width over scenes of [N, T] values."""
    mean, half_width = bootstrap_ci(values, num_resamples=num_resamples, generator=torch.Generator().manual_seed(seed))
    return PolicyCurve(name=name, mean=mean.tolist(), half_width=half_width.tolist(), num_scenes=values.shape[0])
