"""Where a model's files are: a local folder, a Hugging Face Hub repository or a local mirror of the released
models (issue 21, item 1). Every loader goes through `resolve_folder`.

| spec | folder |
| --- | --- |
| an existing path | itself |
| `canvit/<name>` (no revision), with a mirror root holding `<name>/` | `<root>/<name>/` |
| any other `org/name` | the Hub repository's snapshot: downloaded online, read from huggingface_hub's cache offline |
| a bare `<name>` | `<root>/<name>/` of the mirror root |

The mirror root is the folder named by SACCADE_HUB_ROOT, else CANVIT_HUB_ROOT (the authors' variable): it stands
for the `canvit` organisation, so the released ids work offline against a copy of them. Presets are not resolved
here (`saccade.load` builds them). The environment (SACCADE_HUB_ROOT, CANVIT_HUB_ROOT, HF_HUB_OFFLINE,
HF_HUB_CACHE, HF_HOME) is read at each call, never at import: huggingface_hub reads its own once, at import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MIRROR_ORGANISATION", "ModelNotFoundError", "hub_id", "mirror_root", "resolve_folder"]

MIRROR_ORGANISATION = "canvit"
MIRROR_VARIABLES = ("SACCADE_HUB_ROOT", "CANVIT_HUB_ROOT")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_TRUE = {"1", "ON", "YES", "TRUE"}


class ModelNotFoundError(FileNotFoundError):
    """A spec naming no local folder, no mirror entry and no Hub repository (or revision) that can be read."""


def resolve_folder(
    spec: str | os.PathLike, *, revision: str | None = None, allow_patterns: Sequence[str] | None = None
) -> Path:
    """The local folder holding `spec`'s files (see the module table).

    Args:
        revision: a branch, tag or commit of a Hub repository (None: `main`); only for Hub ids.
        allow_patterns: for a Hub download, only the files matching these glob patterns (None: all).
    """
    path = Path(spec)
    if path.exists():
        if revision is not None:
            raise ValueError(f"{spec} is a local path; revision={revision!r} applies to Hub ids (org/name) only")
        return path
    name = os.fspath(spec)
    if hub_id(name):
        organisation, repo_name = name.split("/")
        mirrored = _mirrored(repo_name) if organisation == MIRROR_ORGANISATION and revision is None else None
        return mirrored or _snapshot(name, revision=revision, allow_patterns=allow_patterns)
    if "/" in name or os.sep in name:
        raise ModelNotFoundError(f"{name} does not exist (and is not a Hub id of the form org/name)")
    if revision is not None:
        raise ValueError(f"{name}: revision={revision!r} applies to Hub ids (org/name), not to mirror names")
    root = mirror_root()
    if root is None:
        raise ModelNotFoundError(
            f"{name!r} is no local folder and no Hub id (org/name); to load released names, set SACCADE_HUB_ROOT "
            f"(or CANVIT_HUB_ROOT) to a folder standing for the {MIRROR_ORGANISATION!r} organisation, or use the "
            f"Hub id {MIRROR_ORGANISATION}/{name}"
        )
    folder = _mirrored(name)
    if folder is None:
        raise ModelNotFoundError(f"{name!r}: no folder {root / name} in the mirror root ({_mirror_variable()}={root})")
    return folder


def hub_id(spec: str) -> bool:
    """Whether `spec` has the form of a Hub repository id, `org/name`."""
    return _HUB_ID.fullmatch(spec) is not None


def mirror_root() -> Path | None:
    """The folder named by SACCADE_HUB_ROOT, else CANVIT_HUB_ROOT; None when neither is set."""
    variable = _mirror_variable()
    return None if variable is None else Path(os.environ[variable]).expanduser()


def _mirror_variable() -> str | None:
    return next((name for name in MIRROR_VARIABLES if os.environ.get(name)), None)


def _mirrored(name: str) -> Path | None:
    root = mirror_root()
    if root is None:
        return None
    if not root.is_dir():
        raise ModelNotFoundError(f"{_mirror_variable()}={root}: no such folder (the mirror of the released models)")
    folder = root / name
    return folder if folder.is_dir() else None


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now, else as huggingface_hub read it at import."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        from huggingface_hub import constants

        return constants.is_offline_mode()
    return value.strip().upper() in _TRUE


def _cache_dir() -> Path:
    """huggingface_hub's cache folder as the environment names it now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _snapshot(repo_id: str, *, revision: str | None, allow_patterns: Sequence[str] | None) -> Path:
    """The snapshot folder of `repo_id` at `revision`, or ModelNotFoundError naming both and what to do."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (  # where huggingface_hub 0.24 and later all export them
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id} (revision {revision or 'main'})"
    offline, cache = _offline(), _cache_dir()
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache,
            local_files_only=offline,
            allow_patterns=None if allow_patterns is None else list(allow_patterns),
        )
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{where}: the Hub repository has no such revision (branch, tag or commit)") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{where}: no such repository on the Hugging Face Hub, or it is private or gated (log in with "
            "`hf auth login`); no local folder of that name either"
        ) from None
    except LocalEntryNotFoundError as error:  # also a cached snapshot that lacks files
        if offline:
            raise ModelNotFoundError(
                f"{where}: not (wholly) in the local Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1; download "
                f"it once online, or set SACCADE_HUB_ROOT to a folder holding {repo_id.split('/')[1]}/; no local "
                "folder of that name either"
            ) from None
        raise ModelNotFoundError(
            f"{where}: not in the local Hugging Face cache ({cache}) and the Hub could not be reached "
            f"({error.__cause__ or error})"
        ) from None
    except HFValidationError as error:
        raise ModelNotFoundError(f"{repo_id}: not a valid Hub id ({error})") from None
    except HfHubHTTPError as error:
        raise ModelNotFoundError(f"{where}: the Hub refused the download ({error})") from None
    return Path(folder)
