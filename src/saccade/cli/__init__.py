"""The `saccade` command line: the only argv parser of the package.

Each subcommand is a pair of functions in a module of this package, `add_<name>(subparsers)` that declares
its arguments and `_run_<name>(args) -> int` that does the work; heavy modules are imported inside the
`_run_*` function, so `saccade --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from saccade.cli.data import add_export_features, add_scenes
from saccade.cli.demo import add_demo
from saccade.cli.deploy import add_bench, add_export
from saccade.cli.evaluate import add_evaluate
from saccade.cli.flops import add_flops
from saccade.cli.policies import add_evaluate_policy, add_train_policy
from saccade.cli.pretrain import add_evaluate_distillation, add_pretrain

__all__ = ["build_parser", "main"]

_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_flops,
    add_pretrain,
    add_evaluate,
    add_evaluate_distillation,
    add_scenes,
    add_export_features,
    add_demo,
    add_bench,
    add_export,
    add_train_policy,
    add_evaluate_policy,
)


def build_parser() -> argparse.ArgumentParser:
    """The `saccade` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="saccade", description="CanViT: active-vision foundation models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv (default sys.argv[1:]), run the subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"saccade {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
