"""ADE20K and ImageNet-style readers on tiny folders generated in the real layouts; bad folders name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saccade.evaluate.datasets import ADE20K, IMAGENET_MEAN, IMAGENET_STD, ImageFolderClassification, normalize
from tests.evaluate.fakes import write_ade20k, write_image_folder


def test_ade20k_items_and_reduced_labels(tmp_path):
    root = write_ade20k(tmp_path)
    val = ADE20K(tmp_path, "validation", size_px=32)  # the parent of ADEChallengeData2016 works too
    assert len(val) == 2 and len(ADE20K(root, "training", size_px=32)) == 3
    image, label = val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.shape == (32, 32) and label.dtype == torch.int64
    raw = np.asarray(Image.open(val.label_paths[0]))
    _, full = val.load_raw(0)
    # 0 ("other") -> 255 ignored, 1..150 -> 0..149, pixel for pixel at full size
    assert torch.equal(full, torch.from_numpy(np.where(raw == 0, 255, raw.astype(np.int64) - 1)))
    assert set(label.unique().tolist()) <= {255, 0, 6, 149}
    val.verify()


def test_ade20k_training_transform(tmp_path):
    write_ade20k(tmp_path)
    train = ADE20K(tmp_path, "training", size_px=24, train_transform=True, generator=torch.Generator().manual_seed(0))
    for index in range(len(train)):
        image, label = train[index]
        assert image.shape == (3, 24, 24) and label.shape == (24, 24)
        assert set(label.unique().tolist()) <= {255, 0, 6, 149}


def test_ade20k_missing_annotation_names_the_file(tmp_path):
    root = write_ade20k(tmp_path)
    victim = sorted((root / "annotations" / "validation").iterdir())[1]
    victim.unlink()
    with pytest.raises(ValueError, match=f"annotation .*{victim.name} is missing"):
        ADE20K(root, "validation")


def test_ade20k_missing_image_names_the_file(tmp_path):
    root = write_ade20k(tmp_path)
    victim = sorted((root / "images" / "training").iterdir())[0]
    victim.unlink()
    with pytest.raises(ValueError, match=f"image .*{victim.name} is missing"):
        ADE20K(root, "training")


def test_ade20k_missing_split_folder(tmp_path):
    with pytest.raises(ValueError, match="images/validation is missing"):
        ADE20K(tmp_path, "validation")


def test_ade20k_wrong_label_size_names_the_file(tmp_path):
    root = write_ade20k(tmp_path)
    dataset = ADE20K(root, "validation", size_px=16)
    Image.fromarray(np.ones((5, 7), np.uint8)).save(dataset.label_paths[1])
    dataset[0]  # the others still load
    with pytest.raises(ValueError, match=f"label image .*{dataset.label_paths[1].name} is 7x5 px but its image"):
        dataset[1]
    with pytest.raises(ValueError, match=dataset.label_paths[1].name):
        dataset.verify()


def test_ade20k_class_out_of_range_names_the_file(tmp_path):
    root = write_ade20k(tmp_path)
    dataset = ADE20K(root, "validation", size_px=16)
    height, width = dataset.load_raw(0)[0].shape[-2:]
    bad = np.zeros((height, width), np.uint8)
    bad[0, 0] = 151
    Image.fromarray(bad).save(dataset.label_paths[0])
    with pytest.raises(ValueError, match=rf"{dataset.label_paths[0].name} holds class ids \[151\] outside \[0, 150\]"):
        dataset[0]


def test_ade20k_rgb_label_is_rejected(tmp_path):
    root = write_ade20k(tmp_path)
    dataset = ADE20K(root, "validation", size_px=16)
    height, width = dataset.load_raw(0)[0].shape[-2:]
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(dataset.label_paths[0])
    with pytest.raises(ValueError, match="must be single-channel"):
        dataset[0]


def test_image_folder_classes_and_transforms(tmp_path):
    write_image_folder(tmp_path / "train", classes=("n01", "n02", "n03"))
    write_image_folder(tmp_path / "val", classes=("n01", "n03"))
    train = ImageFolderClassification(tmp_path / "train", size_px=16, train_transform=True)
    val = ImageFolderClassification(tmp_path / "val", size_px=16, resize_px=18, class_names=train.class_names)
    assert train.class_names == ["n01", "n02", "n03"] and train.num_classes == 3
    assert len(train) == 6 and len(val) == 4
    assert [label for _, label in val.samples] == [0, 0, 2, 2]  # the training split's ids
    image, label = val[2]
    assert image.shape == (3, 16, 16) and label == 2
    assert train[0][0].shape == (3, 16, 16)


def test_image_folder_errors_name_the_path(tmp_path):
    write_image_folder(tmp_path / "val", classes=("n01", "n09"))
    with pytest.raises(ValueError, match="n09 is not one of the 2 given class names"):
        ImageFolderClassification(tmp_path / "val", class_names=["n01", "n02"])
    (tmp_path / "val" / "n05").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*n05 holds no images"):
        ImageFolderClassification(tmp_path / "val")
    (tmp_path / "val" / "n05" / "broken.jpg").write_bytes(b"not a jpeg")
    dataset = ImageFolderClassification(tmp_path / "val", size_px=16)
    index = next(i for i, (path, _) in enumerate(dataset.samples) if path.name == "broken.jpg")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.jpg"):
        dataset[index]
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolderClassification(tmp_path / "nowhere")


def test_normalize():
    white = torch.full((3, 2, 2), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(normalize(white)[:, 0, 0], expected)
