"""Argument checks shared across saccade, so that one kind of mistake reads the same everywhere.

Each check returns the value it accepts and raises `ValueError("<name> must be ..., got <value!r>")`, where
`name` is what the user wrote: a field (`"ViTSpec.num_blocks"`) or an argument (`"batch_size"`). A bool is
not an int here, although Python makes it one.
"""

from __future__ import annotations

__all__ = ["non_negative_int", "positive_int"]


def positive_int(name: str, value: object) -> int:
    """`value` if it is an int >= 1; ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def non_negative_int(name: str, value: object) -> int:
    """`value` if it is an int >= 0; ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value
