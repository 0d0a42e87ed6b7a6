"""The demo's unlabeled benchmark scenes (saccade.data.scene_sets): their own build, photos kept apart, cached."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saccade.data.scene_sets import SCENE_SEED_OFFSET, benchmark_scene_sets
from saccade.evaluate.benchmark import BENCHMARKS, FASHION_MNIST_DIR
from tests.evaluate.fakes import default_backgrounds_installed

pytestmark = pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR).is_dir() or not default_backgrounds_installed(),
    reason="the Debian packages of Fashion-MNIST and the background photos are not installed",
)


def test_scene_sets_are_their_own_build_on_apart_photos_and_cached(tmp_path, monkeypatch):
    from saccade.evaluate import benchmark as benchmark_module

    monkeypatch.setenv("SACCADE_CACHE_DIR", str(tmp_path))
    built = []
    real_build = benchmark_module.build_benchmark

    def recording_build(config, **kwargs):
        built.append(config)
        return real_build(config, **kwargs)

    monkeypatch.setattr(benchmark_module, "build_benchmark", recording_build)
    train, heldout = benchmark_scene_sets("fashion-seg", canvas_grid=4, num_train=6, num_heldout=3, seed=2)
    assert [config.seed for config in built] == [SCENE_SEED_OFFSET + 2]  # never the evaluation's own build
    assert built[0].seed != BENCHMARKS["fashion-seg"].seed
    low, high = BENCHMARKS["fashion-seg"].object_px  # on 128 px scenes; these are 64 px: objects at half the size
    assert built[0].object_px == (low // 2, high // 2)
    assert train.scenes.shape == (6, 3, 64, 64) and heldout.scenes.shape == (3, 3, 64, 64)
    assert train.patches.shape[:3] == (6, 4, 4)  # the teacher's patch grid is the canvas grid
    training_photos, heldout_photos = set(train.photo_index.tolist()), set(heldout.photo_index.tolist())
    assert not training_photos & heldout_photos
    again = benchmark_scene_sets("fashion-seg", canvas_grid=4, num_train=6, num_heldout=3, seed=2)
    assert len(built) == 1  # the second call reads the cache
    assert torch.equal(again[0].patches, train.patches) and torch.equal(again[1].scenes, heldout.scenes)
    wider, _ = benchmark_scene_sets(
        "fashion-seg", canvas_grid=4, num_train=40, num_heldout=3, seed=2, train_sources=("scikit-image",)
    )
    assert len(built) == 2  # another set, under its own cache key
    assert wider.photo_index.unique().numel() > 10  # more than the benchmark's 10 training photos
    with pytest.raises(ValueError, match="unknown benchmark 'fashion-xl'"):
        benchmark_scene_sets("fashion-xl", canvas_grid=4, num_train=6, num_heldout=3)
