"""Glimpse policies: where the model looks next, per step and per batch item (paper §5-6; spec §2).

A policy is built for one batch and one episode; `step(t, state)` returns the Viewpoint of glimpse t
for every batch item, given (EG-C2F, the oracle and the learned policy use it) the model state before
that glimpse. Random-order policies draw from an explicit `torch.Generator` on that generator's device
(CPU or CUDA), so a seeded generator replays an episode exactly.

`POLICIES` (saccade.policies.registry) holds one PolicySpec per policy: its paper name, whether its order
is random (then it is run `num_runs` times, run r with seed + r; otherwise once), whether it starts with the
full scene, whether it can be a pretraining rollout, what it needs, and how to build it from a
PolicyContext. `make_policy(name, batch_size=..., **kwargs)` builds one directly. Adding a policy is one
module here plus one row in POLICIES.
"""

from __future__ import annotations

from saccade.policies.entropy import EntropyCoarseToFine
from saccade.policies.fixed import FixedPolicy
from saccade.policies.greedy import GreedyPolicy
from saccade.policies.learned import GainRegressor, load_gain_regressor, save_gain_regressor
from saccade.policies.quadtree import QuadtreePolicy
from saccade.policies.random import FullThenRandom, RandomPolicy, RepeatedFullScene
from saccade.policies.registry import (
    PAPER_NAMES,
    POLICIES,
    Policy,
    PolicyContext,
    PolicyName,
    PolicySpec,
    make_policy,
    resolve_policy,
    run_seeds,
    select_policies,
)

__all__ = [
    "PAPER_NAMES",
    "POLICIES",
    "EntropyCoarseToFine",
    "FixedPolicy",
    "FullThenRandom",
    "GainRegressor",
    "GreedyPolicy",
    "Policy",
    "PolicyContext",
    "PolicyName",
    "PolicySpec",
    "QuadtreePolicy",
    "RandomPolicy",
    "RepeatedFullScene",
    "load_gain_regressor",
    "make_policy",
    "resolve_policy",
    "run_seeds",
    "save_gain_regressor",
    "select_policies",
]
