"""What produced a results file (issue 21, item 5): the source (git commit, or the package version outside a
checkout), the versions of saccade, torch and Python, the device, the thread count and the seeds.

Every command that writes results records `provenance(...)` under the key "provenance" (or as provenance.json
where its other files are run configs, which refuse unknown keys).
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["provenance"]

_PACKAGE = Path(__file__).resolve().parent
_GIT_TIMEOUT_S = 10


def provenance(*, seeds: dict[str, Any], device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """{git_commit, git_dirty, versions: {saccade, torch, python}, device, threads, seeds} of this process.

    Args:
        seeds: every seed the run used, by name (e.g. {"seed": 0, "probe_seed": 1}).
        device: the torch device it ran on (None: not device-bound).
        threads: intra-op CPU threads (None: torch's current count).
    """
    import torch

    import saccade

    commit, dirty = _source()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {"saccade": saccade.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "device": device,
        "threads": torch.get_num_threads() if threads is None else threads,
        "seeds": dict(seeds),
    }


def _source() -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it) of saccade's source tree; (None, None) when that is
    not a git checkout holding the package (an installed package, one under an unrelated repository, no git)."""
    try:
        if _run_git("ls-files", "--error-unmatch", "__init__.py") is None:
            return None, None
        commit = _run_git("rev-parse", "HEAD")
        status = _run_git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    if commit is None or status is None:
        return None, None
    return commit, bool(status)


def _run_git(*args: str) -> str | None:
    """The stripped output of `git args` run in the package's folder; None when git fails."""
    result = subprocess.run(
        ["git", "-C", str(_PACKAGE), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None
