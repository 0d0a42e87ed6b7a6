"""The bundled benchmark: Fashion-MNIST idx reading, exact labels where objects were pasted, seeds, cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saccade.data.anchor_photos import ANCHOR_PHOTOS
from saccade.data.bundled import BUNDLED_PHOTOS, DEFAULT_SOURCES
from saccade.data.extra_photos import EXTRA_PHOTOS
from saccade.evaluate.benchmark import (
    BENCHMARKS,
    FASHION_MNIST_DIR,
    BenchmarkConfig,
    build_benchmark,
    load_backgrounds,
    load_fashion_mnist,
    paste_object,
)
from saccade.evaluate.sources import BACKGROUND_SOURCE, catalogue_backgrounds
from tests.evaluate.fakes import (
    default_backgrounds_installed,
    fake_backgrounds,
    write_background_folder,
    write_fake_debian_backgrounds,
    write_fake_fashion,
    write_idx,
)

SMALL = BenchmarkConfig(task="segmentation", scene_px=48, num_train=12, num_test=6, object_px=(12, 24))


@pytest.fixture()
def fashion(tmp_path) -> Path:
    return write_fake_fashion(tmp_path / "fashion")


def build(config, fashion, **kwargs):
    return build_benchmark(config, fashion_root=fashion, backgrounds=fake_backgrounds(), use_cache=False, **kwargs)


def silhouette(item: torch.Tensor, size: int, threshold: int) -> torch.Tensor:
    """Independent re-derivation of where an item of `size` px is opaque."""
    resized = F.interpolate(item.float()[None, None], size=(size, size), mode="bilinear", align_corners=False)
    return resized[0, 0] >= threshold


def test_fashion_reader(fashion):
    items, labels = load_fashion_mnist("train", fashion)
    assert items.shape == (40, 28, 28) and items.dtype == torch.uint8
    assert labels.shape == (40,) and labels.dtype == torch.int64
    assert load_fashion_mnist("test", fashion)[0].shape == (20, 28, 28)


def test_fashion_reader_errors_name_the_file(tmp_path, fashion):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path / "nowhere")
    write_idx(fashion / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8), magic=2049)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is not an idx file"):
        load_fashion_mnist("test", fashion)
    write_idx(fashion / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8), magic=2051)
    with pytest.raises(ValueError, match="3 test images but 20 labels"):
        load_fashion_mnist("test", fashion)


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_package():
    items, labels = load_fashion_mnist("test")
    assert items.shape == (10_000, 28, 28) and sorted(labels.unique().tolist()) == list(range(10))


def test_paste_writes_exactly_the_silhouette():
    generator = torch.Generator().manual_seed(0)
    scene, label = torch.rand(3, 40, 40, generator=generator), torch.zeros(40, 40, dtype=torch.uint8)
    before = scene.clone()
    item = torch.zeros(28, 28, dtype=torch.uint8)
    item[6:20, 9:17] = 200
    mask = paste_object(scene, label, item, class_id=7, top=5, left=9, size_px=21, tint=torch.tensor([1.0, 0.5, 0.2]))
    expected = torch.zeros(40, 40, dtype=torch.bool)
    expected[5:26, 9:30] = silhouette(item, 21, 24)
    assert torch.equal(mask, silhouette(item, 21, 24)) and int(mask.sum()) > 50
    assert torch.equal(label == 7, expected) and int(label[~expected].max()) == 0
    assert torch.equal((scene != before).any(dim=0), expected)
    with pytest.raises(ValueError, match="leaves the"):
        paste_object(scene, label, item, class_id=1, top=30, left=30, size_px=21, tint=torch.ones(3))


def test_labels_match_the_pasted_objects(fashion):
    items, _ = load_fashion_mnist("train", fashion)
    single = build(dataclasses.replace(SMALL, num_objects=(1, 1)), fashion)
    for scene, label, top, left, size, item_index in single.train_placements.tolist():
        expected = torch.zeros(48, 48, dtype=torch.bool)
        expected[top : top + size, left : left + size] = silhouette(items[item_index], size, SMALL.mask_threshold)
        labels = single.train.targets[scene]
        assert torch.equal(labels == label, expected) and torch.equal(labels != 0, expected)
    # With several objects, each scene's last object is on top: its whole silhouette carries its label.
    several = build(dataclasses.replace(SMALL, num_objects=(2, 3)), fashion)
    placements = several.train_placements
    for scene in range(SMALL.num_train):
        _, label, top, left, size, item_index = placements[placements[:, 0] == scene][-1].tolist()
        region = several.train.targets[scene, top : top + size, left : left + size]
        assert bool((region[silhouette(items[item_index], size, SMALL.mask_threshold)] == label).all())
    assert 1 <= int(several.train.targets.max()) <= 10


def test_build_is_deterministic_by_seed(fashion):
    first, again = build(SMALL, fashion), build(SMALL, fashion)
    other = build(dataclasses.replace(SMALL, seed=1), fashion)
    for split in ("train", "test"):
        a, b, c = (getattr(x, split) for x in (first, again, other))
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
        assert not torch.equal(a.images, c.images)
    assert first.train.images.shape == (12, 3, 48, 48) and first.test.targets.shape == (6, 48, 48)
    assert first.num_classes == 11 and first.class_names[0] == "background"


def test_classification_benchmark(fashion):
    config = dataclasses.replace(BENCHMARKS["fashion-cls"], scene_px=48, num_train=10, num_test=4, object_px=(12, 20))
    bench = build(config, fashion)
    assert bench.train.targets.shape == (10,) and bench.num_classes == 10
    assert torch.equal(bench.train.targets, bench.train_placements[:, 1])  # one object per scene: its class
    image, label = bench.train[0]
    assert image.shape == (3, 48, 48) and label.dtype == torch.int64
    with pytest.raises(ValueError, match=r"BenchmarkConfig.num_objects must be \(1, 1\)"):
        BenchmarkConfig(task="classification", num_objects=(1, 2))


def test_cache_round_trip_and_photo_split(tmp_path, fashion):
    photos = write_background_folder(tmp_path / "photos", num=5)
    built = build_benchmark(SMALL, fashion_root=fashion, backgrounds=photos, cache=tmp_path / "cache")
    files = list((tmp_path / "cache" / "benchmarks").glob("fashion-seg-*.safetensors"))
    assert len(files) == 1
    cached = build_benchmark(SMALL, fashion_root=fashion, backgrounds=photos, cache=tmp_path / "cache")
    assert torch.equal(built.test.images, cached.test.images) and torch.equal(built.train.targets, cached.train.targets)
    assert torch.equal(built.test_backgrounds, cached.test_backgrounds)
    assert cached.backgrounds == tuple(f"photo_{i}.png" for i in range(5))
    loaded = load_backgrounds(photos, test_photo_every=SMALL.test_photo_every)
    assert len(loaded.photos) == 5 and loaded.photos[0].shape == (3, 96, 120) and loaded.names[0] == "photo_0.png"
    assert loaded.train == (0, 1, 2, 4) and loaded.test == (3,)  # every 4th photo, sorted by name
    assert set(cached.train_backgrounds.tolist()) <= {0, 1, 2, 4} and set(cached.test_backgrounds.tolist()) == {3}


def test_no_pretraining_photo_set_holds_a_benchmark_test_photo():
    """The default test backgrounds are the catalogue's held-out photos: no saccade photo set trains on them."""
    test = {(p.source, p.relpath) for p in BUNDLED_PHOTOS if p.source == BACKGROUND_SOURCE and p.split == "heldout"}
    pretraining = (
        {(p.source, p.relpath) for p in BUNDLED_PHOTOS if p.split == "train"}  # the demo's, `--data bundled`
        | {(p.source, p.relpath) for p in ANCHOR_PHOTOS if p.split == "train"}  # the data-scarce experiments'
        | {(p.source, p.relpath) for p in EXTRA_PHOTOS}  # anchor-plus
    )
    assert len(test) >= 3 and not test & pretraining


