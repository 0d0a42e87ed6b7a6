"""WebDataset-format tar shards: the member layout, safe decoding, the per-epoch shard schedule, and packing.

A shard `shard-000123.tar` holds samples as consecutive members sharing a key (`00000042`):
- the image file's own bytes, `<key>.jpg|jpeg|png|webp` (decoded and resized as saccade.data.scenes does);
- `<key>.json`: {"image_id": ..., "content_sha256": ...} and, with targets, {"size_px": S};
- optionally the teacher targets `<key>.patches.npy` ([h, w, D] float16) and `<key>.cls.npy` ([D] float32).
Decoding reads only these members: images with PIL, `.npy` with `allow_pickle=False`, `.json` with json. A member
of any other kind (`.pyd`, `.pickle`, `.pth` ...) is refused, so nothing is ever unpickled.

Shards are named by a spec: a folder of `.tar` files, a brace pattern (`shards-{000..009}.tar`) or a `pipe:`
command (`pipe:aws s3 cp s3://bucket/shards-{000..009}.tar -`), read through webdataset's tar iterator.
`ShardSchedule` fixes which shards a (rank, worker) reads in an epoch: a permutation seeded by (seed, epoch),
dealt round-robin over the world_size * num_workers reader slots, so every shard is read exactly once an epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from saccade._io import atomic_write
from saccade.data.scenes import IMAGE_EXTENSIONS, _decode, preprocess

__all__ = [
    "DecodedSample",
    "ShardSchedule",
    "TarShardError",
    "decode_sample",
    "expand_shard_spec",
    "is_shard_spec",
    "pack_shards",
    "raw_samples",
    "tar_shard_name",
]

IMAGE_KEYS = tuple(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
TARGET_KEYS = ("patches.npy", "cls.npy")
ALLOWED_KEYS = frozenset((*IMAGE_KEYS, "json", *TARGET_KEYS))


class TarShardError(ValueError):
    """A tar shard, spec or sample that cannot be read as saccade shards; the message names it."""


def tar_shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.tar"


def is_shard_spec(spec: str) -> bool:
    """Whether `spec` names tar shards (a `pipe:` command, a `.tar` path or pattern, a folder of `.tar` files)."""
    if spec.startswith("pipe:") or spec.endswith(".tar"):
        return True
    path = Path(spec)
    return path.is_dir() and any(path.glob("*.tar"))


def expand_shard_spec(spec: str) -> list[str]:
    """The shard URLs a spec names, in order: the folder's sorted `.tar` files, or the braces expanded."""
    import braceexpand

    if not spec.startswith("pipe:") and Path(spec).is_dir():
        urls = [str(path) for path in sorted(Path(spec).glob("*.tar"))]
    else:
        urls = list(braceexpand.braceexpand(spec))
    if not urls:
        raise TarShardError(f"--data {spec}: names no tar shards")
    missing = [url for url in urls if not url.startswith("pipe:") and not Path(url).is_file()]
    if missing:
        raise TarShardError(f"--data {spec}: {len(missing)} shard(s) do not exist, first {missing[0]}")
    return urls


@dataclass(frozen=True)
class DecodedSample:
    """One decoded sample: the scene, its targets when the shard holds them, and its id."""

    scene: Tensor  # [3, S, S] float32, ImageNet-normalised
    patches: Tensor | None  # [h, w, D] float16 as stored
    cls: Tensor | None  # [D] float32
    sample_id: str  # the image id recorded at packing


def raw_samples(urls: Iterable[str]) -> Iterator[dict]:
    """Undecoded samples (member suffix -> bytes, plus `__key__` and `__url__`) of the shards, in order."""
    from webdataset.tariterators import tarfile_samples

    return tarfile_samples({"url": url} for url in urls)


def decode_sample(raw: dict, *, size_px: int | None = None) -> DecodedSample:
    """A raw sample -> DecodedSample; scenes are `size_px` (default: the json's size_px) square.

    Refuses members other than one image, `.json` and the two target `.npy` files (no pickle is ever read).
    """
    where = f"sample {raw.get('__key__')!r} of {raw.get('__url__')}"
    members = {key for key in raw if not key.startswith("__")}
    foreign = sorted(members - ALLOWED_KEYS)
    if foreign:
        raise TarShardError(
            f"{where} holds member(s) {foreign}: saccade shards hold only an image ({', '.join(IMAGE_KEYS)}), .json "
            "and .patches.npy / .cls.npy; other members (pickles included) are never decoded"
        )
    images = sorted(members & set(IMAGE_KEYS))
    if len(images) != 1 or "json" not in members:
        raise TarShardError(f"{where} must hold one image and a .json, got {sorted(members)}")
    meta = json.loads(raw["json"])
    size_px = size_px or meta.get("size_px")
    if not size_px:
        raise TarShardError(f"{where}: no size_px in its .json and none given")
    scene = preprocess(_decode(raw[images[0]], Path(f"{raw.get('__url__')}#{raw['__key__']}")), int(size_px))
    targets = [key for key in TARGET_KEYS if key in members]
    if targets and len(targets) != len(TARGET_KEYS):
        raise TarShardError(f"{where} holds {targets} but not all of {list(TARGET_KEYS)}")
    patches = cls = None
    if targets:
        patches = torch.from_numpy(_load_npy(raw["patches.npy"], where))
        cls = torch.from_numpy(_load_npy(raw["cls.npy"], where)).float()
    return DecodedSample(scene=scene, patches=patches, cls=cls, sample_id=str(meta.get("image_id", raw["__key__"])))


