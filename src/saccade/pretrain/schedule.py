"""Learning-rate schedule: linear warmup from start_lr to lr, then constant (paper) or cosine to 0."""

from __future__ import annotations

import math

import torch

from saccade.pretrain.config import PretrainConfig

__all__ = ["learning_rate", "make_scheduler"]


def learning_rate(step: int, config: PretrainConfig) -> float:
    """The learning rate at optimizer step `step` (0-based)."""
    if step < config.warmup_steps:
        return config.start_lr + (config.lr - config.start_lr) * step / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    decay_steps = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / decay_steps, 1.0)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, config: PretrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR whose factor times config.lr is learning_rate(step); the optimizer's lr must be config.lr."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(step, config) / config.lr)
