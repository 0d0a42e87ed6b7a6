"""Distillation sets of the bundled benchmark's scenes, labels unused: what a robot's unlabeled images of its own
world would be (issue 19), with the bundled teacher's features, cached on disk.

The scenes come from a build of the benchmark of their own seed (`SCENE_SEED_OFFSET` + seed), so they are other
compositions than the evaluation's: training scenes paste training Fashion-MNIST items on the bundled training
photos; held-out scenes paste test items on the held-out photos, which pretraining never sees (the evaluation's
test split draws on those same pools, with its own seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from safetensors.torch import load_file, save_file
from torch import Tensor

from saccade._io import atomic_write, cache_dir
from saccade.data.crops import CropDistillationSet, teacher_features

__all__ = ["SCENE_SEED_OFFSET", "benchmark_scene_sets"]

SCENE_SEED_OFFSET = 1_000
"""A pretraining set of seed s is the benchmark built with seed 1,000 + s, never the evaluation's own build."""
SPLITS = ("train", "heldout")


def benchmark_scene_sets(
    benchmark: str,
    *,
    canvas_grid: int,
    num_train: int,
    num_heldout: int,
    seed: int = 0,
    train_sources: Sequence[str] = (),
) -> tuple[CropDistillationSet, CropDistillationSet]:
    """(train, held-out) scenes of the named benchmark (a BENCHMARKS key), 16 x canvas_grid px, with the bundled
    teacher's features at its patch size x canvas_grid px; labels are dropped. `train_sources`: bundled catalogue
    sources whose training photos are behind training scenes too (`catalogue_backgrounds`); the held-out scenes
    stay on the benchmark's held-out photos. Objects keep their size relative to the scene: at another scene side
    than the benchmark's, their sides scale with it."""
    from saccade.evaluate.benchmark import BENCHMARKS, build_benchmark
    from saccade.evaluate.sources import catalogue_backgrounds
    from saccade.teachers.dinov2_bundled import load_bundled_dinov2

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {sorted(BENCHMARKS)}")
    benchmark_config, scene_px = BENCHMARKS[benchmark], 16 * canvas_grid
    low, high = (max(1, round(side * scene_px / benchmark_config.scene_px)) for side in benchmark_config.object_px)
    config = dataclasses.replace(
        benchmark_config,
        scene_px=scene_px,
        object_px=(low, high),
        num_train=num_train,
        num_test=num_heldout,
        seed=SCENE_SEED_OFFSET + seed,
    )
    teacher = load_bundled_dinov2()
    teacher_px = teacher.patch_size * canvas_grid
    fingerprint = {"benchmark": config.to_dict(), "teacher": teacher.name, "teacher_px": teacher_px}
    if train_sources:  # the key of a benchmark-photos-only set stays what it was
        fingerprint["train_sources"] = sorted(set(train_sources))
    key = json.dumps(fingerprint, sort_keys=True)
    cache_file = cache_dir() / f"scenes-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
    if cache_file.is_file():
        tensors = load_file(cache_file)
    else:
        backgrounds = catalogue_backgrounds(train_sources=train_sources)
        tensors = _scene_features(build_benchmark(config, backgrounds=backgrounds), teacher, teacher_px)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda tmp: save_file(tensors, tmp))
    names = ("scenes", "patches", "cls", "photo_index")
    train, heldout = (CropDistillationSet(*(tensors[f"{split}.{name}"] for name in names)) for split in SPLITS)
    return train, heldout


def _scene_features(built, teacher, teacher_px: int) -> dict[str, Tensor]:
    """{"<split>.scenes" uint8 [N, 3, S, S], ".patches", ".cls" (teacher features), ".photo_index" [N]}."""
    tensors: dict[str, Tensor] = {}
    splits = ((built.train.images, built.train_backgrounds), (built.test.images, built.test_backgrounds))
    for split, (scenes, photos) in zip(SPLITS, splits, strict=True):
        patches, cls = teacher_features(teacher, scenes, teacher_px=teacher_px)
        tensors |= {f"{split}.scenes": scenes, f"{split}.patches": patches, f"{split}.cls": cls}
        tensors[f"{split}.photo_index"] = photos
    return tensors