def _load_npy(data: bytes, where: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:  # object arrays need pickle: refused
        raise TarShardError(f"{where}: cannot read an .npy member without pickle: {error}") from None


@dataclass(frozen=True, kw_only=True)
class ShardSchedule:
    """Which shards each reader slot (rank, worker) reads in an epoch."""

    urls: tuple[str, ...]
    seed: int
    world_size: int
    num_workers: int  # readers per rank (DataLoader workers; 1 when reading in the main process)

    def __post_init__(self) -> None:
        slots = self.world_size * self.num_workers
        if len(self.urls) < slots:
            raise ValueError(
                f"{len(self.urls)} tar shard(s) cannot feed {self.world_size} rank(s) x {self.num_workers} "
                f"data worker(s): pack at least {slots} shards (smaller --shard-size) or use fewer workers"
            )

    def epoch_order(self, epoch: int) -> list[str]:
        """All shards in the order of `epoch`: a permutation seeded by (seed, epoch)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return [self.urls[i] for i in torch.randperm(len(self.urls), generator=generator).tolist()]

    def shards_of(self, epoch: int, *, rank: int, worker: int) -> list[str]:
        """The shards reader slot (rank, worker) reads in `epoch`, in order."""
        slot = rank * self.num_workers + worker
        return self.epoch_order(epoch)[slot :: self.world_size * self.num_workers]


def pack_shards(source: str | os.PathLike, output_dir: str | os.PathLike, *, shard_size: int) -> list[Path]:
    """Pack an image folder, or an export-features folder (images with their targets), into tar shards.

    Members keep the image files' bytes; shards are byte-reproducible (fixed mtimes and owners). Returns the shards.
    """
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    samples = _export_samples(source) if (Path(source) / "index.json").is_file() else _folder_samples(source)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.glob("*.tar")):
        raise ValueError(f"{output_dir} already holds .tar files: pack into an empty folder (shards would mix)")
    written, shard = [], []
    for position, members in enumerate(samples):
        shard.append({f"{position:08d}.{suffix}": data for suffix, data in members.items()})
        if len(shard) == shard_size:
            written.append(_write_tar(output_dir / tar_shard_name(len(written)), shard))
            shard = []
    if shard:
        written.append(_write_tar(output_dir / tar_shard_name(len(written)), shard))
    return written


def _folder_samples(folder: str | os.PathLike) -> Iterator[dict[str, bytes]]:
    """Members of every image under `folder` (sorted, as ImageFolderScenes lists them): image + json."""
    from saccade.data.scenes import ImageFolderScenes

    for image_id, path in ImageFolderScenes(folder, size_px=1).files:
        data = path.read_bytes()
        meta = {"image_id": image_id, "content_sha256": hashlib.sha256(data).hexdigest()}
        yield {path.suffix.lower().lstrip("."): data, "json": json.dumps(meta).encode()}


def _export_samples(folder: str | os.PathLike) -> Iterator[dict[str, bytes]]:
    """Members of every scene of a finished feature export: its image, json, fp16 patches and CLS."""
    from saccade.data.shards import TeacherFeatures, scenes_of

    features = TeacherFeatures(folder)
    scenes = scenes_of(features)
    size_px = int(features.plan["scenes"]["size_px"])
    for index in range(len(features)):
        targets = features[index]
        path = scenes.path(targets.position)
        meta = {"image_id": targets.image_id, "content_sha256": targets.content_sha256, "size_px": size_px}
        yield {
            path.suffix.lower().lstrip("."): path.read_bytes(),
            "json": json.dumps(meta).encode(),
            "patches.npy": _npy(targets.patches.numpy()),
            "cls.npy": _npy(targets.cls.numpy()),
        }


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _write_tar(path: Path, samples: list[dict[str, bytes]]) -> Path:
    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for members in samples:
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))

    return atomic_write(path, write)
