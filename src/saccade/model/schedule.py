"""When the glimpse stream Reads from and Writes to the canvas (paper §4, "Read/Write schedule")."""

from __future__ import annotations

from functools import cache

__all__ = ["rw_schedule"]


@cache
def rw_schedule(num_blocks: int, rw_stride: int, enable_reads: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(read_after_blocks, write_after_blocks), 0-based block indices.

    Positions stride-1, 2*stride-1, ... below num_blocks alternate Read, Write, Read, ...; a Write
    after the last block is appended when the last Write is elsewhere. Without reads the Writes are
    unchanged. CanViT-B (12 blocks, stride 2): Reads (1, 5, 9), Writes (3, 7, 11).
    """
    if num_blocks < 1 or rw_stride < 1:
        raise ValueError(f"num_blocks and rw_stride must be >= 1, got {num_blocks}, {rw_stride}")
    positions = range(rw_stride - 1, num_blocks, rw_stride)
    reads = [p for i, p in enumerate(positions) if i % 2 == 0]
    writes = [p for i, p in enumerate(positions) if i % 2 == 1]
    if not writes or writes[-1] != num_blocks - 1:
        writes.append(num_blocks - 1)
    return (tuple(reads) if enable_reads else (), tuple(writes))
