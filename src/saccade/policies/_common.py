"""Argument checks and RNG plumbing shared by the glimpse policies (private)."""

from __future__ import annotations

import torch


def check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def check_num_levels(num_levels: object) -> int:
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
        raise ValueError(f"num_levels must be an int >= 1, got {num_levels!r}")
    return num_levels


def check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def output_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """Where viewpoints are returned: `device` if given, else the generator's device, else CPU."""
    if device is not None:
        return torch.device(device)
    if generator is not None:
        return generator.device
    return torch.device("cpu")


def draw_device(generator: torch.Generator | None, out_device: torch.device) -> torch.device:
    """Where random numbers are drawn: on the generator's own device (CPU or CUDA), else where they go."""
    return generator.device if generator is not None else out_device


def check_step(t: object, *, name: str, num_steps: int | None, expected: int | None = None) -> int:
    """Validate a step index: an int in [0, num_steps), equal to `expected` for stateful policies."""
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"{name}: step index t must be an int, got {type(t).__name__}")
    if t < 0:
        raise ValueError(f"{name}: step index t must be >= 0, got {t}")
    if num_steps is not None and t >= num_steps:
        raise ValueError(f"{name}: step t={t} is beyond the policy's length of {num_steps} steps (t < {num_steps})")
    if expected is not None and t != expected:
        raise ValueError(
            f"{name} is stepped in order: expected t={expected}, got t={t} (call reset() to start a new episode)"
        )
    return t
