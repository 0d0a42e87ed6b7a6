"""Streamed tar shards: the shard schedule, the rank / worker split, the saved position and exact resumption."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch
from tests.datasets.helpers import make_image_folder, tiny_teacher
from tests.pretrain.run_synthetic import config as synthetic_config
from tests.pretrain.tar_helpers import write_target_shards
from tests.pretrain.test_run_guards import TINY_FLAGS

from saccade.cli import main
from saccade.data.scenes import ImageFolderScenes
from saccade.data.tar_shards import ShardSchedule, pack_shards
from saccade.pretrain.stream import ShardStream, StreamOptions, StreamPosition
from saccade.pretrain.teacher_targets import TeacherTargets
from saccade.pretrain.trainer import pretrain


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_target_shards(tmp_path_factory.mktemp("shards"), num_samples=24, shard_size=3)  # 8 shards


def _ids(log: Path) -> list[list[str]]:
    return [json.loads(line)["ids"] for line in log.read_text().splitlines()]


def test_schedule_deals_every_shard_once_an_epoch_in_a_seeded_order():
    schedule = ShardSchedule(urls=tuple(f"s{i}" for i in range(9)), seed=3, world_size=2, num_workers=2)
    for epoch in range(3):
        slices = [schedule.shards_of(epoch, rank=r, worker=w) for r in range(2) for w in range(2)]
        assert sorted(url for part in slices for url in part) == sorted(schedule.urls)
    assert schedule.epoch_order(0) != schedule.epoch_order(1)
    assert schedule.epoch_order(1) == dataclasses.replace(schedule, world_size=1).epoch_order(1)
    with pytest.raises(ValueError, match=r"9 tar shard.*cannot feed 4 rank.*3 data worker.*at least 12 shards"):
        ShardSchedule(urls=schedule.urls, seed=3, world_size=4, num_workers=3)


def test_ranks_and_workers_read_every_sample_exactly_once_an_epoch(shards, tmp_path):
    stream = ShardStream.open(str(shards), StreamOptions(num_workers=2, shuffle_buffer=4, sample_log_dir=str(tmp_path)))
    for rank in range(2):  # 8 shards of 3 over 2 ranks x 2 workers: 12 samples a rank an epoch
        batches = stream.batches(seed=0, local_batch=4, rank=rank, world_size=2)
        for _ in range(6):  # two epochs
            next(batches)
    epochs = [[], []]
    for rank in range(2):
        ids = [i for batch in _ids(tmp_path / f"samples-rank-{rank}.jsonl") for i in batch]
        epochs[0] += ids[:12]
        epochs[1] += ids[12:]
    expected = sorted(f"scene-{i:04d}.png" for i in range(24))
    assert sorted(epochs[0]) == expected and sorted(epochs[1]) == expected
    assert epochs[0] != epochs[1]  # reshuffled


def test_a_stream_resumed_from_its_position_continues_exactly(shards, tmp_path):
    options = StreamOptions(num_workers=2, shuffle_buffer=5, sample_log_dir=str(tmp_path / "straight"))
    straight = ShardStream.open(str(shards), options).batches(seed=1, local_batch=3, rank=0, world_size=1)
    expected = [next(straight) for _ in range(10)]  # 30 samples: past the end of the first epoch (24)
    first = ShardStream.open(str(shards), dataclasses.replace(options, sample_log_dir=str(tmp_path / "resumed")))
    interrupted = first.batches(seed=1, local_batch=3, rank=0, world_size=1)
    for _ in range(3):  # 9 samples: worker 1 is next
        next(interrupted)
    saved = io.BytesIO()
    torch.save(interrupted.position().to_dict(), saved)  # what the checkpoint holds, read as it is read
    position = StreamPosition.from_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    assert position.consumed.tolist() == [9] and position.indices.tolist() == [[5, 4]]
    resumed = first.batches(seed=1, local_batch=3, rank=0, world_size=1, position=position)
    for batch, want in zip([next(resumed) for _ in range(7)], expected[3:], strict=True):
        assert torch.equal(batch.scenes, want.scenes) and torch.equal(batch.patches, want.patches)
    assert _ids(tmp_path / "resumed" / "samples-rank-0.jsonl") == _ids(tmp_path / "straight" / "samples-rank-0.jsonl")
    fewer_workers = ShardStream.open(str(shards), dataclasses.replace(options, num_workers=1))
    with pytest.raises(ValueError, match=r"1 rank.*x 2 data worker.*this run has 1 x 1.*--data-workers"):
        fewer_workers.batches(seed=1, local_batch=3, rank=0, world_size=1, position=position)


def test_training_on_shards_resumes_to_the_same_weights(shards, tmp_path):
    stream = ShardStream.open(str(shards), StreamOptions(num_workers=0, shuffle_buffer=4, head_samples=16))
    straight = pretrain(synthetic_config(str(tmp_path / "straight"), 3), stream, progress=False)
    pretrain(synthetic_config(str(tmp_path / "resumed"), 1), stream, progress=False)
    config = dataclasses.replace(synthetic_config(str(tmp_path / "resumed"), 3))
    resumed = pretrain(config, stream, progress=False, allow_config_change=True)
    data = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["data"]
    assert data["kind"] == "tar-shards" and data["consumed"].tolist() == [24]  # 3 steps of 8
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_the_command_line_trains_on_shards(shards, tmp_path):
    flags = [*TINY_FLAGS, "--data", str(shards), "--data-workers", "2", "--shuffle-buffer", "4", "--steps", "2"]
    assert main(["pretrain", *flags, "--output-dir", str(tmp_path)]) == 0
    data = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["data"]
    assert data["consumed"].tolist() == [16] and data["indices"].shape == (1, 2)


def test_image_only_shards_train_with_the_teacher_in_the_loop(tmp_path):
    images = make_image_folder(tmp_path / "images", 8)
    pack_shards(images, tmp_path / "shards", shard_size=2)
    targets = TeacherTargets(tiny_teacher(), canvas_grid=2)  # 28 px scenes for the 14 px patches
    options = StreamOptions(num_workers=2, shuffle_buffer=3, head_samples=4, sample_log_dir=str(tmp_path))
    stream = ShardStream.open(str(tmp_path / "shards"), options, targets=targets)
    batch = next(stream.batches(seed=0, local_batch=4, rank=0, world_size=1))
    (ids,) = _ids(tmp_path / "samples-rank-0.jsonl")
    scenes = ImageFolderScenes(images, size_px=targets.input_px)
    expected = targets(torch.stack([scenes[scenes.image_ids.index(i)].image for i in ids]))
    assert torch.equal(batch.scenes, expected.scenes) and torch.equal(batch.patches, expected.patches)
    assert torch.equal(batch.cls, expected.cls)
    assert torch.equal(stream.head[1][1], targets(scenes[1].image[None]).patches[0])  # the head in file order
    with pytest.raises(ValueError, match="precomputed teacher targets; train on them without --teacher"):
        ShardStream.open(
            str(write_target_shards(tmp_path / "stored", num_samples=4, shard_size=2)), options, targets=targets
        )
