"""What `saccade train-policy` and `saccade evaluate-policy` run: load the model and scenes, then train or report."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from saccade.config_files import config_from_dict
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.curves import paired_difference
from saccade.evaluate.report import write_report
from saccade.loading import load_pretrained
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies.learned import load_gain_regressor, read_gain_regressor_info
from saccade.policy_training.config import PolicyEvalConfig, PolicyTrainConfig
from saccade.policy_training.data import load_scenes
from saccade.policy_training.evaluate import METRIC, POLICY_NAMES, evaluate_policy_curves
from saccade.policy_training.train import TrainPolicyResult, train_policy
from saccade.provenance import provenance

__all__ = ["load_frozen_model", "policy_episode", "run_evaluate_policy", "run_train_policy"]


def load_frozen_model(path: str | os.PathLike) -> CanViTForPretraining:
    """A CanViTForPretraining checkpoint (a folder, Hub id or mirror name), frozen (the distillation objective needs
    its teacher readouts)."""
    model = load_pretrained(path)
    if not isinstance(model, CanViTForPretraining):
        raise ValueError(
            f"--model {path} holds a {type(model).__name__}; the distillation objective needs a checkpoint with "
            "teacher readouts (CanViTForPretraining, as saved by saccade pretrain)"
        )
    return model.eval().requires_grad_(False)


def policy_episode(policy_path: str | os.PathLike) -> EpisodeConfig | None:
    """The episode a learned policy was trained with (its saved info; flat keys in policies saved before 2026-12-04)."""
    info = read_gain_regressor_info(policy_path)
    if "episode" in info:
        return config_from_dict(EpisodeConfig, info["episode"], path=f"{policy_path}: episode")
    flat = {key: info[key] for key in ("glimpse_px", "canvas_grid", "num_glimpses") if key in info}
    return EpisodeConfig(scene_px=128, **flat) if len(flat) == 3 else None


def run_train_policy(
    model_path: str, config: PolicyTrainConfig, *, data: str = "bundled", progress: bool = True
) -> TrainPolicyResult:
    """Train a learned policy for the model at `model_path` on training scenes `data`."""
    model = load_frozen_model(model_path)
    scenes = load_scenes(data, canvas_grid=config.episode.canvas_grid, num_scenes=sum(config.round_scenes), seed=0)
    info = {"model": str(model_path), "data": data}
    return train_policy(model, scenes, config, progress=progress, info=info)


def run_evaluate_policy(
    model_path: str,
    policy_path: str,
    config: PolicyEvalConfig,
    *,
    data: str = "bundled-heldout",
    num_scenes: int = 256,
    output_dir: str = "runs/policy/eval",
    policies: tuple[str, ...] = POLICY_NAMES,
    progress: bool = True,
) -> dict[str, Path]:
    """Per-glimpse report of `policies` on `num_scenes` evaluation scenes; returns the written paths."""
    model = load_frozen_model(model_path)
    regressor = load_gain_regressor(policy_path)
    scenes = load_scenes(data, canvas_grid=config.episode.canvas_grid, num_scenes=num_scenes, seed=1)
    curves = evaluate_policy_curves(model, regressor, scenes, config, policies=policies, progress=progress)
    by_name = {curve.policy: curve for curve in curves}
    pairs = [("learned", "C2F"), ("learned-C2F", "C2F"), ("learned", "EG-C2F"), ("oracle", "C2F")]
    differences = [
        paired_difference(by_name[a], by_name[b], num_resamples=config.num_resamples, seed=config.seed)
        for a, b in pairs
        if a in by_name and b in by_name
    ]
    episode = config.episode
    notes = [
        f"model `{model_path}`, policy `{policy_path}`, {len(scenes)} scenes of `{data}`",
        f"{episode.num_glimpses} glimpses of {episode.glimpse_px} px, "
        f"canvas {episode.canvas_grid}x{episode.canvas_grid}",
        f"{METRIC} after glimpse t, mean and 95% bootstrap interval over scenes and runs "
        f"({config.num_resamples} resamples)",
        f"random-order policies (C2F, R-IID): {config.num_runs} runs (seed {config.seed} + run)",
        "EG-C2F entropy: softmax over the channels of the predicted standardized teacher patches, per canvas cell",
        f"oracle: greedy on measured one-step gains of the policy's {len(regressor.candidates())} candidates",
        "learned-C2F: the learned scores held to the C2F schedule (per level, the best unvisited tile)",
    ]
    plot_names = {("distillation", METRIC): "curves"}
    title = f"Learned glimpse policy: {METRIC} per glimpse"
    paths = write_report(output_dir, curves, differences=differences, notes=notes, title=title, plot_names=plot_names)
    paths["per_scene"] = Path(output_dir) / "per_scene.safetensors"
    per_scene = {curve.policy: curve.scenes.mean(dim=0).contiguous() for curve in curves}  # [N, T], mean over runs
    save_file(per_scene, str(paths["per_scene"]))
    paths["provenance"] = Path(output_dir) / "provenance.json"
    seeds = {"seed": config.seed, "scene_seed": 1}
    record = provenance(seeds=seeds, device=str(next(model.parameters()).device))
    paths["provenance"].write_text(json.dumps(record, indent=1))
    return paths
