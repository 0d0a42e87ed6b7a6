"""Aligned plain-text tables for the commands that print one."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """Right-aligned columns, two spaces apart, under `header`."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    for cells in (header, *lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))
