"""The default a subcommand's flags start from: its dataclass defaults, what it reads from its inputs, --config.

tyro parses the flags over one default instance of the command dataclass; this module builds it. A command may
define `<name>_defaults(argv) -> dict` (settings it reads from its inputs before parsing, such as the episode a
checkpoint records); `--config FILE` adds the file's settings on top. Keys that are not fields of the command
itself belong to its `settings` config (whose flags carry no prefix), so a run's own config.json is a valid file.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

import tyro

from saccade.config_files import apply_legacy_keys, config_from_dict, config_to_dict, read_config_file

__all__ = ["command_default", "flag_value", "pop_config_file", "pop_episode_presets"]

SETTINGS_FIELD = "settings"  # the command field holding its run config; its flags have no prefix


def pop_config_file(argv: list[str]) -> tuple[list[str], str | None]:
    """argv without `--config FILE` (or `--config=FILE`), and FILE (None when absent)."""
    rest, path = [], None
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            path = next(args, None)
            if path is None:
                raise ValueError("--config needs a file name")
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, path


def pop_episode_presets(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """argv without `--episode NAME` (or `--pretrain.episode NAME`, ...), and those presets as nested settings."""
    from saccade.episode_config import EPISODES

    rest: list[str] = []
    settings: dict[str, Any] = {}
    args = iter(argv)
    for arg in args:
        name, _, value = arg.partition("=")
        if not (name == "--episode" or name.endswith(".episode")) or not name.startswith("--"):
            rest.append(arg)
            continue
        value = value or next(args, "")
        if value not in EPISODES:
            raise ValueError(f"{name} {value!r}: not an episode preset; choose from {', '.join(EPISODES)}")
        *parents, leaf = name[2:].replace("-", "_").split(".")
        table = settings
        for parent in parents:
            table = table.setdefault(parent, {})
        table[leaf] = config_to_dict(EPISODES[value])
    return rest, settings


def flag_value(argv: list[str], flag: str) -> str | None:
    """The (first) value given to `flag` in argv, before parsing; None when absent."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def command_default(
    command_class: type,
    argv: list[str],
    config_file: str | None,
    defaults: Callable[[list[str]], dict] | None,
    presets: dict[str, Any],
) -> Any:
    """The instance of `command_class` the flags of argv are parsed over (required fields left tyro.MISSING):
    its field defaults < `defaults(argv)` < the --config file < the `presets` of --episode NAME."""
    values = _field_defaults(command_class)
    if defaults is not None:
        values = _merge(values, _split(command_class, defaults(argv)))
    if config_file is not None:
        try:
            settings = read_config_file(config_file)
        except OSError as error:  # missing, or a folder
            raise ValueError(f"--config {error}") from None
        except ValueError as error:
            raise ValueError(f"--config {error}") from None
        values = _merge(values, _split(command_class, settings))
    values = _merge(values, _split(command_class, presets))
    hints = typing.get_type_hints(command_class)
    built = {}
    for name, value in values.items():
        if isinstance(value, dict) and dataclasses.is_dataclass(hints[name]):
            value = config_from_dict(hints[name], value, path=name if name != SETTINGS_FIELD else "")
        built[name] = value
    return command_class(**built)


def _field_defaults(command_class: type) -> dict[str, Any]:
    """{field: default} with nested configs as dicts and required fields tyro.MISSING."""
    hints = typing.get_type_hints(command_class)
    values = {}
    for field in dataclasses.fields(command_class):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        elif dataclasses.is_dataclass(hints[field.name]):  # a config without a default: its fields' defaults
            value = _field_defaults(hints[field.name])
        else:
            value = tyro.MISSING
        values[field.name] = config_to_dict(value) if dataclasses.is_dataclass(value) else value
    return values


def _split(command_class: type, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as command fields: keys that are not the command's own go into its `settings` config."""
    own = {field.name for field in dataclasses.fields(command_class)}
    split = {key: value for key, value in settings.items() if key in own}
    rest = {key: value for key, value in settings.items() if key not in own}
    if rest:
        if SETTINGS_FIELD not in own:
            raise ValueError(f"unknown settings {sorted(rest)}; known: {sorted(own)}")
        config_class = typing.get_type_hints(command_class)[SETTINGS_FIELD]
        split[SETTINGS_FIELD] = apply_legacy_keys(config_class, {**rest, **split.get(SETTINGS_FIELD, {})})
    return split


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `update`, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
