"""The learning-rate schedule shared by pretraining, probes and policy regressors: linear warmup, cosine decay.

nanoGPT's `get_lr` in one function: a line from `start` to `peak` over `warmup_steps`, then half a cosine from
`peak` to 0 at `total_steps`, and 0 after. With `peak=1` it is a multiplier for `LambdaLR`.
"""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, peak: float = 1.0, start: float = 0.0) -> float:
    """The value at optimizer step `step` (0-based): `start` -> `peak` linearly, then cosine `peak` -> 0."""
    if step < warmup_steps:
        return start + (peak - start) * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))
