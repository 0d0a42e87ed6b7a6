"""Helpers shared by the subcommands: one flag per config field, the thread flag, aligned tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

THREADS_HELP = "torch CPU threads (default 0: chosen from the cores other processes leave free, see saccade.threads)"


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def use_threads_flag(args: argparse.Namespace) -> None:
    """Apply --threads, or the automatic choice when it is not given or 0 (saccade.threads), to this process."""
    from saccade.threads import use_threads

    if args.threads is not None and args.threads < 0:
        raise ValueError(f"--threads must be a positive integer (or 0: automatic), got {args.threads}")
    use_threads(args.threads or 0)


def print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    for cells in (header, *lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))


def add_dataclass_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One --flag per field of a frozen config dataclass; unset flags keep the config file's or default value."""
    import dataclasses

    for field in dataclasses.fields(config_class):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(
                flag, type=kind, nargs="+", default=None, help=f"(default {' '.join(map(str, default))})"
            )
        else:
            parser.add_argument(flag, type=type(default), default=None, help=f"(default {default})")


def config_from_args(args: argparse.Namespace, config_class: type):
    """Config file (--config, JSON or TOML) overridden by explicit flags."""
    import dataclasses

    from saccade.cli._checks import read_settings_file

    base = read_settings_file(args.config) if args.config else {}
    for field in dataclasses.fields(config_class):
        value = getattr(args, field.name)
        if value is not None:
            base[field.name] = tuple(value) if isinstance(value, list) else value
    return config_class.from_dict(base)


def flag_settings(args: argparse.Namespace, config_class: type) -> dict:
    """{field: value} of the config fields given as flags."""
    import dataclasses

    names = [field.name for field in dataclasses.fields(config_class)]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
