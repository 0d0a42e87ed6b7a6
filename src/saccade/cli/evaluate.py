"""`saccade evaluate` (frozen probes per glimpse and policy) and `saccade evaluate-distillation` (cosine to the
teacher per glimpse)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import tyro

from saccade.cli._checks import checked_device, checkpoint_spec, model_folder, model_spec, output_folder, probe_spec
from saccade.cli._defaults import flag_value
from saccade.data.distill_sets import DISTILLATION_SETS
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.evaluate.pipeline import EvaluateRunConfig


@dataclass(frozen=True, kw_only=True)
class EvaluateCommand:
    """Train (or load) linear probes on a frozen CanViT (segmentation on the canvas, classification on the recurrent
    CLS; R-IID training rollouts), evaluate every policy per glimpse (global mIoU, pixel accuracy, top-1/top-5; mean
    and 95% bootstrap interval over runs of random-order policies), probe a passive teacher at several input sizes,
    and write results.md, results.csv and plots to --output-dir (paper §6, App. D). A checkpoint that records its
    episode (saccade's pretraining does) sets the --episode.* defaults."""

    BATCH_FLAG: ClassVar[str] = "--batch-size"

    settings: Annotated[EvaluateRunConfig, tyro.conf.arg(name="")]
    quiet: bool = False
    """No progress bars."""


def evaluate_defaults(argv: list[str]) -> dict[str, Any]:
    """The episode the --model checkpoint records, if any."""
    return _recorded_episode(flag_value(argv, "--model"))


def run_evaluate(command: EvaluateCommand) -> int:
    from saccade.evaluate.pipeline import run_evaluation

    config = command.settings
    model_spec(config.model)
    for flag, probe in (("--seg-probe", config.seg_probe), ("--cls-probe", config.cls_probe)):
        if probe is not None:
            probe_spec(probe, flag=flag)
    checked_device(config.device)
    output_folder(config.output_dir, flag="--output-dir")
    summary = run_evaluation(config, progress=not command.quiet)
    print(summary.paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in summary.paths.values()))
    return 0


@dataclass(frozen=True, kw_only=True)
class EvaluateDistillationCommand:
    """Roll out C2F, F2C, R-IID, F-IID and RFS on a named crop set with each pretrained model (e.g. one per training
    seed) and report the standardized patch / CLS cosine to the teacher per glimpse: the mean over the models, their
    range, and the input-matched teacher (the first glimpse's pixels through the teacher). The models' recorded
    episode sets the --episode.* defaults."""

    model: tuple[str, ...]
    """Pretraining model folders (saved by `saccade pretrain`)."""
    data: tuple[str, ...] = ("anchor-heldout", "anchor-seen")
    """Named crop sets to score on (saccade.data.distill_sets)."""
    episode: EpisodeConfig = EPISODES["cpu"]
    """Glimpse side, canvas grid and glimpses of the rollouts."""
    seed: tuple[int, ...] = (0, 1, 2)
    """Seeds of the random-order policies' runs (deterministic policies run once, with the first)."""
    statistics: str | None = None
    """Score every model in one standardized space, fitted on the first 1,024 crops of this named set (default:
    each model's own training statistics; use it to compare models trained on different data)."""
    output_dir: str | None = None
    """Write results.json and results.md here (default: print only)."""
    threads: int = 0
    """Intra-op CPU threads; 0: chosen from the free cores (saccade.threads)."""


def evaluate_distillation_defaults(argv: list[str]) -> dict[str, Any]:
    """The episode the first --model folder records, if any."""
    return _recorded_episode(flag_value(argv, "--model"))


def run_evaluate_distillation(command: EvaluateDistillationCommand) -> int:
    from saccade.evaluate.distillation import evaluate_distillation, markdown_report
    from saccade.provenance import provenance
    from saccade.threads import use_threads

    for spec in command.model:
        checkpoint_spec(spec, flag="--model")
    for name in (*command.data, *([command.statistics] if command.statistics else [])):
        if name not in DISTILLATION_SETS:
            raise ValueError(f"--data / --statistics {name!r}: not a named crop set; choose from {DISTILLATION_SETS}")
    output = None if command.output_dir is None else output_folder(command.output_dir, flag="--output-dir")
    threads = use_threads(command.threads)
    result = evaluate_distillation(
        command.model,
        command.data,
        episode=command.episode,
        policy_seeds=command.seed,
        statistics=command.statistics,
    )
    report = markdown_report(result)
    print(report)
    if output is not None:
        seeds = {"policy_seeds": list(command.seed)}
        record = provenance(seeds=seeds, device="cpu", threads=threads.num_threads)
        (output / "results.json").write_text(json.dumps({**result, "provenance": record}, indent=1))
        (output / "results.md").write_text(report)
    return 0


def _recorded_episode(model: str | None) -> dict[str, Any]:
    """{"episode": ...} recorded by the checkpoint `model` names, or {} (a preset, the authors' folders)."""
    folder = model_folder(model)
    if folder is None:
        return {}
    from saccade.config_files import config_to_dict
    from saccade.loading import recorded_episode

    episode = recorded_episode(folder)
    return {} if episode is None else {"episode": config_to_dict(episode)}
