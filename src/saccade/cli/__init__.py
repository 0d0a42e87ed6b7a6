"""The `saccade` command line: the only argv parser of the package, generated from the run configs by tyro.

Each subcommand is a frozen dataclass whose fields are its flags (a nested config gives dotted flags,
`--episode.canvas-grid 8`, `--probe.steps 300`; the help text is the fields' docstrings) and a function that runs
it; `COMMANDS` lists them, and their modules are imported only when their command runs, so `saccade --help`
stays fast. One spelling per concept in every command: `--output-dir`, `--model` (a preset or a checkpoint
folder), `--data`, `--device`, `--threads`, `--seed`, `--quiet`.

Defaults, from weakest to strongest: the config's own defaults; what the command reads from its inputs (the episode
a checkpoint was trained with, the `--quick` preset of the demo); `--config FILE` (TOML or JSON with the command's
settings, a run's own config.json included); `--episode NAME` (an episode preset, saccade.episode_config); the
flags.

Exit codes: 0 success; 2 bad input (a usage error, a missing or malformed file, a bad value, an output path
that cannot be written, an unavailable device: fix the command and rerun); 1 a failure at run time (out of
memory, an I/O error while writing, a failed parity or agreement check). Errors the user can fix print one
line, `saccade <command>: error: ...`, on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import inspect
import linecache
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["COMMANDS", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand: `module.<Name>Command` is its flags, `module.run_<name>` runs it."""

    module: str
    help: str

    def load(self, name: str):
        """(command dataclass, run function, defaults function or None) of the subcommand `name`."""
        module = importlib.import_module(self.module)
        stem = "".join(part.title() for part in name.split("-"))
        snake = name.replace("-", "_")
        defaults = getattr(module, f"{snake}_defaults", None)
        return getattr(module, f"{stem}Command"), getattr(module, f"run_{snake}"), defaults


COMMANDS: dict[str, Command] = {
    "demo": Command("saccade.cli.demo", "the main job: pretrain a tiny CanViT, evaluate it, write a report"),
    "pretrain": Command("saccade.cli.pretrain", "pretrain a CanViT by dense latent distillation"),
    "evaluate": Command("saccade.cli.evaluate", "probe a frozen CanViT per glimpse and policy; compare with a teacher"),
    "evaluate-distillation": Command(
        "saccade.cli.evaluate", "standardized cosine to the teacher per glimpse and policy, with passive baselines"
    ),
    "train-policy": Command("saccade.cli.policies", "learn where to look next: greedy one-step gain regression"),
    "evaluate-policy": Command("saccade.cli.policies", "score a learned policy per glimpse beside C2F and the oracle"),
    "scenes": Command("saccade.cli.data", "list or preview the bundled offline photos"),
    "export-features": Command("saccade.cli.data", "run a frozen teacher over scenes, write resumable feature shards"),
    "pack-shards": Command("saccade.cli.shards", "pack an image folder or a feature export into tar shards to stream"),
    "export": Command("saccade.cli.deploy", "export one glimpse step to ONNX or torch.export and check it"),
    "bench": Command("saccade.cli.deploy", "time CanViT against the authors' canvit-pytorch (same weights, same run)"),
    "flops": Command("saccade.cli.flops", "analytic FLOPs per glimpse and parameter count"),
    "publish": Command("saccade.cli.publish", "write a pretraining model in the authors' Hub layout with a model card"),
}

CONFIG_HELP = (
    "--config FILE: a TOML or JSON file of this command's settings (a run's own config.json works); flags override "
    "it. --episode NAME (or --pretrain.episode NAME in the demo): start the episode settings from a preset, paper "
    "(512 px scenes, 128 px glimpses, 32 x 32 canvas, 21 glimpses) or cpu (128, 32, 8 x 8, 10)."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv (default sys.argv[1:]), run the subcommand and return its exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # the reader went away (`saccade ... | head`): stop quietly, as Unix tools do
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python flushes stdout at exit; this one takes it)
        return 0


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"saccade: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        command = _parse(name, rest)
    except SystemExit as exit:  # tyro's usage errors and --help
        return int(exit.code or 0)
    except Exception as error:  # a bad --config file or model before parsing
        return _report(name, error, batch_flag=None)
    _, run, _ = COMMANDS[name].load(name)
    try:
        return run(command)
    except Exception as error:
        return _report(name, error, batch_flag=getattr(command, "BATCH_FLAG", None))


def _parse(name: str, argv: list[str]):
    """The command dataclass of `name` from argv, over the defaults of its inputs and --config."""
    import tyro

    from saccade.cli._defaults import command_default, pop_config_file, pop_episode_presets

    command_class, _, defaults = COMMANDS[name].load(name)
    argv, config_file = pop_config_file(argv)
    argv, presets = pop_episode_presets(argv)
    default = command_default(command_class, argv, config_file, defaults, presets)
    description = f"{inspect.cleandoc(command_class.__doc__ or '')}\n\n{CONFIG_HELP}"
    return tyro.cli(command_class, args=argv, default=default, prog=f"saccade {name}", description=description)


def _overview() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: saccade COMMAND [--config FILE] [FLAGS]", "", "CanViT: active-vision foundation models.", ""]
    lines += [f"  {name.ljust(width)}  {command.help}" for name, command in COMMANDS.items()]
    lines += ["", "`saccade COMMAND --help` lists a command's flags.", CONFIG_HELP]
    return "\n".join(lines)


def _report(name: str, error: Exception, *, batch_flag: str | None) -> int:
    """Print a user error as one line and return its exit code; re-raise a bug (it keeps its traceback)."""
    reported = _user_error(error, batch_flag=batch_flag)
    if reported is None:
        raise error
    message, code = reported
    print(f"saccade {name}: error: {message}", file=sys.stderr)
    return code


_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def _user_error(error: Exception, *, batch_flag: str | None) -> tuple[str, int] | None:
    """(message, exit code) of an error the user can act on, or None for a bug (it keeps its traceback)."""
    if _is_out_of_memory(error):
        return _out_of_memory_message(error, batch_flag), 1
    if isinstance(error, OSError) and error.filename is not None:
        paths = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{paths}: {error.strerror}", 2 if isinstance(error, _PATH_ERRORS) else 1
    if isinstance(error, (*_PATH_ERRORS, ValueError)) or (
        isinstance(error, (TypeError, ImportError)) and _raised_by_saccade(error)  # a missing optional dependency
    ):
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
