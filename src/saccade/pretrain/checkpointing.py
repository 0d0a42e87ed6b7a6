"""The run folder: training checkpoints written atomically, and a lock held by the one run that writes there.

A checkpoint (model, optimizer, scheduler, RNG states and data position) is one file written to a temporary
name and renamed over `checkpoint.pt`, so a crash at any moment leaves either the previous checkpoint or
the new one, never half of one; a process killed mid-write leaves its temporary file, which the next run
holding the lock removes. A checkpoint holds only tensors and plain containers and is read back with
torch.load(weights_only=True).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saccade._io import atomic_write
from saccade.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE

__all__ = [
    "LOCK_FILE",
    "TrainingState",
    "load_training_checkpoint",
    "lock_run_folder",
    "remove_stale_temporary_files",
    "save_training_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.pt"
LOCK_FILE = "pretrain.lock"


@dataclass
class TrainingState:
    step: int  # optimizer steps done; the next step to run
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor  # viewpoint / rollout-length generator state
    torch_rng: torch.Tensor  # global CPU RNG state
    config: dict[str, Any]
    ema: dict[str, Any] | None = None  # weight average (PretrainConfig.ema_decay > 0)
    data: dict[str, Any] | None = None  # position in streamed data (saccade.pretrain.stream.StreamPosition)


def save_training_checkpoint(folder: str | os.PathLike, state: TrainingState) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write(folder / CHECKPOINT_FILE, lambda tmp: torch.save(vars(state), tmp))


def load_training_checkpoint(folder: str | os.PathLike) -> TrainingState | None:
    """The checkpoint in `folder`, or None when there is none."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file: say which
        raise ValueError(f"training checkpoint {path} cannot be read: {error}") from None
    missing = {"step", "model", "optimizer", "scheduler", "generator", "torch_rng", "config"} - set(data)
    if missing:
        raise ValueError(f"training checkpoint {path} lacks {sorted(missing)}")
    return TrainingState(**data)


@contextlib.contextmanager
def lock_run_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create `folder` if needed and hold an exclusive lock on it while the block runs.

    Raises ValueError when the folder cannot be written or another process holds the lock (naming it). The
    lock is an flock on `folder`/pretrain.lock, which the system releases when its process dies, so a
    killed run never leaves a stale lock; the file records the holder's pid, host and start time.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK_FILE).open("a+")
        tempfile.TemporaryFile(dir=folder).close()  # creating files must work, not only appending to the lock
    except OSError as error:
        raise ValueError(f"output_dir {folder} is not a writable folder: {error}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ValueError(
                f"output_dir {folder} is in use by another pretraining run ({_holder(handle.read())}); wait for it "
                "to finish or choose another output_dir"
            ) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        handle.flush()
        yield folder


def _holder(text: str) -> str:
    """'pid 123 on host, started ...' from a lock file's contents."""
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (ValueError, KeyError, TypeError):  # written by no run yet, or by another version
        return text.strip() or "a process that has not written its name yet"


def remove_stale_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in a run folder and its model folders.

    Only call it while holding the folder's lock: a running writer's temporary file matches too.
    """
    folder = Path(folder)
    stale = list(folder.glob(f".{CHECKPOINT_FILE}.*.tmp"))
    for name in (WEIGHTS_FILE, CONFIG_FILE):  # save_pretrained's temporary names, in model/ and model-raw/
        stale += folder.glob(f"model*/.{name}.*.tmp")
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
