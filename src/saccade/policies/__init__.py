"""Glimpse policies: where the model looks next, per step and per batch item (paper §5-6; spec §2).

A policy is built for one batch and one episode; `step(t, state)` returns the Viewpoint of glimpse t
for every batch item, given (only EG-C2F uses it) the model state before that glimpse. Stochastic
policies draw from an explicit `torch.Generator` on that generator's device (CPU or CUDA), so a seeded
generator replays an episode exactly. Names follow the official package, with the paper's as aliases:

| paper | name | length |
| --- | --- | --- |
| R-IID | `random` | unbounded |
| F-IID | `full_then_random` | unbounded |
| RFS | `repeated_full_scene` | unbounded |
| C2F | `coarse_to_fine` | sum of 4^l over levels (21 for 3) |
| F2C | `fine_to_coarse` | same |
| EG-C2F | `entropy_coarse_to_fine` | same |
| - | `fixed` | the given sequence |
| - | `oracle` | unbounded: greedy on MEASURED one-step gains (`score_candidates`, saccade.envs.MeasuredGains) |
| - | `learned` | unbounded: greedy on gains predicted by a `GainRegressor` (`regressor`, `load_gain_regressor`) |
| - | `learned` + `order="coarse_to_fine"` | 21: C2F levels, each level's tiles by predicted gain |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from saccade.geometry import Viewpoint
from saccade.policies.entropy import EntropyCoarseToFine
from saccade.policies.fixed import FixedPolicy
from saccade.policies.greedy import GreedyPolicy, oracle
from saccade.policies.learned import GainRegressor, learned, load_gain_regressor, save_gain_regressor
from saccade.policies.quadtree import QuadtreePolicy, coarse_to_fine, fine_to_coarse
from saccade.policies.random import FullThenRandom, RandomPolicy, RepeatedFullScene

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = [
    "PAPER_NAMES",
    "POLICIES",
    "EntropyCoarseToFine",
    "FixedPolicy",
    "FullThenRandom",
    "GainRegressor",
    "GreedyPolicy",
    "Policy",
    "QuadtreePolicy",
    "RandomPolicy",
    "RepeatedFullScene",
    "load_gain_regressor",
    "make_policy",
    "save_gain_regressor",
]


@runtime_checkable
class Policy(Protocol):
    """Chooses the next viewpoint of every batch item; one instance per batch and episode."""

    batch_size: int
    num_steps: int | None  # None: no length limit

    def reset(self) -> None:
        """Start a new episode with the same settings (random streams continue, they do not restart)."""
        ...

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint [B] of glimpse t, from the model state before that glimpse (None if unused)."""
        ...


PAPER_NAMES: dict[str, str] = {
    "R-IID": "random",
    "F-IID": "full_then_random",
    "RFS": "repeated_full_scene",
    "C2F": "coarse_to_fine",
    "F2C": "fine_to_coarse",
    "EG-C2F": "entropy_coarse_to_fine",
}

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "random": RandomPolicy,
    "full_then_random": FullThenRandom,
    "repeated_full_scene": RepeatedFullScene,
    "coarse_to_fine": coarse_to_fine,
    "fine_to_coarse": fine_to_coarse,
    "entropy_coarse_to_fine": EntropyCoarseToFine,
    "fixed": FixedPolicy,
    "oracle": oracle,
    "learned": learned,
}

# name -> factory(batch_size, *, generator, device, **policy kwargs), official names and paper aliases.
POLICIES: dict[str, Callable[..., Policy]] = {
    **_FACTORIES,
    **{alias: _FACTORIES[name] for alias, name in PAPER_NAMES.items()},
}


def make_policy(
    name: str,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> Policy:
    """Build the policy `name` (official name or paper alias) for one batch and episode.

    Extra keyword arguments go to the policy: `s_min`, `s_max` (R-IID, F-IID), `num_levels` (C2F, F2C,
    EG-C2F), `canvas_to_probs`, `from_logits` (EG-C2F), `viewpoints` (fixed), `score_candidates`,
    `candidates` (oracle), `regressor`, `epsilon`, `order` (learned).
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](batch_size, generator=generator, device=device, **kwargs)
