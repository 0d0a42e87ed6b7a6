"""Measured one-step gains of candidate viewpoints: every candidate glimpse run from the same state.

Candidates are folded into the batch (scene b, candidate k -> row b * K + k) and run in chunks of at most
`max_batch` rows, so measuring K candidates for B scenes costs B * K glimpse steps in few forwards.
`MeasuredGains` is the oracle's scorer (a `CandidateScorer`); with `keep_states` the states after each
candidate are kept (`last_states`), so that a caller acting on one of them needs no further forward.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from saccade.envs.objectives import Objective
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.canvit import RecurrentState, as_canvit

__all__ = ["MeasuredGains", "cat_states", "expand_state", "iter_candidate_chunks", "select_states", "step_candidates"]


def expand_state(state: RecurrentState, repeats: int) -> RecurrentState:
    """Each batch item repeated `repeats` times in a row: [B] -> [B * repeats]."""
    return RecurrentState(
        canvas=state.canvas.repeat_interleave(repeats, dim=0),  # [B*K, R + G*G, D_cv]
        recurrent_cls=state.recurrent_cls.repeat_interleave(repeats, dim=0),  # [B*K, 1, D_bb]
        num_canvas_registers=state.num_canvas_registers,
    )


def select_states(states: RecurrentState, rows: Tensor | slice) -> RecurrentState:
    """The batch rows `rows` (an index tensor [B'] or a slice) of a state."""
    return RecurrentState(
        canvas=states.canvas[rows],
        recurrent_cls=states.recurrent_cls[rows],
        num_canvas_registers=states.num_canvas_registers,
    )


def cat_states(parts: list[RecurrentState]) -> RecurrentState:
    """Batch rows of several states, in order."""
    return RecurrentState(
        canvas=torch.cat([p.canvas for p in parts]),
        recurrent_cls=torch.cat([p.recurrent_cls for p in parts]),
        num_canvas_registers=parts[0].num_canvas_registers,
    )


def iter_candidate_chunks(
    model: nn.Module,
    scenes: Tensor,
    state: RecurrentState,
    candidates: Tensor,
    *,
    glimpse_px: int,
    max_batch: int = 128,
) -> Iterator[tuple[slice, RecurrentState]]:
    """Per chunk of scenes: (their slice, states [n * K] after each candidate [K, 3], row b * K + k)."""
    canvit = as_canvit(model)
    B, K = scenes.shape[0], candidates.shape[0]
    if state.batch_size != B:
        raise ValueError(f"state has batch {state.batch_size}, scenes have batch {B}")
    scenes_per_chunk = max(1, max_batch // K)
    for start in range(0, B, scenes_per_chunk):
        stop = min(B, start + scenes_per_chunk)
        n = stop - start
        # no_grad is entered and left within the step, never held across the yield
        with torch.no_grad():
            chunk_state = expand_state(select_states(state, slice(start, stop)), K)  # [n*K]
            viewpoint = Viewpoint.from_yxs(candidates.to(scenes.device).repeat(n, 1))  # [n*K] candidate-fastest
            images = scenes[start:stop].repeat_interleave(K, dim=0)  # [n*K, C, H, W]
            glimpse = sample_glimpse(images, viewpoint, glimpse_px)  # [n*K, C, S, S]
            after = canvit(glimpse, chunk_state, viewpoint).state
        yield slice(start, stop), after


def step_candidates(
    model: nn.Module,
    scenes: Tensor,
    state: RecurrentState,
    candidates: Tensor,
    *,
    glimpse_px: int,
    max_batch: int = 128,
) -> RecurrentState:
    """States [B * K] after glimpsing each candidate [K, 3] of scenes [B, C, H, W] from `state` [B]; row b*K + k."""
    chunks = iter_candidate_chunks(model, scenes, state, candidates, glimpse_px=glimpse_px, max_batch=max_batch)
    return cat_states([states for _, states in chunks])


class MeasuredGains:
    """Scorer of the oracle: the measured gain [B, K] = score(after candidate) - score(now), per scene."""

    def __init__(
        self,
        model: nn.Module,
        scenes: Tensor,
        prepared_targets: Tensor,
        objective: Objective,
        *,
        glimpse_px: int,
        max_batch: int = 128,
        keep_states: bool = False,
    ) -> None:
        if scenes.ndim != 4 or len(prepared_targets) != len(scenes):
            raise ValueError(
                f"scenes must be [B, C, H, W] with one target each, got {tuple(scenes.shape)} and "
                f"{len(prepared_targets)} targets"
            )
        self.model, self.scenes, self.targets, self.objective = model, scenes, prepared_targets, objective
        self.glimpse_px, self.max_batch, self.keep_states = glimpse_px, max_batch, keep_states
        self.last_states: RecurrentState | None = None  # [B*K] states after each candidate of the last call
        self.last_scores: Tensor | None = None  # [B, K] scores after each candidate

    @torch.no_grad()
    def __call__(self, state: RecurrentState, history: Tensor, candidates: Tensor) -> Tensor:
        """[B, K] measured gains of `candidates` [K, 3] from `state` (the history is not needed)."""
        B, K = self.scenes.shape[0], candidates.shape[0]
        before = self.objective.score(state, self.targets)  # [B]
        after = torch.empty(B, K, device=before.device)
        kept = []
        chunks = iter_candidate_chunks(
            self.model, self.scenes, state, candidates, glimpse_px=self.glimpse_px, max_batch=self.max_batch
        )
        for rows, states in chunks:
            targets = self.targets[rows].repeat_interleave(K, dim=0)  # [n*K, ...]
            after[rows] = self.objective.score(states, targets).reshape(-1, K)  # [n, K]
            if self.keep_states:
                kept.append(states)
        self.last_states = cat_states(kept) if kept else None
        self.last_scores = after
        return after - before[:, None]
