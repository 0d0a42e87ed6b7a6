"""Greedy one-step policies over a grid of candidate viewpoints: the oracle and the learned policy.

At every step a scorer rates each candidate viewpoint from the model state before the glimpse and the
viewpoints seen so far, and each batch item goes to its best candidate (the first on ties). With the
measured one-step gain of every candidate as the score (`saccade.envs.MeasuredGains`, which needs the
targets) this is the ORACLE, the upper bound of one-step greedy policies; with the gain predicted by a
`GainRegressor` it is the LEARNED policy. `epsilon` > 0 picks a uniformly random candidate instead with
that probability (exploration while collecting training data). No length limit.

With `order="coarse_to_fine"` the choice is restricted to the C2F schedule: the candidates must be the
quadtree tiles of levels 0 .. L-1, step t belongs to the level C2F would be at, and each item picks the
best-scored tile of that level it has not visited yet (EG-C2F with a score in place of the entropy);
the policy then lasts sum of 4^l steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from saccade.geometry import Viewpoint
from saccade.policies._common import check_batch_size, check_generator, check_step, draw_device, output_device
from saccade.policies.candidates import candidate_grid
from saccade.policies.quadtree import level_of_step

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = ["CandidateScorer", "GreedyPolicy", "oracle"]

# (state before the glimpse, history [B, t, 3], candidates [K, 3]) -> scores [B, K], higher is better
CandidateScorer = Callable[["RecurrentState", Tensor, Tensor], Tensor]
GreedyOrder = Literal["free", "coarse_to_fine"]


def _quadtree_levels(candidates: Tensor) -> tuple[Tensor, list[int]]:
    """([K] level of each candidate, levels 0 .. L-1) for a grid of whole quadtree levels, else ValueError."""
    levels = torch.round(-torch.log2(candidates[:, 2])).long()  # [K]
    num_levels = int(levels.max()) + 1
    expected = candidate_grid(tuple(range(num_levels)), device=candidates.device)
    if candidates.shape != expected.shape or not torch.allclose(candidates, expected, atol=1e-6):
        raise ValueError("order='coarse_to_fine' needs the quadtree candidates candidate_grid((0, .., L-1))")
    return levels, list(range(num_levels))


class GreedyPolicy:
    """Each step: score every candidate viewpoint, go to the best one (per batch item)."""

    def __init__(
        self,
        batch_size: int,
        *,
        score_candidates: CandidateScorer,
        candidates: Tensor | None = None,
        epsilon: float = 0.0,
        order: GreedyOrder = "free",
        name: str = "greedy",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if order not in ("free", "coarse_to_fine"):
            raise ValueError(f"order must be 'free' or 'coarse_to_fine', got {order!r}")
        if not callable(score_candidates):
            raise TypeError(f"score_candidates must be callable, got {type(score_candidates).__name__}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.batch_size = check_batch_size(batch_size)
        self.num_steps: int | None = None
        self.score_candidates = score_candidates
        self.generator = check_generator(generator)
        self.device = output_device(generator, device)
        self.candidates = (candidate_grid() if candidates is None else candidates).float().to(self.device)  # [K, 3]
        if self.candidates.ndim != 2 or self.candidates.shape[1] != 3 or len(self.candidates) == 0:
            raise ValueError(f"candidates must be [K, 3] (y, x, scale) with K >= 1, got {tuple(self.candidates.shape)}")
        Viewpoint.from_yxs(self.candidates)  # validates the scales
        self.epsilon = float(epsilon)
        self.order = order
        if order == "coarse_to_fine":
            self._levels, self.levels = _quadtree_levels(self.candidates)
            self.num_steps = sum(4**level for level in self.levels)
        self.name = name
        self.reset()

    def reset(self) -> None:
        """Forget the viewpoints seen; the next step must be t = 0 (random streams continue)."""
        self._next_t = 0
        self.history = torch.zeros(self.batch_size, 0, 3, device=self.device)  # [B, t, 3]
        self.last_scores: Tensor | None = None  # [B, K] of the latest decision
        self._visited = torch.zeros(self.batch_size, len(self.candidates), dtype=torch.bool, device=self.device)

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint for step t, the best candidate under the scorer given `state` (before this glimpse)."""
        check_step(t, name=self.name, num_steps=self.num_steps, expected=self._next_t)
        if state is None:
            raise ValueError(f"{self.name} scores candidates from the model state: pass it to step({t}, state)")
        with torch.no_grad():
            scores = self.score_candidates(state, self.history, self.candidates)
        K = len(self.candidates)
        if not isinstance(scores, Tensor) or tuple(scores.shape) != (self.batch_size, K):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"score_candidates must return [B, K] = [{self.batch_size}, {K}] scores, got {got}")
        allowed = self._allowed(t)  # [B, K]
        scores = scores.float().to(self.device).masked_fill(~allowed, -torch.inf)
        choice = scores.argmax(dim=1)  # [B], first max on ties
        if self.epsilon > 0:
            where = draw_device(self.generator, self.device)
            explore = torch.rand(self.batch_size, generator=self.generator, device=where) < self.epsilon  # [B]
            noise = torch.rand(self.batch_size, K, generator=self.generator, device=where).to(self.device)
            random_choice = noise.masked_fill(~allowed, -1.0).argmax(dim=1)  # [B] uniform among the allowed
            choice = torch.where(explore.to(self.device), random_choice, choice)
        self._visited[torch.arange(self.batch_size, device=self.device), choice] = True
        viewpoints = self.candidates[choice]  # [B, 3]
        self.history = torch.cat([self.history, viewpoints[:, None]], dim=1)  # [B, t + 1, 3]
        self.last_scores = scores
        self._next_t += 1
        return Viewpoint.from_yxs(viewpoints.clone())

    def _allowed(self, t: int) -> Tensor:
        """[B, K] candidates open at step t: all, or the unvisited tiles of the current C2F level."""
        if self.order == "free":
            return torch.ones_like(self._visited)
        level, _ = level_of_step(t, self.levels)
        return (self._levels == level)[None] & ~self._visited


def oracle(
    batch_size: int,
    *,
    score_candidates: CandidateScorer,
    candidates: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> GreedyPolicy:
    """The greedy oracle: `score_candidates` MEASURES each candidate's one-step gain (saccade.envs.MeasuredGains)."""
    return GreedyPolicy(
        batch_size,
        score_candidates=score_candidates,
        candidates=candidates,
        name="oracle",
        generator=generator,
        device=device,
    )
