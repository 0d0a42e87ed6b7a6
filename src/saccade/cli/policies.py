"""`saccade train-policy` and `saccade evaluate-policy`: learned glimpse policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import tyro

from saccade.cli._checks import checkpoint_spec, existing_file, model_folder, output_folder
from saccade.cli._defaults import flag_value
from saccade.cli.evaluate import _recorded_episode
from saccade.data.specs import check_distillation_spec
from saccade.policy_training.config import PolicyEvalConfig, PolicyTrainConfig
from saccade.policy_training.evaluate import POLICY_NAMES


@dataclass(frozen=True, kw_only=True)
class TrainPolicyCommand:
    """Measure the one-step gain (rise of the standardized teacher-patch cosine) of every candidate viewpoint along
    rollouts on training scenes, fit an MLP that predicts it, act greedily; rounds after the first collect on the
    learned policy's own rollouts. Writes OUTPUT_DIR/policy.safetensors and metrics.json. The model's recorded
    episode sets the --episode.* defaults."""

    BATCH_FLAG: ClassVar[str] = "--rollout-batch"

    settings: Annotated[PolicyTrainConfig, tyro.conf.arg(name="")]
    model: str
    """CanViTForPretraining checkpoint folder (frozen)."""
    data: str = "bundled"
    """Training scenes: a named crop set (bundled, anchor, ...) or synthetic."""
    threads: int = 0
    """Intra-op CPU threads; 0: chosen from the free cores (saccade.threads)."""
    quiet: bool = False
    """No progress bars."""


def train_policy_defaults(argv: list[str]) -> dict[str, Any]:
    """The episode the --model checkpoint records (else its canvas grid: the teacher grid it was trained on)."""
    return _model_episode(flag_value(argv, "--model"))


def run_train_policy(command: TrainPolicyCommand) -> int:
    from saccade.policy_training.run import run_train_policy as run
    from saccade.threads import use_threads

    use_threads(command.threads)
    checkpoint_spec(command.model, flag="--model")
    check_distillation_spec(command.data, shards=False)
    output_folder(command.settings.output_dir, flag="--output-dir")
    result = run(command.model, command.settings, data=command.data, progress=not command.quiet)
    print(json.dumps({"policy": str(result.policy_path), "rounds": result.metrics["rounds"]}, indent=1))
    return 0


@dataclass(frozen=True, kw_only=True)
class EvaluatePolicyCommand:
    """Standardized teacher-patch cosine after each glimpse, mean and 95% bootstrap interval over held-out scenes,
    for the learned policy, C2F, EG-C2F, R-IID and the greedy oracle; writes results.md, results.csv, curves.png
    and per_scene.safetensors to --output-dir. The policy's recorded episode sets the --episode.* defaults."""

    BATCH_FLAG: ClassVar[str] = "--batch-size"

    settings: Annotated[PolicyEvalConfig, tyro.conf.arg(name="")]
    model: str
    """CanViTForPretraining checkpoint folder (frozen)."""
    policy: str
    """policy.safetensors written by `saccade train-policy`."""
    data: str = "bundled-heldout"
    """Scenes: a held-out crop set (bundled-heldout, anchor-heldout) or synthetic."""
    num_scenes: int = 256
    """Evaluation scenes."""
    policies: tuple[str, ...] = POLICY_NAMES
    """Policies to compare (saccade.policy_training.evaluate.POLICY_NAMES)."""
    output_dir: str = "runs/policy/eval"
    """Report folder."""
    threads: int = 0
    """Intra-op CPU threads; 0: chosen from the free cores (saccade.threads)."""
    quiet: bool = False
    """No progress bars."""


def evaluate_policy_defaults(argv: list[str]) -> dict[str, Any]:
    """The episode the --policy was trained with, else the one the --model checkpoint records."""
    from saccade.config_files import config_to_dict
    from saccade.policy_training.run import policy_episode

    policy = flag_value(argv, "--policy")
    episode = None
    if policy is not None:
        try:
            episode = policy_episode(policy)
        except (OSError, ValueError):  # a missing or foreign file: run_evaluate_policy names the problem
            episode = None
    return {"episode": config_to_dict(episode)} if episode else _model_episode(flag_value(argv, "--model"))


def _model_episode(model: str | None) -> dict[str, Any]:
    """The episode the checkpoint folder `model` records, else {"episode": {"canvas_grid": its teacher grid}}."""
    recorded = _recorded_episode(model)
    folder = model_folder(model)
    if recorded or folder is None:
        return recorded
    config_file = folder / "config.json"
    try:
        grid = json.loads(config_file.read_text()).get("teacher_patch_grid")
    except (OSError, ValueError, AttributeError):  # no readable config: checkpoint_folder names the problem
        return {}
    return {"episode": {"canvas_grid": grid}} if isinstance(grid, int) else {}


def run_evaluate_policy(command: EvaluatePolicyCommand) -> int:
    from saccade.policy_training.run import run_evaluate_policy as run
    from saccade.threads import use_threads

    use_threads(command.threads)
    checkpoint_spec(command.model, flag="--model")
    existing_file(command.policy, flag="--policy")
    check_distillation_spec(command.data, shards=False)
    unknown = sorted(set(command.policies) - set(POLICY_NAMES))
    if unknown:
        raise ValueError(f"--policies: unknown {unknown}; choose from {list(POLICY_NAMES)}")
    output_folder(command.output_dir, flag="--output-dir")
    paths = run(
        command.model,
        command.policy,
        command.settings,
        data=command.data,
        num_scenes=command.num_scenes,
        output_dir=command.output_dir,
        policies=command.policies,
        progress=not command.quiet,
    )
    print(paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in paths.values()))
    return 0
