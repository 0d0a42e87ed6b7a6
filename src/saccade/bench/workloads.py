"""The timed work of each case, built identically for either implementation from shared weights and inputs.

Weights are our initialisation plus N(0, 0.02^2) noise on every parameter (so LayerNorms, LayerScales and
the canvas inits are all non-trivial and an agreement check means something), saved once per case with
`save_pretrained` and loaded by each implementation. Inputs are seeded: glimpses ~ N(0, 1), centres in
[-0.5, 0.5]^2, scales in [0.25, 0.75].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saccade.bench.config import Case, GlimpseCase, PretrainCase
from saccade.bench.implementations import Implementation
from saccade.model.canvit import CanViT
from saccade.model.checkpoint import save_pretrained
from saccade.model.config import preset
from saccade.model.pretraining import CanViTForPretraining

__all__ = ["Episode", "Workload", "make_episode", "make_workload", "save_shared_weights"]

WEIGHT_NOISE_STD = 0.02
PRETRAIN_LR = 1e-4
PRETRAIN_WEIGHT_DECAY = 1e-4


@dataclass(frozen=True)
class Episode:
    """Seeded inputs of a case."""

    glimpses: Tensor  # [T, B, 3, S, S]
    centers: Tensor  # [T, B, 2] (y, x)
    scales: Tensor  # [T, B]
    target_patches: Tensor | None  # [B, G*G, D_t] standardized teacher patches (pretraining only)
    target_cls: Tensor | None  # [B, D_t]


@dataclass(frozen=True)
class Workload:
    """`run()` is what gets timed; `outputs()` gives the tensors compared across implementations."""

    run: Callable[[], object]
    outputs: Callable[[], dict[str, Tensor]]


def save_shared_weights(case: Case, folder: Path, *, seed: int) -> Path:
    """Random weights for `case`'s model, saved in our format (the authors' 0.2 key names)."""
    config = preset(case.model)
    with torch.random.fork_rng():  # the constructors' inits draw from the global RNG
        torch.manual_seed(seed)
        if isinstance(case, PretrainCase):
            model: nn.Module = CanViTForPretraining(
                config, teacher_dim=case.teacher_dim, teacher_patch_grid=case.canvas_grid
            )
        else:
            model = CanViT(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator), alpha=WEIGHT_NOISE_STD)
    return save_pretrained(model, folder)


def make_episode(case: Case, *, seed: int) -> Episode:
    generator = torch.Generator().manual_seed(seed + 1)
    T = case.num_glimpses if isinstance(case, PretrainCase) else 2
    B, S = case.batch_size, case.glimpse_px
    glimpses = torch.randn(T, B, 3, S, S, generator=generator)
    centers = torch.rand(T, B, 2, generator=generator) - 0.5
    scales = torch.rand(T, B, generator=generator) * 0.5 + 0.25
    if not isinstance(case, PretrainCase):
        return Episode(glimpses, centers, scales, None, None)
    target_patches = torch.randn(B, case.canvas_grid**2, case.teacher_dim, generator=generator)
    target_cls = torch.randn(B, case.teacher_dim, generator=generator)
    return Episode(glimpses, centers, scales, target_patches, target_cls)


def make_workload(implementation: Implementation, folder: Path, case: Case, episode: Episode) -> Workload:
    """Load the shared weights into `implementation` and close over the case's inputs."""
    model = implementation.load(folder)
    if isinstance(case, GlimpseCase):
        return _glimpse_workload(implementation, model, case, episode)
    return _pretrain_workload(implementation, model, case, episode)


def _glimpse_workload(
    implementation: Implementation, model: nn.Module, case: GlimpseCase, episode: Episode
) -> Workload:
    """The second glimpse of an episode, from the state the first one left, without autograd."""
    with torch.no_grad():
        state = implementation.init_state(model, case.batch_size, case.canvas_grid)
        state = implementation.glimpse(model, episode.glimpses[0], state, episode.centers[0], episode.scales[0]).state

    def run():
        with torch.no_grad():
            return implementation.glimpse(model, episode.glimpses[1], state, episode.centers[1], episode.scales[1])

    def outputs() -> dict[str, Tensor]:
        out = run()
        return {"canvas": out.canvas, "recurrent_cls": out.recurrent_cls, "glimpse_patches": out.glimpse_patches}

    return Workload(run=run, outputs=outputs)


def _pretrain_workload(
    implementation: Implementation, model: nn.Module, case: PretrainCase, episode: Episode
) -> Workload:
    """T glimpses from a fresh canvas with patch + CLS MSE after each, backward, one AdamW step."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=PRETRAIN_WEIGHT_DECAY)
    assert episode.target_patches is not None and episode.target_cls is not None

    def forward() -> tuple[Tensor, Tensor, Tensor]:
        state = implementation.init_state(model.canvit, case.batch_size, case.canvas_grid)
        loss = torch.zeros(())
        for t in range(case.num_glimpses):
            glimpse, centers, scales = episode.glimpses[t], episode.centers[t], episode.scales[t]
            state = implementation.glimpse(model.canvit, glimpse, state, centers, scales).state
            patches, cls = implementation.readouts(model, state)  # [B, G*G, D_t], [B, D_t]
            loss = loss + F.mse_loss(patches, episode.target_patches) + F.mse_loss(cls, episode.target_cls)
        return loss, patches, cls

    def run() -> Tensor:
        loss, _, _ = forward()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def outputs() -> dict[str, Tensor]:
        """Loss, last predictions and every gradient of one forward and backward (no optimizer step)."""
        loss, patches, cls = forward()
        loss.backward()
        grads = {f"grad {name}": p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.detach(), "patches": patches.detach(), "cls": cls.detach(), **grads}

    return Workload(run=run, outputs=outputs)
