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

from saccade.data.distill_sets import DISTILLATION_SETS

__all__ = ["DATA_SPECS", "SceneSet", "load_scenes"]

DATA_SPECS = (*DISTILLATION_SETS, "synthetic")


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
    if spec not in DATA_SPECS:
        raise ValueError(f"unknown scene data {spec!r}; choose one of {list(DATA_SPECS)}")
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        count = num_scenes or 256
        data = synthetic_dataset(count, scene_px=canvas_grid * 16, grid=canvas_grid, dim=32, seed=seed)
        return SceneSet(data.scenes, data.patches)
    return _bundled(spec, canvas_grid=canvas_grid, num_scenes=num_scenes, seed=seed)


def _bundled(spec: str, *, canvas_grid: int, num_scenes: int | None, seed: int) -> SceneSet:
    from saccade.data.distill_sets import distillation_crops

    overrides = {"num_crops": num_scenes} if num_scenes else {}
    dataset = distillation_crops(spec, canvas_grid=canvas_grid, seed=seed, **overrides)
    return SceneSet(dataset.scenes, dataset.patches)
