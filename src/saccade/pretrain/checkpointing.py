"""Training checkpoints: model, optimizer, scheduler, RNG states and data position, written atomically.

A checkpoint is one file written to a temporary name and renamed over `checkpoint.pt`, so a crash at
any moment leaves either the previous checkpoint or the new one, never half of one. It holds only
tensors and plain containers and is read back with torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["TrainingState", "load_training_checkpoint", "save_training_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"


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


def save_training_checkpoint(folder: str | os.PathLike, state: TrainingState) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / CHECKPOINT_FILE
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{CHECKPOINT_FILE}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(vars(state), tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


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
