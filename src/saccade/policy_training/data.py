"""Scenes with distillation targets for policy training and evaluation (uint8 scenes, raw teacher patches).

- a named crop set of saccade.data.distill_sets ('bundled', 'anchor', ... for training; 'bundled-heldout',
  'anchor-heldout' for evaluation: photos never trained on), with the bundled DINOv2-S/14's features, drawn
  as `saccade pretrain --data NAME` draws them: the first N crops of that set (seed 0 for the training sets).
Crops are drawn one after the other from one seeded stream, so N crops are the first N of any larger draw;
only the N asked for are computed and cached (the teacher costs about 50 ms per crop on one CPU thread).
- 'synthetic': smooth random scenes with a fixed random 'teacher' (smoke runs and tests).
Scene side = 16 x canvas grid and teacher input = teacher patch x canvas grid, as in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from saccade.data.specs import check_distillation_spec, open_distillation

__all__ = ["SceneSet", "load_scenes"]


@dataclass(frozen=True)
class SceneSet:
    """Scenes and their raw targets."""

    scenes: Tensor  # [N, 3, H, W] uint8, or float ImageNet-normalised
    targets: Tensor  # [N, h, w, D_t] raw teacher patches

    def __len__(self) -> int:
        return len(self.scenes)

    def subset(self, count: int | None) -> SceneSet:
        if count is None:
            return self
        if count > len(self):
            raise ValueError(f"asked for {count} scenes, the set has {len(self)}")
        return SceneSet(self.scenes[:count], self.targets[:count])


def load_scenes(spec: str, *, canvas_grid: int, num_scenes: int | None = None, seed: int = 0) -> SceneSet:
    """The first `num_scenes` scenes (all if None) of `spec` (see the module docstring)."""
    check_distillation_spec(spec, shards=False)
    data = open_distillation(spec, canvas_grid=canvas_grid, seed=seed, num_scenes=num_scenes)
    return SceneSet(data.scenes, data.patches)
