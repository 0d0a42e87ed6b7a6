"""Scenes with distillation targets for policy training and evaluation (uint8 scenes, raw teacher patches).

- 'bundled': crops of the bundled TRAIN photos with the bundled DINOv2-S/14's features, drawn as
  `saccade pretrain --data bundled` draws them (seed 0): the first N crops of the pretraining set.
- 'bundled-heldout': crops of the HELD-OUT photos (seed 1, as `--val-data bundled-heldout`; its first 64
  crops are the pretraining validation crops); never trained on.
Crops are drawn one after the other from one seeded stream, so N crops are the first N of any larger draw;
only the N asked for are computed and cached (the teacher costs about 50 ms per crop on one CPU thread).
- 'synthetic': smooth random scenes with a fixed random 'teacher' (smoke runs and tests).
Scene side = 16 x canvas grid and teacher input = teacher patch x canvas grid, as in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["DATA_SPECS", "SceneSet", "load_scenes"]

DATA_SPECS = ("bundled", "bundled-heldout", "synthetic")


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
    from saccade.data.bundled import bundled_files
    from saccade.data.crops import CropConfig, build_crop_distillation
    from saccade.teachers.dinov2_bundled import cache_dir, load_bundled_dinov2

    teacher = load_bundled_dinov2()
    heldout = spec == "bundled-heldout"
    count = num_scenes or (64 if heldout else 10_000)
    crops = CropConfig(
        num_crops=count,
        size_px=canvas_grid * 16,
        teacher_px=canvas_grid * teacher.patch_size,
        seed=1 if heldout else seed,
    )
    paths = [path for _, path in bundled_files("heldout" if heldout else "train")]
    dataset = build_crop_distillation(paths, teacher, crops, teacher_name=teacher.name, cache_dir=cache_dir())
    return SceneSet(dataset.scenes, dataset.patches)
