"""Scenes: preprocessing semantics, image folders, unreadable files, and the bundled photo set and its split."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from saccade.data.bundled import BUNDLED_PHOTOS, DEFAULT_SOURCES, bundled_files, bundled_scenes
from saccade.data.scenes import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolderScenes,
    UnreadableImageError,
    denormalize,
    preprocess,
)
from tests.datasets.helpers import make_image_folder


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def test_preprocess_resizes_the_short_side_and_center_crops(generator):
    pixels = torch.randint(0, 256, (20, 45, 3), generator=generator, dtype=torch.uint8).numpy()  # H=20, W=45
    image = Image.fromarray(pixels)
    out = preprocess(image, 10)
    resized = np.asarray(image.resize((22, 10), Image.Resampling.BILINEAR))  # long side int(10 * 45 / 20) = 22
    torch.testing.assert_close(out, _normalise(resized[:, 6:16].copy()))  # left = round((22 - 10) / 2) = 6
    tall = preprocess(Image.fromarray(pixels.transpose(1, 0, 2).copy()), 10)  # H=45, W=20
    torch.testing.assert_close(tall, out.transpose(1, 2), rtol=0, atol=0.02)


def test_preprocess_modes_and_normalisation():
    gray = Image.new("L", (30, 30), 128)
    out = preprocess(gray, 14)
    assert out.shape == (3, 14, 14) and out.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 0, 0], expected)
    rgba = preprocess(Image.new("RGBA", (16, 16), (255, 0, 0, 10)), 16)
    torch.testing.assert_close(denormalize(rgba)[:, 3, 3], torch.tensor([1.0, 0.0, 0.0]))


def test_image_folder(tmp_path):
    make_image_folder(tmp_path, 8)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / ".hidden" / "skip.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "UPPER.JPG")
    scenes = ImageFolderScenes(tmp_path, size_px=28)
    assert len(scenes) == 9
    assert scenes.image_ids == sorted(scenes.image_ids)
    assert "group1/img001.jpg" in scenes.image_ids and "UPPER.JPG" in scenes.image_ids
    assert {i.rsplit(".", 1)[1] for i in scenes.image_ids} == {"png", "jpg", "webp", "JPG"}
    scene = scenes[3]
    assert scene.image.shape == (3, 28, 28)
    assert scene.content_sha256 == hashlib.sha256(scenes.path(3).read_bytes()).hexdigest()
    assert scenes.fingerprint()["num_images"] == 9


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"scene folder {tmp_path / 'nope'} does not exist"):
        ImageFolderScenes(tmp_path / "nope", size_px=28)
    with pytest.raises(ValueError, match=f"no .* images under {tmp_path}"):
        ImageFolderScenes(tmp_path, size_px=28)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    scenes = ImageFolderScenes(tmp_path, size_px=28)
    with pytest.raises(UnreadableImageError, match=f"cannot read image {tmp_path / 'bad.png'}"):
        scenes[0]
    with pytest.raises(ValueError, match="size_px must be >= 1, got 0"):
        ImageFolderScenes(tmp_path, size_px=0)


def test_bundled_split_never_shares_a_photo():
    train = {p.photo for p in BUNDLED_PHOTOS if p.split == "train"}
    heldout = {p.photo for p in BUNDLED_PHOTOS if p.split == "heldout"}
    assert train and heldout and not train & heldout
    pair = [p for p in BUNDLED_PHOTOS if p.photo == "motorcycle"]
    assert len(pair) == 2 and len({p.split for p in pair}) == 1
    assert len({p.image_id for p in BUNDLED_PHOTOS}) == len(BUNDLED_PHOTOS)
    for source in (*DEFAULT_SOURCES, "lomiri-wallpapers-16.04", "labelme-examples"):
        splits = {p.split for p in BUNDLED_PHOTOS if p.source == source}
        assert splits == {"train", "heldout"} or source in ("matplotlib",), source


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("skimage", "sklearn", "matplotlib")),
    reason="the default bundled scenes need scikit-image, scikit-learn and matplotlib (pip install 'saccade[scenes]')",
)
def test_bundled_default_sources_load():
    train, heldout = bundled_files("train"), bundled_files("heldout")
    assert len(train) == 16 and len(heldout) == 6
    assert not {p for p, _ in train} & {p for p, _ in heldout}
    scenes = bundled_scenes("heldout", size_px=28)
    assert scenes.image_ids[0] == "scikit-image/chelsea"
    scene = scenes[0]
    assert scene.image.shape == (3, 28, 28) and torch.isfinite(scene.image).all()
    assert len(bundled_scenes("all", size_px=28)) == 22


def test_bundled_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"apt-get install lomiri-wallpapers-16\.04"):
        bundled_files("train", sources=["lomiri-wallpapers-16.04"], debian_root=tmp_path)
    with pytest.raises(ValueError, match=r"unknown bundled scene sources \['imagenet'\]"):
        bundled_files("train", sources=["imagenet"])
    with pytest.raises(ValueError, match="split must be 'train', 'heldout' or 'all', got 'test'"):
        bundled_files("test")  # type: ignore[arg-type]


def test_16_bit_greyscale_png_is_scaled_to_8_bit(tmp_path):
    gradient = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)  # [H, W]
    Image.fromarray(gradient).save(tmp_path / "deep.png")  # PIL reads it back as mode I;16
    Image.fromarray((gradient / 257).round().astype(np.uint8)).save(tmp_path / "flat.png")
    scenes = ImageFolderScenes(tmp_path, size_px=20)
    deep, flat = scenes[0].image, scenes[1].image
    torch.testing.assert_close(deep, flat, rtol=0, atol=1.01 / 255 / min(IMAGENET_STD))
    with pytest.raises(ValueError, match=r"image mode F \(32-bit float\) is not supported"):
        preprocess(Image.fromarray(np.zeros((8, 8), dtype=np.float32)), 8)


def test_source_names_are_the_literal_the_command_line_offers():
    from typing import get_args

    from saccade.data.bundled import SOURCES, SourceName

    assert set(get_args(SourceName)) == set(SOURCES)
