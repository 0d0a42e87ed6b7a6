"""Crops of few photos with teacher features: deterministic by seed, cached, shaped for distillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saccade.data.crops import CropConfig, build_crop_distillation, random_crops
from saccade.teachers import TeacherOutput


class PoolTeacher:
    """A stand-in teacher: 8 x 8 average-pooled pixels as 'features'."""

    name, patch_size, dim = "pool", 14, 3
    calls = 0

    def __call__(self, images):
        PoolTeacher.calls += 1
        patches = torch.nn.functional.avg_pool2d(images, 14).permute(0, 2, 3, 1)  # [B, 8, 8, 3]
        return TeacherOutput(cls=patches.mean(dim=(1, 2)), patches=patches)


@pytest.fixture()
def photo_paths(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(200, 150), (160, 240)]):
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_crops_are_deterministic_and_from_every_photo(photo_paths):
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    config = CropConfig(num_crops=40, size_px=32, seed=3)
    a, index_a = random_crops(photos, config)
    b, index_b = random_crops(photos, config)
    assert torch.equal(a, b) and torch.equal(index_a, index_b)
    assert a.shape == (40, 3, 32, 32) and a.dtype == torch.uint8
    assert set(index_a.tolist()) == {0, 1}
    c, _ = random_crops(photos, CropConfig(num_crops=40, size_px=32, seed=4))
    assert not torch.equal(a, c)


def test_build_and_cache(photo_paths, tmp_path):
    config = CropConfig(num_crops=10, size_px=64, teacher_px=112, seed=0)
    PoolTeacher.calls = 0
    first = build_crop_distillation(photo_paths, PoolTeacher(), config, teacher_name="pool", cache_dir=tmp_path)
    calls = PoolTeacher.calls
    second = build_crop_distillation(photo_paths, PoolTeacher(), config, teacher_name="pool", cache_dir=tmp_path)
    assert PoolTeacher.calls == calls, "the cache was not used"
    scene, patches, cls = second[3]
    assert scene.shape == (3, 64, 64) and patches.shape == (8, 8, 3) and cls.shape == (3,)
    assert torch.equal(first.patches, second.patches)
    torch.testing.assert_close(patches.mean(dim=(0, 1)), cls, atol=1e-2, rtol=0)


def test_bad_crop_config():
    with pytest.raises(ValueError, match="min_side_frac"):
        CropConfig(num_crops=1, min_side_frac=0)
    with pytest.raises(ValueError, match="num_crops"):
        CropConfig(num_crops=0)


def test_round_robin_visits_photos_in_turn(photo_paths):
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    _, index = random_crops(photos, CropConfig(num_crops=7, size_px=16, photo_order="round_robin"))
    assert index.tolist() == [0, 1, 0, 1, 0, 1, 0]


def test_flip_mirrors_the_crop_before_the_teacher(photo_paths):
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    plain, _ = random_crops(photos, CropConfig(num_crops=1, size_px=32, seed=5))
    flipped, _ = random_crops(photos, CropConfig(num_crops=1, size_px=32, seed=5, hflip_prob=1.0))
    assert torch.equal(flipped, plain.flip(-1))


def test_color_jitter_changes_colours_not_geometry(photo_paths):
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    plain, index = random_crops(photos, CropConfig(num_crops=1, size_px=32, seed=5))
    jittered, index_j = random_crops(photos, CropConfig(num_crops=1, size_px=32, seed=5, color_jitter=0.4))
    assert torch.equal(index, index_j) and not torch.equal(plain, jittered)
    # same crop: the per-pixel ranking of brightness barely moves under brightness / contrast / saturation
    gray_plain, gray_jittered = plain.float().mean(1).flatten(), jittered.float().mean(1).flatten()
    assert torch.corrcoef(torch.stack([gray_plain, gray_jittered]))[0, 1] > 0.9


def test_mosaics_tile_four_crops_of_drawn_photos():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    photos = [Image.new("RGB", (40, 30), colour) for colour in colours]
    scenes, index = random_crops(photos, CropConfig(num_crops=20, size_px=16, mosaic_prob=1.0, seed=3))
    quadrants = scenes.unflatten(2, (2, 8)).unflatten(4, (2, 8))  # [N, 3, 2, 8, 2, 8]
    means = quadrants.float().mean((3, 5))  # [N, 3, 2, 2]: each quadrant is one photo's colour
    assert torch.equal(quadrants.float().amax((3, 5)), means)
    top_left = [colours.index(tuple(int(c) for c in means[n, :, 0, 0])) for n in range(20)]
    assert top_left == index.tolist()
    assert any(len({tuple(means[n, :, i, j].tolist()) for i in (0, 1) for j in (0, 1)}) > 1 for n in range(20))
    plain, _ = random_crops(photos, CropConfig(num_crops=20, size_px=16, seed=3))
    assert not torch.equal(plain, scenes)


@pytest.mark.parametrize(
    ("field", "value"),
    [("hflip_prob", 1.5), ("color_jitter", 1.0), ("photo_order", "zigzag"), ("mosaic_prob", -0.1)],
)
def test_bad_augmentations_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        CropConfig(num_crops=1, **{field: value})
