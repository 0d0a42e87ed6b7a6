"""What `saccade train-policy` and `saccade evaluate-policy` run: load the model and scenes, then train or report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from saccade.model.checkpoint import load_pretrained
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies.learned import load_gain_regressor, read_gain_regressor_info
from saccade.policy_training.config import PolicyEvalConfig, PolicyTrainConfig
from saccade.policy_training.data import load_scenes
from saccade.policy_training.evaluate import POLICY_NAMES, evaluate_policy_curves, summarize
from saccade.policy_training.report import write_report
from saccade.policy_training.train import TrainPolicyResult, train_policy

__all__ = ["load_frozen_model", "pretraining_defaults", "run_evaluate_policy", "run_train_policy"]

METRIC = "standardized patch cosine"


def load_frozen_model(path: str | os.PathLike) -> CanViTForPretraining:
    """A CanViTForPretraining checkpoint folder, frozen (the distillation objective needs its teacher readouts)."""
    model = load_pretrained(path)
    if not isinstance(model, CanViTForPretraining):
        raise ValueError(
            f"--model {path} holds a {type(model).__name__}; the distillation objective needs a checkpoint with "
            "teacher readouts (CanViTForPretraining, as saved by saccade pretrain)"
        )
    return model.eval().requires_grad_(False)


def pretraining_defaults(path: str | os.PathLike, model: CanViTForPretraining) -> dict[str, int]:
    """glimpse_px and canvas_grid of the run that produced `path` (its parent's config.json), else 32 / teacher grid."""
    defaults = {"glimpse_px": 32, "canvas_grid": model.teacher_patch_grid}
    run_config = Path(path).resolve().parent / "config.json"
    if run_config.is_file():
        try:
            saved = json.loads(run_config.read_text())
        except json.JSONDecodeError:
            saved = {}
        if isinstance(saved, dict):
            defaults |= {key: saved[key] for key in defaults if isinstance(saved.get(key), int)}
    return defaults


def run_train_policy(
    model_path: str, settings: dict[str, Any], *, data: str = "bundled", progress: bool = True
) -> TrainPolicyResult:
    """Train a learned policy for the model at `model_path` on training scenes `data`."""
    model = load_frozen_model(model_path)
    settings = {**pretraining_defaults(model_path, model), **settings}
    config = PolicyTrainConfig.from_dict(settings)
    scenes = load_scenes(data, canvas_grid=config.canvas_grid, num_scenes=sum(config.round_scenes), seed=0)
    info = {"model": str(model_path), "data": data}
    return train_policy(model, scenes, config, progress=progress, info=info)


def run_evaluate_policy(
    model_path: str,
    policy_path: str,
    settings: dict[str, Any],
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
    saved = read_gain_regressor_info(policy_path)
    defaults = {key: saved[key] for key in ("glimpse_px", "canvas_grid", "num_glimpses") if key in saved}
    config = PolicyEvalConfig(**{**pretraining_defaults(model_path, model), **defaults, **settings})
    scenes = load_scenes(data, canvas_grid=config.canvas_grid, num_scenes=num_scenes, seed=1)
    values = evaluate_policy_curves(model, regressor, scenes, config, policies=policies, progress=progress)
    curves = [summarize(values[name], name, num_resamples=config.num_resamples, seed=config.seed) for name in values]
    pairs = [("learned", "C2F"), ("learned-C2F", "C2F"), ("learned", "EG-C2F"), ("oracle", "C2F")]
    differences = [
        summarize(values[a] - values[b], f"{a} − {b}", num_resamples=config.num_resamples, seed=config.seed)
        for a, b in pairs
        if a in values and b in values
    ]
    notes = [
        f"model `{model_path}`, policy `{policy_path}`, {len(scenes)} scenes of `{data}`",
        f"{config.num_glimpses} glimpses of {config.glimpse_px} px, canvas {config.canvas_grid}x{config.canvas_grid}",
        f"{METRIC} after glimpse t, mean ± 95% bootstrap half-width over scenes ({config.num_resamples} resamples)",
        f"random-order policies (C2F, R-IID): each scene's value averaged over {config.num_runs} runs "
        f"(seed {config.seed} + run)",
        "EG-C2F entropy: softmax over the channels of the predicted standardized teacher patches, per canvas cell",
        f"oracle: greedy on measured one-step gains of the policy's {len(regressor.candidates())} candidates",
        "learned-C2F: the learned scores held to the C2F schedule (per level, the best unvisited tile)",
    ]
    paths = write_report(output_dir, curves, differences, metric=METRIC, notes=notes)
    paths["per_scene"] = Path(output_dir) / "per_scene.safetensors"
    save_file({name: value.contiguous() for name, value in values.items()}, str(paths["per_scene"]))
    return paths
