"""`saccade train-policy`: learn where to look next by greedy one-step gain regression (issue 10).

Round 0 collects measured gains of every candidate along rollouts of a behaviour mix (oracle, C2F, random
candidates) and fits the regressor; each later round collects on new scenes with the learned policy
itself (DAgger-style: the measured gains label the states the learned policy visits) mixed with the
oracle, and refits on everything. Writes `policy.safetensors` and `metrics.json` to the output folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from saccade.envs.batched import GlimpseBatchEnv, GlimpseEnvConfig
from saccade.envs.objectives import DistillationObjective
from saccade.loading import as_canvit
from saccade.model.canvit import CanViT
from saccade.policies.learned import GainRegressor, GainRegressorConfig, save_gain_regressor
from saccade.policies.observation import ObservationConfig
from saccade.policy_training.collect import GainSamples, collect_gains
from saccade.policy_training.config import PolicyTrainConfig
from saccade.policy_training.data import SceneSet
from saccade.policy_training.fit import fit_regressor
from saccade.provenance import provenance

__all__ = ["TrainPolicyResult", "train_policy"]

POLICY_FILE = "policy.safetensors"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TrainPolicyResult:
    regressor: GainRegressor
    policy_path: Path
    metrics: dict[str, Any]


def _behaviours(config: PolicyTrainConfig, round_index: int) -> dict[str, float]:
    if round_index == 0:
        return dict(zip(("oracle", "coarse_to_fine", "random"), config.behaviour_weights, strict=True))
    return {"learned": config.learned_weight, "oracle": 1.0 - config.learned_weight}


def train_policy(
    model: nn.Module, scenes: SceneSet, config: PolicyTrainConfig, *, progress: bool = True, info: dict | None = None
) -> TrainPolicyResult:
    """Collect, fit and save a learned glimpse policy for the frozen `model` on the training `scenes`."""
    needed = sum(config.round_scenes)
    if len(scenes) < needed:
        raise ValueError(f"round_scenes {config.round_scenes} need {needed} training scenes, got {len(scenes)}")
    generator = torch.Generator().manual_seed(config.seed)
    regressor = _new_regressor(as_canvit(model), config)
    observation = regressor.config.observation
    env_config = GlimpseEnvConfig(episode=config.episode, observation=observation, max_batch=config.max_batch)
    env = GlimpseBatchEnv(model, scenes.scenes, scenes.targets, DistillationObjective(model), env_config)
    order = torch.randperm(len(scenes), generator=generator)[:needed]
    started = time.perf_counter()
    collected: list[GainSamples] = []
    rounds = [
        _round(index, chunk, env, regressor, collected, config, generator, progress)
        for index, chunk in enumerate(order.split(list(config.round_scenes)))
    ]
    metrics = {
        "config": config.to_dict(),
        "rounds": rounds,
        "states": sum(len(part) for part in collected),
        "candidates": len(regressor.candidates()),
        "seconds": time.perf_counter() - started,
        **(info or {}),
        "provenance": provenance(seeds={"seed": config.seed}, device=str(next(model.parameters()).device)),
    }
    return _save(regressor, metrics, config, info)


def _new_regressor(canvit: CanViT, config: PolicyTrainConfig) -> GainRegressor:
    """An untrained regressor for `canvit`'s widths, observing T = the episode's glimpses."""
    observation = ObservationConfig(
        max_glimpses=config.episode.num_glimpses, pool_grid=config.pool_grid, coverage_grid=config.coverage_grid
    )
    return GainRegressor(
        GainRegressorConfig(
            canvas_dim=canvit.config.canvas_dim,
            cls_dim=canvit.config.backbone.embed_dim,
            observation=observation,
            candidate_levels=config.candidate_levels,
            half_offsets=config.half_offsets,
            hidden_dim=config.hidden_dim,
            num_hidden_layers=config.num_hidden_layers,
            objective=config.objective,
        )
    )


def _round(
    index: int,
    chunk: Tensor,  # [N] scene indices of this round
    env: GlimpseBatchEnv,
    regressor: GainRegressor,
    collected: list[GainSamples],
    config: PolicyTrainConfig,
    generator: torch.Generator,
    progress: bool,
) -> dict[str, Any]:
    """One round: collect gains on `chunk` (round 0: the behaviour mix; later: the learned policy and the oracle),
    append them to `collected` and refit the regressor on everything; returns the round's metrics."""
    tick = time.perf_counter()
    collected.append(
        collect_gains(
            env,
            chunk,
            regressor.candidates(),
            behaviour_weights=_behaviours(config, index),
            epsilon=config.epsilon,
            generator=generator,
            regressor=regressor if index > 0 else None,
            rollout_batch=config.rollout_batch,
            progress=progress,
            description=f"collect round {index}",
        )
    )
    collect_seconds = time.perf_counter() - tick
    fit = fit_regressor(
        regressor,
        GainSamples.cat(collected),
        steps=config.steps,
        lr=config.lr,
        weight_decay=config.weight_decay,
        batch_size=config.batch_size,
        val_fraction=config.val_fraction,
        generator=generator,
        progress=progress,
    )
    return {"round": index, "scenes": len(chunk), "collect_seconds": collect_seconds, **fit.to_dict()}


def _save(
    regressor: GainRegressor, metrics: dict[str, Any], config: PolicyTrainConfig, info: dict | None
) -> TrainPolicyResult:
    """policy.safetensors (with the episode it was trained on) and metrics.json in config.output_dir."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy_info = {"episode": config.to_dict()["episode"], **(info or {})}
    path = save_gain_regressor(regressor, out / POLICY_FILE, info=policy_info)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=str))
    return TrainPolicyResult(regressor=regressor, policy_path=path, metrics=metrics)
