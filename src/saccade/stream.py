"""Live inference: a CanViT and its recurrent state, fed one glimpse at a time (paper §4, "any-time" readout).

`rollout` (saccade.episode) drives a whole episode from a policy over scenes that are all in memory; a
stream is the same step for callers that choose each viewpoint themselves and may only have the glimpse
(a camera's fovea, a robot's crop) when it arrives. Each call returns the `Step` a rollout would
yield, and the canvas, recurrent CLS and any readout can be read between glimpses. No autograd
(torch.no_grad, as in `rollout`), on whatever device the model is on.

    stream = GlimpseStream(model, canvas_grid=8, glimpse_px=32)
    stream.reset(batch_size=1)
    step = stream.look(scene, viewpoint)       # sample the glimpse from a scene [B, 3, H, W]
    step = stream.observe(glimpse, viewpoint)  # or give the glimpse pixels [B, 3, g, g]
    stream.canvas, stream.predict_teacher_patches(), stream.probe(my_probe)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.episode import Step
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.canvit import RecurrentState, as_canvit
from saccade.model.pretraining import CanViTForPretraining

__all__ = ["GlimpseStream"]


class GlimpseStream:
    """A model plus the recurrent state of one batch of episodes; `observe` / `look` advance it by a glimpse."""

    def __init__(
        self,
        model: nn.Module,
        *,
        canvas_grid: int,
        glimpse_px: int,
        device: torch.device | str | None = None,
    ) -> None:
        """model: a CanViT or anything holding one as `.canvit` (a CanViTForPretraining adds teacher readouts).

        device: moves the model there (default: where its parameters are); inputs are moved to it.
        """
        canvit = as_canvit(model)
        patch = canvit.config.backbone.patch_size
        if not isinstance(glimpse_px, int) or glimpse_px < patch or glimpse_px % patch:
            raise ValueError(f"glimpse_px must be a positive multiple of the {patch} px patch, got {glimpse_px!r}")
        positive_int("canvas_grid", canvas_grid)
        if device is not None:
            model.to(device)
        self.model = model
        self.canvit = canvit
        self.canvas_grid = canvas_grid
        self.glimpse_px = glimpse_px
        self.device = next(canvit.parameters()).device
        self._state: RecurrentState | None = None
        self._last: Step | None = None
        self._num_glimpses = 0

    # -- episode -----------------------------------------------------------------------------------

    @torch.no_grad()
    def reset(self, batch_size: int = 1, *, state: RecurrentState | None = None) -> RecurrentState:
        """Start new episodes: a fresh canvas for `batch_size` items, or continue from `state`."""
        if state is None:
            state = self.canvit.init_state(batch_size=batch_size, canvas_grid=self.canvas_grid)
        elif not isinstance(state, RecurrentState):
            raise TypeError(f"state must be a RecurrentState, got {type(state).__name__}")
        elif state.canvas_grid != self.canvas_grid:
            raise ValueError(f"state has canvas grid {state.canvas_grid}, this stream uses {self.canvas_grid}")
        self._state = RecurrentState(
            canvas=state.canvas.to(self.device),
            recurrent_cls=state.recurrent_cls.to(self.device),
            num_canvas_registers=state.num_canvas_registers,
        )
        self._last = None
        self._num_glimpses = 0
        return self._state

    @torch.no_grad()
    def observe(self, glimpse: Tensor, viewpoint: Viewpoint) -> Step:
        """Advance by one glimpse: pixels [B, 3, g, g] (ImageNet-normalised) seen at `viewpoint` [B]."""
        state = self.state
        if not isinstance(viewpoint, Viewpoint):
            raise TypeError(f"viewpoint must be a saccade.Viewpoint, got {type(viewpoint).__name__}")
        if not isinstance(glimpse, Tensor):
            raise TypeError(f"glimpse must be a torch.Tensor, got {type(glimpse).__name__}")
        g = self.glimpse_px
        if glimpse.ndim != 4 or tuple(glimpse.shape[1:]) != (3, g, g):
            raise ValueError(f"glimpse must be [B, 3, {g}, {g}] for this stream, got {tuple(glimpse.shape)}")
        if glimpse.shape[0] != state.batch_size or viewpoint.batch_size != state.batch_size:
            raise ValueError(
                f"the stream was reset for batch {state.batch_size}, got a glimpse of batch {glimpse.shape[0]} "
                f"and a viewpoint of batch {viewpoint.batch_size}; call reset(batch_size) to change it"
            )
        glimpse, viewpoint = glimpse.to(self.device), viewpoint.to(self.device)
        output = self.canvit(glimpse, state, viewpoint)
        step = Step(t=self._num_glimpses, viewpoint=viewpoint, glimpse=glimpse, output=output)
        self._state, self._last = output.state, step
        self._num_glimpses += 1
        return step

    @torch.no_grad()
    def look(self, scene: Tensor, viewpoint: Viewpoint) -> Step:
        """Sample the glimpse of `scene` [B, 3, H, W] at `viewpoint` (as `rollout` does), then `observe` it."""
        if not isinstance(scene, Tensor) or scene.ndim != 4:
            shape = tuple(scene.shape) if isinstance(scene, Tensor) else type(scene).__name__
            raise ValueError(f"scene must be [B, 3, H, W], got {shape}")
        if not isinstance(viewpoint, Viewpoint):
            raise TypeError(f"viewpoint must be a saccade.Viewpoint, got {type(viewpoint).__name__}")
        scene = scene.to(self.device)
        return self.observe(sample_glimpse(scene, viewpoint.to(self.device), self.glimpse_px), viewpoint)

    # -- what can be read at any step ------------------------------------------------------------------

    @property
    def state(self) -> RecurrentState:
        """The state after the last glimpse (the fresh state before the first)."""
        if self._state is None:
            raise RuntimeError("the stream has no state yet: call reset(batch_size) first")
        return self._state

    @property
    def canvas(self) -> Tensor:
        """[B, R + G*G, D_cv] float32."""
        return self.state.canvas

    @property
    def recurrent_cls(self) -> Tensor:
        """[B, 1, D_bb]."""
        return self.state.recurrent_cls

    @property
    def batch_size(self) -> int:
        return self.state.batch_size

    @property
    def num_glimpses(self) -> int:
        """Glimpses observed since the last reset."""
        return self._num_glimpses

    @property
    def last_step(self) -> Step | None:
        """The Step of the last glimpse (None right after a reset)."""
        return self._last

    @property
    def has_readouts(self) -> bool:
        """Whether the model carries teacher readouts (a CanViTForPretraining)."""
        return isinstance(self.model, CanViTForPretraining)

    @torch.no_grad()
    def predict_teacher_patches(self, *, destandardize: bool = False) -> Tensor:
        """[B, G*G, D_t] teacher patch features predicted from the canvas (standardized unless `destandardize`)."""
        model = self._pretraining_model()
        predictions = model.predict_teacher_patches(self.state)
        if not destandardize:
            return predictions
        model.check_grid(self.canvas_grid)
        return model.teacher_patch_standardizer.destandardize(predictions)

    @torch.no_grad()
    def predict_teacher_cls(self, *, destandardize: bool = False) -> Tensor:
        """[B, D_t] teacher CLS predicted from the recurrent CLS (standardized unless `destandardize`)."""
        model = self._pretraining_model()
        predictions = model.predict_teacher_cls(self.state)
        return model.teacher_cls_standardizer.destandardize(predictions) if destandardize else predictions

    @torch.no_grad()
    def probe(self, probe: Callable[[RecurrentState], Tensor]) -> Tensor:
        """Any readout of the current state (a segmentation head on the canvas, a classifier on the CLS...)."""
        if not callable(probe):
            raise TypeError(f"probe must be callable on a RecurrentState, got {type(probe).__name__}")
        return probe(self.state)

    def _pretraining_model(self) -> CanViTForPretraining:
        if not isinstance(self.model, CanViTForPretraining):
            raise TypeError(
                f"teacher readouts need a CanViTForPretraining, this stream holds a {type(self.model).__name__}; "
                "use probe(fn) for other readouts"
            )
        return self.model
