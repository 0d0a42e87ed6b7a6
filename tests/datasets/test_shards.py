"""Shard reader: random access equals the teacher, pairs, collate, and clear errors for damaged exports."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import DistillationPairs, ShardDataset, ShardError, TeacherFeatures, collate_pairs
from saccade.teachers.dinov2_bundled import sha256_file
from tests.datasets.helpers import SIZE_PX, make_image_folder, tiny_teacher


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[ImageFolderScenes, Path]:
    root = tmp_path_factory.mktemp("export")
    scenes = ImageFolderScenes(make_image_folder(root / "scenes", 11), size_px=SIZE_PX)
    export_features(
        scenes, tiny_teacher(), root / "out", config=ExportConfig(shard_size=4, batch_size=3), progress=False
    )
    return scenes, root / "out"


@pytest.fixture()
def damaged(export, tmp_path) -> Path:
    """A private copy of the export to break."""
    return Path(shutil.copytree(export[1], tmp_path / "out"))


def test_random_access_matches_the_teacher(export, generator):
    scenes, out = export
    features = TeacherFeatures(out)
    assert len(features) == 11 and features.grid == (2, 2) and features.dim == 16
    teacher = tiny_teacher()
    for i in torch.randperm(11, generator=generator).tolist():
        item = features[i]
        scene = scenes[item.position]
        expected = teacher(scene.image[None])
        assert item.position == i and item.image_id == scene.image_id == scenes.image_ids[i]
        assert item.content_sha256 == scene.content_sha256
        assert item.patches.dtype == torch.float16 and item.cls.dtype == torch.float32
        torch.testing.assert_close(item.cls, expected.cls[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(item.patches.float(), expected.patches[0], rtol=1e-3, atol=1e-3)
    assert features[-1].position == 10
    with pytest.raises(IndexError, match="feature index 11 out of range for 11 images"):
        features[11]


def test_pairs_collate_and_pickling(export):
    scenes, out = export
    pairs = DistillationPairs(scenes, TeacherFeatures(out))
    scene, targets = pairs[7]
    assert scene.image_id == targets.image_id and scene.image.shape == (3, SIZE_PX, SIZE_PX)
    images, batch = next(iter(DataLoader(pairs, batch_size=4, shuffle=True, collate_fn=collate_pairs)))
    assert images.shape == (4, 3, SIZE_PX, SIZE_PX) and batch.patches.shape == (4, 2, 2, 16)
    assert batch.cls.shape == (4, 16) and batch.patches.dtype == torch.float32
    image, patches, cls = ShardDataset(out)[7]  # scenes rebuilt from the source in the index
    torch.testing.assert_close(image, scene.image)
    torch.testing.assert_close(patches, targets.patches)
    torch.testing.assert_close(cls, targets.cls)
    clone = pickle.loads(pickle.dumps(pairs))  # DataLoader workers receive a pickled copy
    torch.testing.assert_close(clone[7][1].cls, targets.cls)


def test_iter_chunks_cover_everything(export):
    features = TeacherFeatures(export[1])
    chunks = list(features.iter_chunks(3))
    assert [c.cls.shape[0] for c in chunks] == [3, 1, 3, 1, 3]  # shards of 4, 4, 3
    assert sum(c.cls.shape[0] for c in features.iter_chunks(3, max_images=6)) == 6


def test_pairs_reject_other_scenes_and_changed_files(export, tmp_path):
    scenes, out = export
    features = TeacherFeatures(out)
    with pytest.raises(ValueError, match="size_px is 42, the export recorded 28"):
        DistillationPairs(ImageFolderScenes(scenes.root, size_px=42), features)
    copy = Path(shutil.copytree(scenes.root, tmp_path / "scenes"))
    changed = ImageFolderScenes(copy, size_px=SIZE_PX)
    changed.path(3).write_bytes(scenes.path(5).read_bytes())
    with pytest.raises(ValueError, match=f"image {changed.path(3)} changed since the export"):
        DistillationPairs(changed, features)[3]


def test_missing_index(tmp_path):
    with pytest.raises(ShardError, match=f"{tmp_path / 'index.json'} does not exist"):
        TeacherFeatures(tmp_path)
    (tmp_path / "index.json").write_text("{ not json")
    with pytest.raises(ShardError, match=f"cannot read the shard index {tmp_path / 'index.json'}"):
        TeacherFeatures(tmp_path)


def test_truncated_shard(damaged):
    path = damaged / "shard-000001.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ShardError, match=f"shard {path} has .* bytes but the index says"):
        TeacherFeatures(damaged)


def test_missing_shard(damaged):
    (damaged / "shard-000002.safetensors").unlink()
    with pytest.raises(ShardError, match=f"shard {damaged / 'shard-000002.safetensors'} listed in .* does not exist"):
        TeacherFeatures(damaged)


def test_corrupt_header(damaged):
    path = damaged / "shard-000000.safetensors"
    data = bytearray(path.read_bytes())
    data[8:20] = b"\xff" * 12  # same size, garbage JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=f"shard {path} is unreadable"):
        TeacherFeatures(damaged)


def test_corrupt_data_found_by_verify(damaged):
    path = damaged / "shard-000000.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the tensor data
    path.write_bytes(bytes(data))
    TeacherFeatures(damaged)  # the cheap checks cannot see it
    with pytest.raises(ShardError, match=f"shard {path} does not match the sha256"):
        TeacherFeatures(damaged, verify=True)


def test_index_disagreeing_with_shards(damaged):
    index = json.loads((damaged / "index.json").read_text())
    index["shards"][1]["num_images"] = 3
    index["shards"][1]["skipped"].append({"position": 7, "image_id": "img007.png", "reason": "edited"})
    (damaged / "index.json").write_text(json.dumps(index))
    path = damaged / "shard-000001.safetensors"
    with pytest.raises(ShardError, match=rf"shard {path} holds tensors .* but the index implies"):
        TeacherFeatures(damaged)
    index["shards"] = index["shards"][:2]
    (damaged / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardError, match=r"lists shards \[0, 1\], expected 0..2"):
        TeacherFeatures(damaged)


def _edit_index(root: Path, edit) -> None:
    index = json.loads((root / "index.json").read_text())
    edit(index)
    (root / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda index: index["plan"].update(num_shards=2) or index["shards"].pop(), "num_shards 2, but 11 images"),
        (lambda index: index["shards"].reverse(), r"lists shards \[2, 1, 0\], expected 0..2 in order"),
        (lambda index: index["shards"][0].update(file="shard-000001.safetensors"), "entry of shard 0 names"),
        (lambda index: index["shards"][2].update(first_position=7), "entry of shard 2 .* first position 7"),
    ],
    ids=["num_shards", "order", "file", "first_position"],
)
def test_edited_index_is_refused_at_open(damaged, edit, message):
    _edit_index(damaged, edit)
    with pytest.raises(ShardError, match=message):
        TeacherFeatures(damaged)


def test_swapped_shard_files_are_refused_at_open(damaged):
    first, second = damaged / "shard-000000.safetensors", damaged / "shard-000001.safetensors"
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())  # both hold 4 images: the same shapes
    second.write_bytes(data)

    def swap_sizes_and_digests(index):
        entries = index["shards"]
        for key in ("bytes", "sha256"):
            entries[0][key], entries[1][key] = entries[1][key], entries[0][key]

    _edit_index(damaged, swap_sizes_and_digests)
    with pytest.raises(ShardError, match=f"shard {first} holds shard 1, but the index lists it as 0"):
        TeacherFeatures(damaged)


def test_edited_sha256_is_found_on_first_read(damaged):
    _edit_index(damaged, lambda index: index["shards"][1].update(sha256="0" * 64))
    features = TeacherFeatures(damaged)  # the cheap checks at open cannot see it
    features[0]
    with pytest.raises(ShardError, match=r"shard-000001\.safetensors does not match the sha256"):
        features[5]


def _write_nan_patch(path: Path) -> None:
    """Overwrite the first float16 of the `patches` tensor of a shard with NaN, in place."""
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    start = 8 + header_len + json.loads(data[8 : 8 + header_len])["patches"]["data_offsets"][0]
    data[start : start + 2] = torch.tensor([float("nan")], dtype=torch.float16).view(torch.uint8).numpy().tobytes()
    path.write_bytes(bytes(data))


def test_non_finite_features_are_found_on_first_read(damaged):
    path = damaged / "shard-000000.safetensors"
    _write_nan_patch(path)
    _edit_index(damaged, lambda index: index["shards"][0].update(sha256=sha256_file(path)))
    features = TeacherFeatures(damaged)
    with pytest.raises(ShardError, match=rf"shard {path} holds non-finite patches for 1 image\(s\), first row 0 \("):
        features[1]
    with pytest.raises(ShardError, match="non-finite patches"):
        TeacherFeatures(damaged, verify=True)
