"""The `saccade` command line: the only argv parser of the package.

Each subcommand is a pair of functions in a module of this package, `add_<name>(subparsers)` that declares
its arguments and `_run_<name>(args) -> int` that does the work; heavy modules are imported inside the
`_run_*` function, so `saccade --help` stays fast. Flags are checked up front (saccade.cli._checks) so that a
run fails before any heavy work, with a message that names the flag.

Exit codes: 0 success; 2 bad input (a usage error, a missing or malformed file, a bad value, an output path
that cannot be written, an unavailable device: fix the command and rerun); 1 a failure at run time (out of
memory, an I/O error while writing, a failed parity or agreement check). Errors the user can fix print one
line, `saccade <command>: error: ...`, on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import linecache
import re
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
    except Exception as error:
        reported = _user_error(error, batch_flag=getattr(args, "batch_flag", None))
        if reported is None:
            raise
        message, code = reported
        print(f"saccade {args.command}: error: {message}", file=sys.stderr)
        return code


_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def _user_error(error: Exception, *, batch_flag: str | None) -> tuple[str, int] | None:
    """(message, exit code) of an error the user can act on, or None for a bug (it keeps its traceback)."""
    if _is_out_of_memory(error):
        return _out_of_memory_message(error, batch_flag), 1
    if isinstance(error, OSError) and error.filename is not None:
        paths = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{paths}: {error.strerror}", 2 if isinstance(error, _PATH_ERRORS) else 1
    if isinstance(error, (*_PATH_ERRORS, ValueError)) or (isinstance(error, TypeError) and _raised_by_saccade(error)):
        return str(error), 2
    return None


def _is_out_of_memory(error: Exception) -> bool:
    """A failed allocation: MemoryError, torch.OutOfMemoryError (CUDA, MPS) or the CPU allocator's RuntimeError."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _out_of_memory_message(error: Exception, batch_flag: str | None) -> str:
    """'out of memory: a 78.6 GB allocation failed; ...', with the flag that lowers the batch when there is one."""
    size = ""
    if match := re.search(r"allocate (\d+) bytes", str(error)):  # the CPU allocator
        size = f"a {int(match.group(1)) / 1e9:.1f} GB allocation failed; "
    elif match := re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", str(error)):  # CUDA and MPS
        size = f"a {match.group(1)} allocation failed; "
    if batch_flag is None:
        return f"out of memory: {size}the run does not fit this machine at these sizes"
    return f"out of memory: {size}the batch is too large for this machine, lower {batch_flag}"


def _raised_by_saccade(error: Exception) -> bool:
    """Whether `error` comes from a `raise` statement in saccade's own code: a validation, not a bug."""
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    if innermost is None or not innermost.tb_frame.f_globals.get("__name__", "").startswith("saccade."):
        return False
    line = linecache.getline(innermost.tb_frame.f_code.co_filename, innermost.tb_lineno)
    return line.lstrip().startswith("raise ")


if __name__ == "__main__":
    sys.exit(main())
