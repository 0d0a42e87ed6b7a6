"""Named distillation sets of the bundled photos: crops plus the bundled teacher's features, cached on disk.

| name | photos | crops |
| --- | --- | --- |
| `bundled` | bundled training photos (saccade.data.bundled), augmented (below) | 10,000, training seed |
| `bundled-heldout` | bundled held-out photos | 64, seed 1 |
| `anchor` | the anchor experiment's 38 training photos (saccade.data.anchor_photos) | 20,000, seed 2 |
| `anchor-augmented` | the same 38 photos, augmented crops (below) | 20,000, seed 2 |
| `anchor-mosaic` | the 38 photos, augmented, half the scenes 2 x 2 mosaics of four crops | 20,000, seed 2 |
| `anchor-plus` | the 38 photos + 71 more training images (saccade.data.extra_photos), augmented | 20,000, seed 2 |
| `anchor-heldout` | its 10 held-out photos, in turn (6-7 crops each) | 64, seed 1 |
| `anchor-seen` | fresh crops of its 38 training photos | 64, seed 3 |

`bundled`, `anchor-augmented` and `anchor-plus` crops (saccade's data-scarce recipe, docs/data-scarce.md) start
at 0.25 (not 0.4) x the short side, are mirrored with probability 0.5 and colour-jittered (brightness, contrast,
saturation x U[0.6, 1.4]) BEFORE the teacher sees them, so the targets are recomputed for every augmented scene.

Scenes are `16 * canvas_grid` px and the teacher sees them at `patch_size * canvas_grid` px, so its patch grid
is the canvas grid (128 px scenes, 112 px teacher input, 8 x 8 for the small CPU recipes).
"""

from __future__ import annotations

from dataclasses import replace

from saccade._io import cache_dir
from saccade.data.crops import CropConfig, CropDistillationSet, build_crop_distillation

__all__ = ["DISTILLATION_SETS", "distillation_crops"]

AUGMENTED = CropConfig(num_crops=1, min_side_frac=0.25, hflip_prob=0.5, color_jitter=0.4)

DISTILLATION_SETS = (
    "bundled",
    "bundled-heldout",
    "anchor",
    "anchor-augmented",
    "anchor-mosaic",
    "anchor-plus",
    "anchor-heldout",
    "anchor-seen",
)


def _crops_and_photos(name: str, *, seed: int) -> tuple[CropConfig, list]:
    from saccade.data.anchor_photos import anchor_files
    from saccade.data.bundled import bundled_files
    from saccade.data.extra_photos import extra_files

    if name == "bundled":
        return replace(AUGMENTED, num_crops=10_000, seed=seed), [path for _, path in bundled_files("train")]
    if name == "bundled-heldout":
        return CropConfig(num_crops=64, seed=1), [path for _, path in bundled_files("heldout")]
    if name == "anchor":
        return CropConfig(num_crops=20_000, seed=2), anchor_files("train")
    if name == "anchor-augmented":
        return replace(AUGMENTED, num_crops=20_000, seed=2), anchor_files("train")
    if name == "anchor-mosaic":
        return replace(AUGMENTED, num_crops=20_000, seed=2, mosaic_prob=0.5), anchor_files("train")
    if name == "anchor-plus":
        return replace(AUGMENTED, num_crops=20_000, seed=2), anchor_files("train") + extra_files()
    if name == "anchor-heldout":
        return CropConfig(num_crops=64, seed=1, photo_order="round_robin"), anchor_files("heldout")
    if name == "anchor-seen":
        return CropConfig(num_crops=64, seed=3), anchor_files("train")
    raise ValueError(f"unknown distillation set {name!r}; known: {', '.join(DISTILLATION_SETS)}")


def distillation_crops(name: str, *, canvas_grid: int, seed: int = 0, **overrides) -> CropDistillationSet:
    """The named set (see the table) for a `canvas_grid` canvas; `overrides` replace CropConfig fields."""
    from saccade.teachers.dinov2_bundled import load_bundled_dinov2

    crops, paths = _crops_and_photos(name, seed=seed)
    teacher = load_bundled_dinov2()
    crops = replace(crops, size_px=16 * canvas_grid, teacher_px=teacher.patch_size * canvas_grid, **overrides)
    return build_crop_distillation(paths, teacher, crops, teacher_name=teacher.name, cache_dir=cache_dir())
