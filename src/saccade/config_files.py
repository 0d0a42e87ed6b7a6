"""Config dataclasses to and from plain dicts and files: the one `from_dict` of the package.

Every run config is a frozen dataclass nested by composition (a `PretrainConfig` holds an `EpisodeConfig`, ...).
`config_to_dict` gives the JSON-ready dict a run records as its config.json; `config_from_dict` rebuilds the
config from such a dict, recursing into nested dataclasses, turning lists into tuples and refusing unknown keys
with the dotted path of the key. A nested `EpisodeConfig` may also be given by preset name (`episode = "cpu"`).

Renamed keys stay readable: a class may list `LEGACY_KEYS = {"old_key": "new.dotted.path"}` (a ClassVar), so the
config.json of a run written before a field moved into a sub-config still loads.

Torch-free: the command line reads files before it imports anything heavy.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "apply_legacy_keys",
    "config_from_dict",
    "config_to_dict",
    "dotted_settings",
    "read_config_file",
    "read_json_object",
]

ConfigT = TypeVar("ConfigT")


def config_to_dict(config: Any) -> dict[str, Any]:
    """{field: value} of a config dataclass, nested configs as dicts and tuples as lists (JSON-ready)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[ConfigT], data: dict[str, Any], *, path: str = "", base: Any = None) -> ConfigT:
    """`cls(**data)`, or `base` updated by `data`; nested config tables update the field's default (or `base`'s
    value) key by key. Unknown keys raise a ValueError naming them with their dotted path."""
    if not isinstance(data, dict):
        raise ValueError(f"{path or cls.__name__}: expected a table of {cls.__name__} settings, got {data!r}")
    data = apply_legacy_keys(cls, data)
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}: " if path else ""
        raise ValueError(f"{where}unknown {cls.__name__} settings {unknown}; known: {sorted(fields)}")
    values = {}
    for name, value in data.items():
        current = getattr(base, name) if base is not None else _default(fields[name])
        values[name] = _value(hints[name], value, f"{path}.{name}" if path else name, current)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def dotted_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"episode.canvas_grid": 8, ...}: nested settings flattened to dotted keys."""
    flat: dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            flat |= dotted_settings(value, f"{prefix}{name}.")
        else:
            flat[prefix + name] = value
    return flat


def changed_settings(recorded: dict[str, Any], config: Any) -> dict[str, tuple[Any, Any]]:
    """{dotted field: (recorded, now)} of the settings where `recorded` (a config's to_dict, read back through the
    class of `config`, so that older layouts and missing keys read as today's defaults) differs from `config`."""
    old = dotted_settings(type(config).from_dict(recorded).to_dict())
    new = dotted_settings(config.to_dict())
    return {name: (old.get(name), new.get(name)) for name in new | old if old.get(name) != new.get(name)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML or JSON file (a run's own config.json included); errors start with the path."""
    path = Path(path)
    if path.suffix != ".toml":
        return read_json_object(path)
    _check_file(path)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in a file; errors start with the path (no such file, not valid JSON, not an object)."""
    path = Path(path)
    _check_file(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of settings, got a {type(data).__name__}")
    return data


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise IsADirectoryError(f"{path}: is a folder, expected a file")


def apply_legacy_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the renamed keys of `cls.LEGACY_KEYS` moved to their dotted place (an explicit new key wins)."""
    legacy: dict[str, str] = getattr(cls, "LEGACY_KEYS", {})
    if not any(key in data for key in legacy):
        return data
    data = dict(data)
    for old, new in legacy.items():
        if old not in data:
            continue
        value = data.pop(old)
        *parents, leaf = new.split(".")
        table = data
        for parent in parents:
            existing = table.get(parent, {})
            table[parent] = config_to_dict(existing) if dataclasses.is_dataclass(existing) else dict(existing)
            table = table[parent]
        table.setdefault(leaf, value)
    return data


def _value(hint: Any, value: Any, path: str, current: Any) -> Any:
    """`value` converted to the field type `hint`: nested configs built over `current`, lists made tuples."""
    config_class = _config_class(hint)
    if config_class is not None:
        if isinstance(value, str):
            return _preset(config_class, value, path)
        if isinstance(value, dict):
            base = current if isinstance(current, config_class) else None
            return config_from_dict(config_class, value, path=path, base=base)
        return value
    if isinstance(value, list):
        return tuple(tuple(item) if isinstance(item, list) else item for item in value)
    return value


def _default(field: dataclasses.Field) -> Any:
    """A field's default value (None when it has none)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _config_class(hint: Any) -> type | None:
    """The dataclass in `hint` (Config or Config | None), else None."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        classes = [arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)]
        return classes[0] if len(classes) == 1 else None
    return None


def _preset(config_class: type, name: str, path: str) -> Any:
    from saccade.episode_config import EPISODES, EpisodeConfig

    presets: dict[type, dict[str, Any]] = {EpisodeConfig: EPISODES}
    if config_class not in presets:
        raise ValueError(f"{path}: expected a table of {config_class.__name__} settings, got {name!r}")
    if name not in presets[config_class]:
        raise ValueError(
            f"{path}: unknown {config_class.__name__} preset {name!r}; choose from {sorted(presets[config_class])}"
        )
    return presets[config_class][name]
