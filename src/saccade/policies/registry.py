"""The policy registry: one `PolicySpec` per policy, holding its facts and its builder (paper §5-6; spec §2).

Every consumer (evaluation, distillation scoring, policy evaluation, pretraining rollouts, the demo) asks
the spec instead of keeping its own list of names:

| paper | name | random order | starts with the full scene | pretraining rollout | needs |
| --- | --- | --- | --- | --- | --- |
| R-IID | `random` | yes | no | yes | - |
| F-IID | `full_then_random` | yes | yes | yes | - |
| RFS | `repeated_full_scene` | no | yes | yes | - |
| C2F | `coarse_to_fine` | yes (tile order within a level) | yes | yes | - |
| F2C | `fine_to_coarse` | yes (tile order within a level) | no | no | - |
| EG-C2F | `entropy_coarse_to_fine` | no (ties broken by position) | yes | no | decoder |
| - | `fixed` | no | no | no | viewpoints |
| - | `oracle` | no | no | no | scorer |
| - | `learned` | no | no | no | regressor |

Runs: a random-order policy is run `num_runs` times, run r seeded with `seed + r` (`run_seeds`); a
deterministic one runs once, with `seed`. Evaluation, distillation scoring and policy evaluation all follow
this rule, so C2F and F2C (whose tile order within a level is random) are averaged over runs like R-IID.

A harness describes what it can offer in one `PolicyContext` (batch, episode length, generator, and the
optional decoder, scorer, regressor or viewpoints); `spec.build(ctx)` checks the needs and builds the policy.
A policy whose needs a run cannot meet is left out with one note (`select_policies`). The quadtree depth of
C2F, F2C and EG-C2F is derived from `ctx.num_glimpses`. Paper names (C2F, R-IID, ...) are accepted only at
the boundary, through `resolve_policy`.

Where to change what: a new policy is one module in saccade/policies plus one row in POLICIES below
(its facts, its constructor and its builder); nothing else names it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import torch
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.policies._common import check_batch_size, check_generator
from saccade.policies.entropy import EntropyCoarseToFine, check_canvas_grid
from saccade.policies.fixed import FixedPolicy
from saccade.policies.greedy import CandidateScorer, GreedyOrder, oracle
from saccade.policies.learned import GainRegressor, learned
from saccade.policies.quadtree import coarse_to_fine, fine_to_coarse, levels_for_steps
from saccade.policies.random import FullThenRandom, RandomPolicy, RepeatedFullScene, check_scale_range

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = [
    "NEEDS",
    "PAPER_NAMES",
    "POLICIES",
    "Need",
    "Policy",
    "PolicyContext",
    "PolicyName",
    "PolicySpec",
    "make_policy",
    "resolve_policy",
    "run_seeds",
    "select_policies",
]

PolicyName = Literal[
    "random",
    "full_then_random",
    "repeated_full_scene",
    "coarse_to_fine",
    "fine_to_coarse",
    "entropy_coarse_to_fine",
    "fixed",
    "oracle",
    "learned",
]
Need = Literal["decoder", "scorer", "regressor", "viewpoints"]
NEEDS: dict[Need, str] = {
    "decoder": "a decoder of per-cell class scores from the canvas (e.g. a segmentation probe)",
    "scorer": "a candidate scorer (e.g. the measured one-step gains, saccade.envs.MeasuredGains)",
    "regressor": "a trained gain regressor (load_gain_regressor)",
    "viewpoints": "a viewpoint sequence to replay",
}
"""What a policy can need beyond the batch and the episode, and how a skip note describes it."""


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


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"PolicyContext.{name} must be callable or None, got {type(value).__name__}")


@dataclass(frozen=True, kw_only=True)
class PolicyContext:
    """What a harness offers the policies of one batch and episode; its checks run once, here."""

    batch_size: int
    """B, the scenes steered together."""
    num_glimpses: int = 21
    """The most steps the policy is asked for; sets the quadtree depth of C2F, F2C and EG-C2F."""
    canvas_grid: int | None = None
    """G of the canvas the decoder reads; when given, EG-C2F checks that its tiles cover whole cells."""
    device: torch.device | str | None = None
    """Where viewpoints are returned (default: the generator's device, else CPU)."""
    generator: torch.Generator | None = None
    """The random stream of random-order policies (None: torch's global one)."""
    min_scale: float = 0.05
    """Smallest viewpoint scale of R-IID and F-IID."""
    decoder: Callable[[RecurrentState], Tensor] | None = None
    """Model state -> per-cell class LOGITS [B, C, G, G] (EG-C2F's entropy source)."""
    scorer: CandidateScorer | None = None
    """(state, history [B, t, 3], candidates [K, 3]) -> scores [B, K] (the oracle)."""
    candidates: Tensor | None = None
    """[K, 3] candidate viewpoints of the scorer (default: the 21 quadtree tiles of levels 0-2)."""
    regressor: GainRegressor | None = None
    """The learned policy's gain regressor."""
    learned_order: GreedyOrder = "free"
    """The learned policy's schedule: free, or held to the C2F levels ("learned-C2F")."""
    viewpoints: Tensor | Sequence[Viewpoint] | None = None
    """[T, B, 3] or T Viewpoints, replayed by the fixed policy."""

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if isinstance(self.num_glimpses, bool) or not isinstance(self.num_glimpses, int) or self.num_glimpses < 1:
            raise ValueError(f"PolicyContext.num_glimpses must be a positive int, got {self.num_glimpses!r}")
        grid = self.canvas_grid
        if grid is not None and (isinstance(grid, bool) or not isinstance(grid, int) or grid < 1):
            raise ValueError(f"PolicyContext.canvas_grid must be a positive int or None, got {grid!r}")
        check_generator(self.generator)
        check_scale_range(self.min_scale, 1.0)
        for name in ("decoder", "scorer"):
            _check_callable(name, getattr(self, name))
        if self.regressor is not None and not isinstance(self.regressor, GainRegressor):
            raise TypeError(f"PolicyContext.regressor must be a GainRegressor, got {type(self.regressor).__name__}")
        if self.learned_order not in get_args(GreedyOrder):
            raise ValueError(f"PolicyContext.learned_order must be one of {get_args(GreedyOrder)}")

    @property
    def num_levels(self) -> int:
        """Quadtree levels a coarse-to-fine policy needs to last num_glimpses steps."""
        return levels_for_steps(self.num_glimpses)

    @property
    def provided(self) -> frozenset[Need]:
        """The needs this context covers."""
        return frozenset(need for need in get_args(Need) if getattr(self, need) is not None)


def _no_check(ctx: PolicyContext) -> None:
    """Nothing beyond the context's own checks."""


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """One policy: its facts, its constructor (direct use) and its builder from a PolicyContext."""

    name: PolicyName
    """Official name (the registry key)."""
    paper_name: str | None
    """The paper's name (C2F, R-IID, ...), None for saccade's own policies."""
    description: str
    """One line for help texts."""
    random_order: bool
    """Its viewpoints or their order are drawn from the generator: it gets num_runs runs."""
    starts_with_full_scene: bool
    """Its first glimpse is the whole scene (the paper's 't = 0, one glimpse' point)."""
    pretraining_rollout: bool
    """Usable as a pretraining rollout: drawn for the whole batch without the model state."""
    needs: frozenset[Need] = frozenset()
    """What the context must provide beyond batch and episode."""
    factory: Callable[..., Policy]
    """The constructor: factory(batch_size, *, generator, device, **the policy's own keyword arguments)."""
    builder: Callable[[PolicyContext], Policy]
    """The policy from a context whose needs are covered (use `build`, which checks them)."""
    check: Callable[[PolicyContext], None] = _no_check
    """Episode constraints beyond the needs (EG-C2F: its tiles cover whole canvas cells); ValueError if unmet."""

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(get_args(Need))
        if unknown:
            raise ValueError(f"PolicySpec {self.name!r}: unknown needs {sorted(unknown)}; choose from {get_args(Need)}")
        if self.pretraining_rollout and self.needs:
            raise ValueError(
                f"PolicySpec {self.name!r}: a pretraining rollout is drawn for the whole batch without the model "
                f"state, so it cannot need {sorted(self.needs)}"
            )

    @property
    def label(self) -> str:
        """Name in reports: the paper's, else the official one."""
        return self.paper_name or self.name

    def missing(self, provided: Collection[Need]) -> frozenset[Need]:
        """The needs that `provided` leaves uncovered."""
        return self.needs - frozenset(provided)

    def skip_note(self, provided: Collection[Need]) -> str | None:
        """The one note saying why this policy cannot run with `provided`, or None if it can."""
        missing = sorted(self.missing(provided))
        if not missing:
            return None
        return f"{self.label} skipped: it needs {' and '.join(NEEDS[need] for need in missing)}, which was not given"

    def build(self, ctx: PolicyContext) -> Policy:
        """This policy for the batch and episode of `ctx`; ValueError naming what is missing."""
        note = self.skip_note(ctx.provided)
        if note is not None:
            raise ValueError(note.replace(" skipped: it needs", " needs", 1))
        self.check(ctx)
        return self.builder(ctx)


def _check_entropy_tiles(ctx: PolicyContext) -> None:
    """EG-C2F decodes the canvas per tile: the deepest level's tiles must cover whole canvas cells."""
    if ctx.canvas_grid is None or ctx.num_levels == 1:
        return
    level = ctx.num_levels - 1
    try:
        check_canvas_grid((ctx.canvas_grid, ctx.canvas_grid), level)
    except ValueError as error:
        raise ValueError(
            f"EG-C2F over {ctx.num_glimpses} glimpses reaches quadtree level {level}, and {error}"
        ) from None


def _random_kwargs(ctx: PolicyContext) -> dict[str, Any]:
    return {"s_min": ctx.min_scale, "generator": ctx.generator, "device": ctx.device}


def _quadtree_kwargs(ctx: PolicyContext) -> dict[str, Any]:
    return {"num_levels": ctx.num_levels, "generator": ctx.generator, "device": ctx.device}


POLICIES: dict[PolicyName, PolicySpec] = {
    "random": PolicySpec(
        name="random",
        paper_name="R-IID",
        description="an independent safe-box viewpoint per step and item, p(s) ∝ 1 - s",
        random_order=True,
        starts_with_full_scene=False,
        pretraining_rollout=True,
        factory=RandomPolicy,
        builder=lambda ctx: RandomPolicy(ctx.batch_size, **_random_kwargs(ctx)),
    ),
    "full_then_random": PolicySpec(
        name="full_then_random",
        paper_name="F-IID",
        description="the full scene, then R-IID",
        random_order=True,
        starts_with_full_scene=True,
        pretraining_rollout=True,
        factory=FullThenRandom,
        builder=lambda ctx: FullThenRandom(ctx.batch_size, **_random_kwargs(ctx)),
    ),
    "repeated_full_scene": PolicySpec(
        name="repeated_full_scene",
        paper_name="RFS",
        description="the full scene at every step (the recurrence-only control)",
        random_order=False,
        starts_with_full_scene=True,
        pretraining_rollout=True,
        factory=RepeatedFullScene,
        builder=lambda ctx: RepeatedFullScene(ctx.batch_size, generator=ctx.generator, device=ctx.device),
    ),
    "coarse_to_fine": PolicySpec(
        name="coarse_to_fine",
        paper_name="C2F",
        description="quadtree levels coarsest first, tiles in a random order within each level",
        random_order=True,
        starts_with_full_scene=True,
        pretraining_rollout=True,
        factory=coarse_to_fine,
        builder=lambda ctx: coarse_to_fine(ctx.batch_size, **_quadtree_kwargs(ctx)),
    ),
    "fine_to_coarse": PolicySpec(
        name="fine_to_coarse",
        paper_name="F2C",
        description="quadtree levels finest first, tiles in a random order within each level",
        random_order=True,
        starts_with_full_scene=False,
        pretraining_rollout=False,
        factory=fine_to_coarse,
        builder=lambda ctx: fine_to_coarse(ctx.batch_size, **_quadtree_kwargs(ctx)),
    ),
    "entropy_coarse_to_fine": PolicySpec(
        name="entropy_coarse_to_fine",
        paper_name="EG-C2F",
        description="C2F levels, each level's tiles by greatest mean predictive entropy of the decoded canvas",
        random_order=False,
        starts_with_full_scene=True,
        pretraining_rollout=False,
        needs=frozenset({"decoder"}),
        factory=EntropyCoarseToFine,
        builder=lambda ctx: EntropyCoarseToFine(
            ctx.batch_size, canvas_to_probs=ctx.decoder, from_logits=True, num_levels=ctx.num_levels, device=ctx.device
        ),
        check=_check_entropy_tiles,
    ),
    "fixed": PolicySpec(
        name="fixed",
        paper_name=None,
        description="a given viewpoint sequence, replayed",
        random_order=False,
        starts_with_full_scene=False,
        pretraining_rollout=False,
        needs=frozenset({"viewpoints"}),
        factory=FixedPolicy,
        builder=lambda ctx: FixedPolicy(ctx.batch_size, viewpoints=ctx.viewpoints, device=ctx.device),
    ),
    "oracle": PolicySpec(
        name="oracle",
        paper_name=None,
        description="greedy on the measured one-step gain of every candidate",
        random_order=False,
        starts_with_full_scene=False,
        pretraining_rollout=False,
        needs=frozenset({"scorer"}),
        factory=oracle,
        builder=lambda ctx: oracle(
            ctx.batch_size, score_candidates=ctx.scorer, candidates=ctx.candidates, device=ctx.device
        ),
    ),
    "learned": PolicySpec(
        name="learned",
        paper_name=None,
        description="greedy on the one-step gains a GainRegressor predicts",
        random_order=False,
        starts_with_full_scene=False,
        pretraining_rollout=False,
        needs=frozenset({"regressor"}),
        factory=learned,
        builder=lambda ctx: learned(
            ctx.batch_size, regressor=ctx.regressor, order=ctx.learned_order, generator=ctx.generator, device=ctx.device
        ),
    ),
}

PAPER_NAMES: dict[str, PolicyName] = {spec.paper_name: name for name, spec in POLICIES.items() if spec.paper_name}
"""Paper name -> official name (derived from the specs)."""


def resolve_policy(name: str) -> PolicyName:
    """The official name of a policy given by its official or paper name; ValueError naming the choices."""
    if name in POLICIES:
        return name  # type: ignore[return-value]
    for official, spec in POLICIES.items():
        if spec.paper_name == name:
            return official
    choices = sorted([*POLICIES, *(spec.paper_name for spec in POLICIES.values() if spec.paper_name)])
    raise ValueError(f"unknown policy {name!r}; choose one of {choices}")


def select_policies(names: Iterable[str], provided: Collection[Need]) -> tuple[tuple[PolicyName, ...], tuple[str, ...]]:
    """(official names of the policies whose needs `provided` covers, one note per policy left out)."""
    kept, notes = [], []
    for name in names:
        official = resolve_policy(name)
        note = POLICIES[official].skip_note(provided)
        if note is None:
            kept.append(official)
        else:
            notes.append(note)
    return tuple(kept), tuple(notes)


def run_seeds(spec: PolicySpec, *, num_runs: int, seed: int) -> list[int]:
    """Seeds of a policy's runs: seed, seed + 1, ..., seed + num_runs - 1 if its order is random, else [seed]."""
    return [seed + run for run in range(num_runs if spec.random_order else 1)]


def make_policy(
    name: str,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> Policy:
    """Build the policy `name` (official or paper name) directly from its constructor's keyword arguments.

    Extra keyword arguments go to the policy: `s_min`, `s_max` (R-IID, F-IID), `num_levels` (C2F, F2C,
    EG-C2F), `canvas_to_probs`, `from_logits` (EG-C2F), `viewpoints` (fixed), `score_candidates`,
    `candidates` (oracle), `regressor`, `epsilon`, `order` (learned). Harnesses use `POLICIES[name].build(ctx)`.
    """
    return POLICIES[resolve_policy(name)].factory(batch_size, generator=generator, device=device, **kwargs)
