"""Fit the gain regressor on measured gains: regression of each candidate's gain relative to the others.

Only the ranking of candidates within a state matters for a greedy policy, so the loss is the MSE between
predicted and measured gains after subtracting, in each state, the mean over its candidates (the state's
baseline, which varies across states much more than candidates differ), divided by the spread of the
centred gains at that glimpse index t: gains shrink by an order of magnitude after the first glimpses, and
the unpredictable first decision (the observation of a fresh canvas is the same for every scene) would
otherwise drown the later ones. The validation split is by scene; the weights with the lowest validation
regret are kept. Regret of a state: best measured gain minus the measured gain of the candidate ranked first.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saccade._schedule import warmup_cosine
from saccade.policies.learned import GainRegressor
from saccade.policy_training.collect import GainSamples

__all__ = ["FitResult", "centred_mse", "fit_regressor", "regret", "split_by_scene", "step_scales"]


@dataclass(frozen=True)
class FitResult:
    steps: int
    best_step: int
    train_loss: float  # last logged training loss (normalized units)
    val_loss: float  # at the best step (per-step units)
    val_regret: float  # mean over validation states, objective units
    val_top1: float  # fraction of states where the predicted best is the measured best
    val_regret_per_step: list[float]  # [T] mean regret at each glimpse index
    val_regret_first_candidate_per_step: list[float]  # [T] always candidate 0 (the full scene), for scale
    val_regret_random_per_step: list[float]  # [T] a uniform candidate, for scale

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def centred_mse(predicted: Tensor, gains: Tensor, scale: Tensor) -> Tensor:
    """MSE of [S, K] predictions vs gains, each centred over its K candidates, in units of `scale` ([] or [S])."""
    predicted = predicted - predicted.mean(dim=1, keepdim=True)
    gains = gains - gains.mean(dim=1, keepdim=True)
    scale = scale[:, None] if scale.ndim == 1 else scale
    return ((predicted - gains) / scale).square().mean()


def step_scales(samples: GainSamples) -> Tensor:
    """[T] spread (std) of the centred gains at each glimpse index t = 0 .. max(t)."""
    centred = samples.gains - samples.gains.mean(dim=1, keepdim=True)  # [S, K]
    scales = torch.ones(int(samples.steps.max()) + 1)
    for t in range(len(scales)):
        rows = centred[samples.steps == t]
        if rows.numel() > 1:
            scales[t] = rows.std().clamp_min(1e-8)
    return scales


def regret(predicted: Tensor, gains: Tensor) -> Tensor:
    """[S] best gain minus the gain of the predicted best candidate."""
    chosen = gains.gather(1, predicted.argmax(dim=1, keepdim=True))[:, 0]
    return gains.amax(dim=1) - chosen


@dataclass(frozen=True)
class _Scores:
    loss: float  # centred MSE in per-step units
    regret: Tensor  # [S] objective units
    normalized_regret: float  # mean of regret / step scale: every glimpse index counts alike
    top1: float


@torch.no_grad()
def _evaluate(regressor: GainRegressor, samples: GainSamples, scales: Tensor, batch: int = 1024) -> _Scores:
    losses, regrets, hits = [], [], []
    for start in range(0, len(samples), batch):
        rows = samples.rows(torch.arange(start, min(len(samples), start + batch)))
        predicted = regressor(rows.observations, rows.candidate_features)
        scale = scales[rows.steps.clamp_max(len(scales) - 1)]  # [n]
        losses.append(centred_mse(predicted, rows.gains, scale) * len(rows))
        regrets.append(regret(predicted, rows.gains))
        hits.append(predicted.argmax(dim=1) == rows.gains.argmax(dim=1))
    all_regrets = torch.cat(regrets)  # [S]
    normalized = all_regrets / scales[samples.steps.clamp_max(len(scales) - 1)]
    return _Scores(
        loss=float(sum(losses) / len(samples)),
        regret=all_regrets,
        normalized_regret=float(normalized.mean()),
        top1=float(torch.cat(hits).float().mean()),
    )


def _per_step(values: Tensor, steps: Tensor) -> list[float]:
    return [
        float(values[steps == t].mean()) if bool((steps == t).any()) else math.nan for t in range(int(steps.max()) + 1)
    ]


def split_by_scene(samples: GainSamples, val_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(train rows, validation rows) with every scene's states on one side."""
    scenes = samples.scenes.unique()
    order = scenes[torch.randperm(len(scenes), generator=generator)]
    num_val = max(1, round(val_fraction * len(scenes))) if val_fraction > 0 and len(scenes) > 1 else 0
    val_scenes = order[:num_val]
    is_val = torch.isin(samples.scenes, val_scenes)
    return (~is_val).nonzero()[:, 0], is_val.nonzero()[:, 0]


def fit_regressor(
    regressor: GainRegressor,
    samples: GainSamples,
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    val_fraction: float = 0.1,
    eval_every: int = 100,
    generator: torch.Generator,
    progress: bool = True,
) -> FitResult:
    """Train `regressor` in place (normalization refitted on the training rows); keeps the best validation weights."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    train_rows, val_rows = split_by_scene(samples, val_fraction, generator)
    train, val = samples.rows(train_rows), samples.rows(val_rows) if len(val_rows) else samples.rows(train_rows)
    regressor.fit_normalization(train.observations, train.candidate_features, train.gains)
    scales = step_scales(train)  # [T]
    optimizer = torch.optim.AdamW(regressor.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, warmup_steps=0, total_steps=steps))
    best = (math.inf, 0, copy.deepcopy(regressor.state_dict()))
    train_loss = math.nan
    regressor.train()
    for step in tqdm(range(1, steps + 1), desc="fit", disable=not progress, leave=False):
        picks = torch.randint(len(train), (min(batch_size, len(train)),), generator=generator)
        rows = train.rows(picks)
        scale = scales[rows.steps.clamp_max(len(scales) - 1)]  # [n]
        loss = centred_mse(regressor(rows.observations, rows.candidate_features), rows.gains, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        train_loss = loss.item()
        if step % eval_every == 0 or step == steps:
            regressor.eval()
            score = _evaluate(regressor, val, scales).normalized_regret
            regressor.train()
            if score < best[0]:
                best = (score, step, copy.deepcopy(regressor.state_dict()))
    regressor.load_state_dict(best[2])
    regressor.eval()
    scores = _evaluate(regressor, val, scales)
    first = val.gains.amax(dim=1) - val.gains[:, 0]  # [S]
    random = (val.gains.amax(dim=1, keepdim=True) - val.gains).mean(dim=1)  # [S]
    return FitResult(
        steps=steps,
        best_step=best[1],
        train_loss=train_loss,
        val_loss=scores.loss,
        val_regret=float(scores.regret.mean()),
        val_top1=scores.top1,
        val_regret_per_step=_per_step(scores.regret, val.steps),
        val_regret_first_candidate_per_step=_per_step(first, val.steps),
        val_regret_random_per_step=_per_step(random, val.steps),
    )