@pytest.mark.parametrize("installed", [False, True], ids=["fake-package", "installed-package"])
def test_default_backgrounds_split_by_the_bundled_catalogue(tmp_path, fashion, installed):
    """Test scenes lie only on held-out catalogue photos, train scenes only on training ones, never the same."""
    if installed and not default_backgrounds_installed():
        pytest.skip(f"Debian package {BACKGROUND_SOURCE} not installed")
    root = "/" if installed else write_fake_debian_backgrounds(tmp_path / "debian")
    bench = build_benchmark(SMALL, fashion_root=fashion, debian_root=root, use_cache=False)
    behind = {
        split: {bench.backgrounds[i] for i in getattr(bench, f"{split}_backgrounds").tolist()}
        for split in ("train", "test")
    }
    catalogue = {p.image_id: p.split for p in BUNDLED_PHOTOS}
    assert behind["train"] and behind["test"] and not behind["train"] & behind["test"]
    assert {catalogue[name] for name in behind["train"]} == {"train"}
    assert {catalogue[name] for name in behind["test"]} == {"heldout"}
    assert bench.test_backgrounds.shape == (SMALL.num_test,)


def names(split: str, backgrounds) -> set[str]:
    return {backgrounds.names[i] for i in getattr(backgrounds, split)}


def test_catalogue_backgrounds_add_training_photos_of_other_sources_only(tmp_path, fashion):
    """More training photos behind train scenes; the test scenes' photos stay the benchmark's held-out ones."""
    if not default_backgrounds_installed():
        pytest.skip(f"Debian package {BACKGROUND_SOURCE} not installed")
    benchmark_only = catalogue_backgrounds()
    wider = catalogue_backgrounds(train_sources=DEFAULT_SOURCES)
    catalogue = {p.image_id: p for p in BUNDLED_PHOTOS}
    assert names("test", wider) == names("test", benchmark_only)
    assert {catalogue[name].source for name in names("test", wider)} == {BACKGROUND_SOURCE}
    assert names("train", benchmark_only) < names("train", wider)
    assert {catalogue[name].source for name in names("train", wider)} == {BACKGROUND_SOURCE, *DEFAULT_SOURCES}
    assert {catalogue[name].split for name in names("train", wider)} == {"train"}  # no held-out photo of any source
    bench = build_benchmark(SMALL, fashion_root=fashion, backgrounds=wider, use_cache=False)
    assert set(bench.test_backgrounds.tolist()) <= set(wider.test)
    assert set(bench.train_backgrounds.tolist()) <= set(wider.train)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task", "depth"),
        ("scene_px", 0),
        ("object_px", (40, 20)),
        ("background_crop", (0.5, 2.0)),
        ("mask_threshold", 300),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"BenchmarkConfig.{field}"):
        dataclasses.replace(SMALL, **{field: value})
