"""`saccade train-policy` and `saccade evaluate-policy`: learned glimpse policies."""

from __future__ import annotations

import argparse
import json

from saccade.cli._checks import checkpoint_folder, existing_file, output_folder
from saccade.cli._common import add_dataclass_flags, add_threads_flag, flag_settings, use_threads_flag


def add_train_policy(subparsers: argparse._SubParsersAction) -> None:
    from saccade.policy_training.config import PolicyTrainConfig

    parser = subparsers.add_parser(
        "train-policy",
        help="learn where to look next: greedy one-step gain regression on a frozen CanViT",
        description=(
            "Measure the one-step gain (rise of the standardized teacher-patch cosine) of every candidate viewpoint "
            "along rollouts on training scenes, fit an MLP that predicts it, act greedily; rounds after the first "
            "collect on the learned policy's own rollouts. Writes OUTPUT_DIR/policy.safetensors and metrics.json."
        ),
    )
    parser.add_argument("--model", required=True, help="CanViTForPretraining checkpoint folder (frozen)")
    parser.add_argument(
        "--data", default="bundled", help="training scenes: a crop set (bundled, anchor, ...) or synthetic"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_flag(parser)
    add_dataclass_flags(parser, PolicyTrainConfig)
    parser.set_defaults(run=_run_train_policy, batch_flag="--rollout-batch")


def _run_train_policy(args: argparse.Namespace) -> int:
    from saccade.policy_training.config import PolicyTrainConfig
    from saccade.policy_training.run import run_train_policy

    use_threads_flag(args)
    settings = flag_settings(args, PolicyTrainConfig)
    checkpoint_folder(args.model, flag="--model")
    output_folder(settings.get("output_dir", PolicyTrainConfig.output_dir), flag="--output-dir")
    result = run_train_policy(args.model, settings, data=args.data, progress=not args.quiet)
    print(json.dumps({"policy": str(result.policy_path), "rounds": result.metrics["rounds"]}, indent=1))
    return 0


def add_evaluate_policy(subparsers: argparse._SubParsersAction) -> None:
    from saccade.policy_training.config import PolicyEvalConfig
    from saccade.policy_training.evaluate import POLICY_NAMES

    parser = subparsers.add_parser(
        "evaluate-policy",
        help="per-glimpse score of a learned policy beside C2F, EG-C2F, R-IID and the oracle",
        description=(
            "Standardized teacher-patch cosine after each glimpse, mean and 95%% bootstrap interval over held-out "
            "scenes, for the learned policy, C2F, EG-C2F, R-IID and the greedy oracle; writes results.md, "
            "results.csv, curves.png and per_scene.safetensors to --output-dir."
        ),
    )
    parser.add_argument("--model", required=True, help="CanViTForPretraining checkpoint folder (frozen)")
    parser.add_argument("--policy", required=True, help="policy.safetensors written by saccade train-policy")
    parser.add_argument(
        "--data",
        default="bundled-heldout",
        help="scenes: a held-out crop set (bundled-heldout, anchor-heldout) or synthetic",
    )
    parser.add_argument("--num-scenes", type=int, default=256, help="evaluation scenes (default 256)")
    parser.add_argument("--policies", nargs="+", choices=POLICY_NAMES, default=list(POLICY_NAMES))
    parser.add_argument("--output-dir", default="runs/policy/eval", help="report folder (default runs/policy/eval)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_flag(parser)
    add_dataclass_flags(parser, PolicyEvalConfig)
    parser.set_defaults(run=_run_evaluate_policy, batch_flag="--batch-size")


def _run_evaluate_policy(args: argparse.Namespace) -> int:
    from saccade.policy_training.config import PolicyEvalConfig
    from saccade.policy_training.run import run_evaluate_policy

    use_threads_flag(args)
    settings = flag_settings(args, PolicyEvalConfig)
    checkpoint_folder(args.model, flag="--model")
    existing_file(args.policy, flag="--policy")
    output_folder(args.output_dir, flag="--output-dir")
    paths = run_evaluate_policy(
        args.model,
        args.policy,
        settings,
        data=args.data,
        num_scenes=args.num_scenes,
        output_dir=args.output_dir,
        policies=tuple(args.policies),
        progress=not args.quiet,
    )
    print(paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in paths.values()))
    return 0
