"""File helpers shared across saccade: atomic writes and the cache folder.

`atomic_write` is the one way saccade replaces a file (checkpoints, weights files, caches, export shards and
journals): the content goes to a hidden temporary file `.<name>.<random>.tmp` in the target's folder, is
flushed to disk and renamed over the target (`os.replace` is atomic), so a reader or a crash sees the old file
or the new one, never half of one. A killed writer leaves only its temporary file, which matches the glob
`.<name>.*.tmp`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["CACHE_ENV", "atomic_write", "cache_dir"]

CACHE_ENV = "SACCADE_CACHE_DIR"


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], object]) -> Path:
    """Replace `path` with what `write_fn(tmp)` writes to a temporary file in the same folder; returns `path`.

    The file ends with the mode a plain `open` gives (0o666 less the umask), even when `write_fn` narrows it
    (safetensors writes 0o600). On any error the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never share a temporary file with a concurrent writer; mode 0o666 lets the kernel apply the umask.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        mode = tmp.stat().st_mode & 0o777
        write_fn(tmp)
        os.chmod(tmp, mode)
        _fsync(tmp)  # the data reaches the disk before the rename makes it visible
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The saccade cache folder: `path`, else $SACCADE_CACHE_DIR, else ~/.cache/saccade (read at call time)."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "saccade")
