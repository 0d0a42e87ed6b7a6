"""Streamed training data from tar shards, with a data position that a checkpoint saves and a resume restores.

Each rank reads with K DataLoader workers (K = max(1, num_workers)). Reader slot (rank, worker) loops over
epochs forever: in epoch e it reads its slice of the epoch's shard order (saccade.data.tar_shards.ShardSchedule),
shuffles the undecoded samples with a buffer seeded by (seed, e, rank, worker), and decodes them. The DataLoader
hands samples to the rank round-robin, worker 0, 1, ..., K-1, 0, ...; so a rank's sample sequence is a function
of the seed alone. Every sample carries (worker, epoch, index in the worker's epoch), and the rank keeps, per
worker, the position after the last sample it consumed. The checkpoint records those positions for every rank
(`StreamPosition`); a resumed rank starts each worker at its position (skipping the consumed samples undecoded)
and rotates the worker numbers so that the round robin continues with the worker that was next. A killed job
therefore resumes on exactly the samples it would have seen. Shards of images alone train with the teacher in the
loop: workers decode the scenes at the teacher's input size and the training process computes each batch's targets.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from saccade.data.tar_shards import ShardSchedule, TarShardError, decode_sample, expand_shard_spec, raw_samples
from saccade.pretrain.data import DistillationBatch, DistillationDataset

if TYPE_CHECKING:
    from saccade.pretrain.teacher_targets import TeacherTargets

__all__ = ["ShardStream", "StreamBatches", "StreamOptions", "StreamPosition"]


@dataclass(frozen=True, kw_only=True)
class StreamOptions:
    """How a rank reads tar shards; a resumed run must read them as its checkpoint did."""

    num_workers: int = 2
    """DataLoader worker processes decoding samples per rank (0: decode in the training process)."""
    shuffle_buffer: int = 1000
    """Samples each worker shuffles among (1: the shards' own order)."""
    head_samples: int = 64
    """Samples read in file order before training: checked, and fitting the standardizers."""
    sample_log_dir: str | None = None
    """Append each batch's sample ids to SAMPLE_LOG_DIR/samples-rank-<r>.jsonl (what each rank read)."""

    def __post_init__(self) -> None:
        for name, least in (("num_workers", 0), ("shuffle_buffer", 1), ("head_samples", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"StreamOptions.{name} must be >= {least}, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class ShardStream:
    """Training data streamed from tar shards (what `--data SHARDS` opens): their precomputed teacher targets, or
    targets computed from their images by the teacher in the loop (`targets`)."""

    urls: tuple[str, ...]
    options: StreamOptions
    head: DistillationDataset
    """The first samples of the shards in file order: checked before training and used to fit the standardizers."""
    targets: TeacherTargets | None = None
    """The teacher in the loop, for shards of images alone; run on each batch in the training process."""

    @classmethod
    def open(cls, spec: str, options: StreamOptions, *, targets: TeacherTargets | None = None) -> ShardStream:
        """The stream `spec` names: shards with targets and no `targets`, or image-only shards and `targets`."""
        urls = tuple(expand_shard_spec(spec))
        raws = list(itertools.islice(raw_samples(urls), options.head_samples))
        stored = [raw for raw in raws if "patches.npy" in raw]
        if targets is None and len(stored) < len(raws):
            raise ValueError(
                f"--data {spec}: the tar shards hold images without teacher targets; train on them with the teacher "
                "in the loop (--teacher), or pack an export-features folder (saccade pack-shards --data EXPORT)"
            )
        if targets is None:
            return cls(urls=urls, options=options, head=_Head(raws))
        if stored:
            raise ValueError(
                f"--data {spec}: the tar shards hold precomputed teacher targets; train on them without --teacher"
            )
        from saccade.pretrain.teacher_targets import TeacherInLoopDataset

        head = TeacherInLoopDataset(_Head(raws, size_px=targets.input_px, scenes_only=True), targets)
        return cls(urls=urls, options=options, head=head, targets=targets)

    @property
    def readers_per_rank(self) -> int:
        return max(1, self.options.num_workers)

    def to(self, device: torch.device | str) -> ShardStream:
        """Run the teacher in the loop, if any, on `device` (the training device)."""
        if self.targets is not None:
            self.targets.to(device)
        return self

    def batches(
        self,
        *,
        seed: int,
        local_batch: int,
        rank: int,
        world_size: int,
        position: StreamPosition | None = None,
    ) -> StreamBatches:
        """This rank's batches from `position` (None: the start of the schedule)."""
        schedule = ShardSchedule(urls=self.urls, seed=seed, world_size=world_size, num_workers=self.readers_per_rank)
        start = _Start.fresh(self.readers_per_rank)
        if position is not None:
            start = position.of_rank(rank, world_size=world_size, stream=self)
        size_px = None if self.targets is None else self.targets.input_px  # None: the size packed with the targets
        readers = _RankReaders(
            schedule, rank=rank, shuffle_buffer=self.options.shuffle_buffer, start=start, size_px=size_px
        )
        return StreamBatches(self, readers, start, local_batch=local_batch, rank=rank)


@dataclass(frozen=True)
class StreamPosition:
    """Where every rank is in its stream: what a checkpoint stores under "data" (tensors and ints only)."""

    epochs: Tensor  # [world_size, K] int64: the epoch of each worker's next sample
    indices: Tensor  # [world_size, K] int64: index of that sample in the worker's shuffled epoch
    consumed: Tensor  # [world_size] int64: samples each rank has consumed
    shuffle_buffer: int

    def to_dict(self) -> dict:
        return {
            "kind": "tar-shards",
            "epochs": self.epochs,
            "indices": self.indices,
            "consumed": self.consumed,
            "shuffle_buffer": self.shuffle_buffer,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StreamPosition:
        if data.get("kind") != "tar-shards":
            raise ValueError(f"the checkpoint's data position is of kind {data.get('kind')!r}, not 'tar-shards'")
        return cls(data["epochs"], data["indices"], data["consumed"], int(data["shuffle_buffer"]))

    def of_rank(self, rank: int, *, world_size: int, stream: ShardStream) -> _Start:
        """Rank `rank`'s start, refusing a stream read by another number of ranks, workers or another buffer."""
        found = (*self.epochs.shape, self.shuffle_buffer)
        wanted = (world_size, stream.readers_per_rank, stream.options.shuffle_buffer)
        if found != wanted:
            raise ValueError(
                f"the checkpoint's data position is for {found[0]} rank(s) x {found[1]} data worker(s) with a "
                f"shuffle buffer of {found[2]}; this run has {wanted[0]} x {wanted[1]} and {wanted[2]}: resume with "
                "the same number of processes, --data-workers and --shuffle-buffer"
            )
        return _Start(self.epochs[rank].tolist(), self.indices[rank].tolist(), int(self.consumed[rank]))


@dataclass(frozen=True)
class _Start:
    """One rank's start: per worker (epoch, index), and the samples consumed before (which worker is next)."""

    epochs: list[int]
    indices: list[int]
    consumed: int

    @classmethod
    def fresh(cls, readers: int) -> _Start:
        return cls([0] * readers, [0] * readers, 0)


class _RankReaders(IterableDataset):
    """The samples of one rank's reader slots; DataLoader worker i plays reader (i + rotation) % K."""

    def __init__(
        self, schedule: ShardSchedule, *, rank: int, shuffle_buffer: int, start: _Start, size_px: int | None
    ) -> None:
        self.schedule, self.rank, self.shuffle_buffer, self.start = schedule, rank, shuffle_buffer, start
        self.size_px = size_px  # scenes for the teacher in the loop; None: read the stored targets

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()  # None: read in the training process, as the only reader
        worker = 0 if info is None else info.id
        yield from self._reader((worker + self.start.consumed) % self.schedule.num_workers)

    def _reader(self, worker: int) -> Iterator[tuple]:
        """Reader `worker`'s samples from its start, epoch after epoch: (scene, patches, cls, id, worker, epoch, i)."""
        epoch, skip = self.start.epochs[worker], self.start.indices[worker]
        while True:
            shards = self.schedule.shards_of(epoch, rank=self.rank, worker=worker)
            order = random.Random(f"{self.schedule.seed}-{epoch}-{self.rank}-{worker}")
            for index, raw in enumerate(_shuffled(raw_samples(shards), self.shuffle_buffer, order)):
                if index < skip:
                    continue  # consumed before the checkpoint: skipped undecoded
                if self.size_px is not None:  # the teacher in the loop computes the targets
                    scene = decode_sample(raw, size_px=self.size_px).scene
                    yield scene, None, None, _sample_id(raw), worker, epoch, index
                    continue
                sample = decode_sample(raw)
                if sample.patches is None:
                    raise TarShardError(f"sample {sample.sample_id} of {raw['__url__']} has no teacher targets")
                yield sample.scene, sample.patches, sample.cls, sample.sample_id, worker, epoch, index
            epoch, skip = epoch + 1, 0


def _shuffled(samples: Iterator[dict], buffer_size: int, order: random.Random) -> Iterator[dict]:
    """A buffer shuffle: fill `buffer_size` samples, then emit a random one for each one read; drain at the end."""
    buffer: list[dict] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= buffer_size:
            yield buffer.pop(order.randrange(len(buffer)))
    while buffer:
        yield buffer.pop(order.randrange(len(buffer)))


class StreamBatches:
    """This rank's batches, in order, and the position after the last one (`position()`, collective)."""

    def __init__(
        self,
        stream: ShardStream,
        readers: _RankReaders,
        start: _Start,
        *,
        local_batch: int,
        rank: int,
    ) -> None:
        self.local_batch, self.rank, self.targets = local_batch, rank, stream.targets
        log_dir = stream.options.sample_log_dir
        self.log = None if log_dir is None else Path(log_dir) / f"samples-rank-{rank}.jsonl"
        self.shuffle_buffer = stream.options.shuffle_buffer
        self.epochs, self.indices, self.consumed = list(start.epochs), list(start.indices), start.consumed
        loader = DataLoader(readers, batch_size=None, num_workers=stream.options.num_workers)
        self._samples = iter(loader)

    def __iter__(self) -> StreamBatches:
        return self

    def __next__(self) -> DistillationBatch:
        scenes, patches, cls, ids = [], [], [], []
        for _ in range(self.local_batch):
            scene, patch, cls_, sample_id, worker, epoch, index = next(self._samples)
            scenes.append(scene)
            patches.append(patch)
            cls.append(cls_)
            ids.append(sample_id)
            self.epochs[worker], self.indices[worker] = epoch, index + 1
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("a") as file:
                file.write(json.dumps({"consumed": self.consumed, "ids": ids}) + "\n")
        self.consumed += self.local_batch
        if self.targets is not None:
            return self.targets(torch.stack(scenes))  # on the training device
        patches_t = torch.stack(patches).float()  # [B, h, w, D]
        return DistillationBatch(
            scenes=torch.stack(scenes).float(), patches=patches_t.flatten(1, 2), cls=torch.stack(cls).float()
        )

    def position(self) -> StreamPosition:
        """Every rank's position (an all-gather when distributed: call it on all ranks at the same step)."""
        local = torch.tensor([[*self.epochs], [*self.indices], [self.consumed] * len(self.epochs)], dtype=torch.int64)
        if dist.is_available() and dist.is_initialized():
            gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, local)
        else:
            gathered = [local]
        stacked = torch.stack(gathered)  # [world_size, 3, K]
        return StreamPosition(stacked[:, 0], stacked[:, 1], stacked[:, 2, 0].contiguous(), self.shuffle_buffer)


class _Head(Dataset):
    """The first samples of the shards in file order, held undecoded: item i -> (scene, patches, cls), or the scene
    alone (`scenes_only`, at `size_px`: for the teacher in the loop)."""

    def __init__(self, raws: list[dict], *, size_px: int | None = None, scenes_only: bool = False) -> None:
        self.raws, self.size_px, self.scenes_only = raws, size_px, scenes_only

    def __len__(self) -> int:
        return len(self.raws)

    def __getitem__(self, index: int) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        sample = decode_sample(self.raws[index], size_px=self.size_px)
        return sample.scene if self.scenes_only else (sample.scene, sample.patches, sample.cls)


def _sample_id(raw: dict) -> str:
    """The image id packed in a sample's .json (its key when there is none)."""
    return str(json.loads(raw["json"]).get("image_id", raw["__key__"]))
