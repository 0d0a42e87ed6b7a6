"""Tar shards: packing round trips (export folder and image folder), specs, and decoding that never unpickles."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from saccade.cli import main
from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import ShardDataset
from saccade.data.tar_shards import TarShardError, decode_sample, expand_shard_spec, pack_shards, raw_samples
from saccade.pretrain.stream import ShardStream, StreamOptions
from tests.datasets.helpers import SIZE_PX, make_image_folder, tiny_teacher


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"), 7)


@pytest.fixture(scope="module")
def export(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    scenes = ImageFolderScenes(images, size_px=SIZE_PX)
    export_features(scenes, tiny_teacher(), out, config=ExportConfig(shard_size=4, batch_size=4), progress=False)
    return out


def test_packing_an_export_round_trips_scenes_and_targets_exactly(export, tmp_path):
    shards = pack_shards(export, tmp_path, shard_size=3)
    assert [path.name for path in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    decoded = [decode_sample(raw) for raw in raw_samples(str(path) for path in shards)]
    expected = ShardDataset(export)
    assert len(decoded) == len(expected) == 7
    for index, sample in enumerate(decoded):
        scene, patches, cls = expected[index]
        assert torch.equal(sample.scene, scene)  # same bytes, same decode and resize
        assert sample.patches.dtype == torch.float16 and torch.equal(sample.patches, patches)
        assert torch.equal(sample.cls, cls)
        assert sample.sample_id == expected.pairs.features[index].image_id


def test_packing_is_byte_reproducible(export, tmp_path):
    first = pack_shards(export, tmp_path / "a", shard_size=3)
    second = pack_shards(export, tmp_path / "b", shard_size=3)
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]


def test_image_folder_shards_keep_the_files_and_need_the_teacher(images, tmp_path):
    pack_shards(images, tmp_path / "shards", shard_size=2)
    scenes = ImageFolderScenes(images, size_px=SIZE_PX)
    raws = list(raw_samples(expand_shard_spec(str(tmp_path / "shards"))))
    assert len(raws) == len(scenes) == 7
    for index, raw in enumerate(raws):
        suffix = scenes.path(index).suffix.lstrip(".")
        assert raw[suffix] == scenes.path(index).read_bytes()
        sample = decode_sample(raw, size_px=SIZE_PX)
        assert sample.patches is None and sample.sample_id == scenes.image_ids[index]
        assert torch.equal(sample.scene, scenes[index].image)
    with pytest.raises(TarShardError, match="no size_px"):
        decode_sample(raws[0])
    with pytest.raises(ValueError, match=r"without teacher targets.*--teacher"):
        ShardStream.open(str(tmp_path / "shards"), StreamOptions())


def test_pack_refuses_a_folder_that_already_holds_shards(images, tmp_path):
    pack_shards(images, tmp_path, shard_size=4)
    with pytest.raises(ValueError, match=r"already holds \.tar files"):
        pack_shards(images, tmp_path, shard_size=4)


def test_specs_folder_brace_pattern_and_pipe_read_the_same_samples(export, tmp_path):
    pack_shards(export, tmp_path, shard_size=3)
    folder = expand_shard_spec(str(tmp_path))
    assert expand_shard_spec(str(tmp_path / "shard-{000000..000002}.tar")) == folder
    piped = expand_shard_spec(f"pipe:cat {tmp_path}/shard-{{000000..000002}}.tar")
    assert piped == [f"pipe:cat {path}" for path in folder]
    keys = [[raw["__key__"] for raw in raw_samples(urls)] for urls in (folder, piped)]
    assert keys[0] == keys[1] and len(keys[0]) == 7
    with pytest.raises(TarShardError, match="1 shard"):
        expand_shard_spec(str(tmp_path / "shard-{000000..000003}.tar"))


class _Trap:
    """Creates a file when unpickled: the proof that a decoder unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("suffix", ["pyd", "pickle", "pth"])
def test_a_pickle_member_is_refused_never_unpickled(tmp_path, suffix):
    trap = tmp_path / "unpickled"
    members = {"0.png": b"", "0.json": b"{}", f"0.{suffix}": pickle.dumps(_Trap(trap))}
    (raw,) = raw_samples([str(_tar(tmp_path / "evil.tar", members))])
    with pytest.raises(TarShardError, match=rf"\['{suffix}'\].*never decoded"):
        decode_sample(raw, size_px=SIZE_PX)
    assert not trap.exists()


def test_an_object_npy_is_refused_never_unpickled(images, tmp_path):
    trap = tmp_path / "unpickled"
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Trap(trap)], dtype=object), allow_pickle=True)
    image = next(iter(sorted(images.glob("*.png")))).read_bytes()
    members = {
        "0.png": image,
        "0.json": json.dumps({"image_id": "x", "size_px": SIZE_PX}).encode(),
        "0.patches.npy": buffer.getvalue(),
        "0.cls.npy": buffer.getvalue(),
    }
    (raw,) = raw_samples([str(_tar(tmp_path / "evil.tar", members))])
    with pytest.raises(TarShardError, match="without pickle"):
        decode_sample(raw)
    assert not trap.exists()


def test_pack_shards_command(images, tmp_path, capsys):
    assert main(["pack-shards", "--data", str(images), "--output-dir", str(tmp_path), "--shard-size", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["shards"] == 3
    assert main(["pack-shards", "--data", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
