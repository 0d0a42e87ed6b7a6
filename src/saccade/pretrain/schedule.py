"""Learning-rate schedule: linear warmup from start_lr to lr, then constant (paper) or cosine to 0."""

from __future__ import annotations

import torch

from saccade._schedule import warmup_cosine
from saccade.pretrain.config import PretrainConfig

__all__ = ["learning_rate", "make_scheduler"]


def learning_rate(step: int, config: PretrainConfig) -> float:
    """The learning rate at optimizer step `step` (0-based)."""
    if config.schedule == "constant" and step >= config.warmup_steps:
        return config.lr
    return warmup_cosine(
        step, warmup_steps=config.warmup_steps, total_steps=config.steps, peak=config.lr, start=config.start_lr
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: PretrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR whose factor times config.lr is learning_rate(step); the optimizer's lr must be config.lr."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(step, config) / config.lr)
