"""Teacher-feature shards on disk (paper §5, App. C): the format, a memory-mapped reader, scene/target pairs.

An export folder holds
- `shard-000123.safetensors`: one shard; tensors `patches` [n, h, w, D] fp16, `cls` [n, D] (fp32 or fp16),
  `positions` [n] int64 (indices into the scene dataset), `content_sha256` [n, 32] uint8 (sha256 of each
  image file); metadata key `saccade` = JSON {format, shard, image_ids}. A single metadata key keeps the bytes
  deterministic (safetensors writes a map's keys in arbitrary order).
- `index.json`: the plan (scene fingerprint, teacher, shard size, dtypes), the scene source (an image folder
  or the bundled set, so the scenes can be rebuilt) and one entry per shard (file, bytes, sha256, first
  position, images, skipped images with reasons). It is written only once every shard exists, so its
  presence means the export is complete.
- `progress/rank-<r>.json`: each rank's journal while exporting (see `saccade.data.export`).

Shard s holds scene positions [s * shard_size, (s + 1) * shard_size) minus skipped unreadable images, so the
shards do not depend on how many processes wrote them. Reading is lazy: `safe_open` memory-maps a shard and
`get_slice` reads only the requested rows. `TeacherFeatures` gives random access to the stored targets,
`DistillationPairs` pairs them with their scenes, and `ShardDataset` gives (image, patches, cls) triples from
an export folder alone.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor
from torch.utils.data import Dataset

from saccade.data.scenes import FileScenes, ImageFolderScenes, Scene
from saccade.teachers.base import TeacherOutput
from saccade.teachers.dinov2_bundled import sha256_file

__all__ = [
    "FORMAT",
    "INDEX_FILE",
    "DistillationPairs",
    "ShardDataset",
    "ShardError",
    "TeacherFeatures",
    "TeacherTargets",
    "collate_pairs",
    "read_index",
    "scenes_of",
    "shard_file_name",
]

FORMAT = "saccade-teacher-features/1"
INDEX_FILE = "index.json"


class ShardError(ValueError):
    """A shard or index that is missing, damaged or inconsistent; the message names the file."""


def shard_file_name(shard: int) -> str:
    return f"shard-{shard:06d}.safetensors"


@dataclass(frozen=True)
class TeacherTargets:
    """The stored teacher features of one scene."""

    cls: Tensor  # [D] float32
    patches: Tensor  # [h, w, D] as stored (float16)
    position: int  # index of the scene in the exported scene dataset
    image_id: str
    content_sha256: str  # hex sha256 of the image file the features were computed from


def read_index(root: str | os.PathLike) -> dict:
    """The parsed `index.json` of an export folder; ShardError when absent or unreadable."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise ShardError(
            f"{path} does not exist: {Path(root)} is not a finished feature export (run the export again to resume it)"
        )
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ShardError(f"cannot read the shard index {path}: {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise ShardError(f"{path} is not a {FORMAT} index (format {found!r})")
    return index


class TeacherFeatures(Dataset):
    """All shards of a finished export as one random-access dataset: item i -> `TeacherTargets`.

    Opening checks the index against itself (shard count, order, file names, positions) and every shard against
    the index (file present, byte size, tensor shapes, shard number). The first read of a shard checks its
    contents (the sha256 recorded in the index, finite features), so a process checks each shard once;
    `verify=True` checks the contents of every shard at open instead.
    """

    def __init__(self, root: str | os.PathLike, *, verify: bool = False) -> None:
        self.root = Path(root)
        self.index = read_index(self.root)
        plan = self.index["plan"]
        self.grid = (int(plan["grid_h"]), int(plan["grid_w"]))
        self.dim = int(plan["teacher"]["dim"])
        self.shards: list[dict] = self.index["shards"]
        self._check_index()
        for entry in self.shards:
            self._check_shard(entry)
        counts = [int(entry["num_images"]) for entry in self.shards]
        self._starts = [sum(counts[:i]) for i in range(len(counts) + 1)]  # cumulative, [num_shards + 1]
        self._handles: dict[int, object] = {}
        self._ids: dict[int, list[str]] = {}
        self._checked: set[int] = set()
        if verify:
            for shard in range(len(self.shards)):
                self._check_contents(shard)

    @property
    def plan(self) -> dict:
        return self.index["plan"]

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> TeacherTargets:
        if not -len(self) <= index < len(self):
            raise IndexError(f"feature index {index} out of range for {len(self)} images")
        index %= len(self)
        shard = bisect.bisect_right(self._starts, index) - 1
        row = index - self._starts[shard]
        handle = self._handle(shard)
        digest = handle.get_slice("content_sha256")[row : row + 1][0]  # [32] uint8
        return TeacherTargets(
            cls=handle.get_slice("cls")[row : row + 1][0].float(),
            patches=handle.get_slice("patches")[row : row + 1][0],
            position=int(handle.get_slice("positions")[row : row + 1][0]),
            image_id=self._image_ids(shard)[row],
            content_sha256=bytes(digest.tolist()).hex(),
        )

    def iter_chunks(self, chunk_images: int = 64, *, max_images: int | None = None) -> Iterator[TeacherOutput]:
        """Stream contiguous chunks in index order: TeacherOutput(cls [b, D] fp32, patches [b, h, w, D] fp32)."""
        if chunk_images < 1:
            raise ValueError(f"chunk_images must be >= 1, got {chunk_images}")
        remaining = len(self) if max_images is None else min(max_images, len(self))
        for shard, entry in enumerate(self.shards):
            handle = self._handle(shard)
            for start in range(0, int(entry["num_images"]), chunk_images):
                if remaining <= 0:
                    return
                stop = min(start + chunk_images, int(entry["num_images"]), start + remaining)
                remaining -= stop - start
                cls = handle.get_slice("cls")[start:stop].float()  # [b, D]
                yield TeacherOutput(cls=cls, patches=handle.get_slice("patches")[start:stop].float())

    def _check_index(self) -> None:
        """The index against itself: shards 0..num_shards-1 in order, each covering its own scene positions."""
        plan, path = self.index["plan"], self.root / INDEX_FILE
        num_images, shard_size, num_shards = int(plan["num_images"]), int(plan["shard_size"]), int(plan["num_shards"])
        if num_shards != -(-num_images // shard_size):
            raise ShardError(
                f"{path} says num_shards {num_shards}, but {num_images} images in shards of {shard_size} make "
                f"{-(-num_images // shard_size)} (edited index?)"
            )
        listed = [entry["shard"] for entry in self.shards]
        if listed != list(range(num_shards)):
            raise ShardError(
                f"{path} lists shards {listed[:8]}{'...' if len(listed) > 8 else ''}, "
                f"expected 0..{num_shards - 1} in order (num_shards {num_shards})"
            )
        for shard, entry in enumerate(self.shards):
            first = shard * shard_size
            expected = (shard_file_name(shard), first, min(shard_size, num_images - first))
            found = (entry["file"], entry["first_position"], entry["num_images"] + len(entry["skipped"]))
            if found != expected:
                raise ShardError(
                    f"{path}: the entry of shard {shard} names file {found[0]}, first position {found[1]} and "
                    f"{found[2]} images (stored + skipped), expected {expected[0]}, {expected[1]} and {expected[2]}"
                )

    def _check_shard(self, entry: dict) -> None:
        """One shard file against its index entry, from the file size and header alone."""
        path = self.root / entry["file"]
        if not path.is_file():
            raise ShardError(f"shard {path} listed in {self.root / INDEX_FILE} does not exist")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ShardError(f"shard {path} has {size} bytes but the index says {entry['bytes']} (truncated?)")
        n, (h, w), D = int(entry["num_images"]), self.grid, self.dim
        expected = {"patches": [n, h, w, D], "cls": [n, D], "positions": [n], "content_sha256": [n, 32]}
        try:
            with safe_open(path, framework="pt") as handle:
                shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
                meta = json.loads((handle.metadata() or {}).get("saccade", "{}"))
        except Exception as err:  # safetensors raises SafetensorError for a damaged header
            raise ShardError(f"shard {path} is unreadable: {err}") from err
        if shapes != expected:
            raise ShardError(f"shard {path} holds tensors {shapes}, but the index implies {expected}")
        if meta.get("shard") != entry["shard"]:
            found = meta.get("shard")
            raise ShardError(f"shard {path} holds shard {found}, but the index lists it as {entry['shard']}")

    def _check_contents(self, shard: int) -> None:
        """Shard bytes against the sha256 in the index, and finite features; reads the whole file."""
        path = self.root / self.shards[shard]["file"]
        if sha256_file(path) != self.shards[shard]["sha256"]:
            raise ShardError(f"shard {path} does not match the sha256 in {self.root / INDEX_FILE} (corrupt?)")
        with safe_open(path, framework="pt") as handle:
            for key in ("patches", "cls"):
                values = handle.get_tensor(key)  # [n, h, w, D] or [n, D]
                bad = (~torch.isfinite(values)).flatten(1).any(dim=1).nonzero().flatten().tolist()  # rows
                if bad:
                    raise ShardError(
                        f"shard {path} holds non-finite {key} for {len(bad)} image(s), first row {bad[0]} "
                        f"({self._image_ids(shard)[bad[0]]}): export the features again"
                    )
        self._checked.add(shard)

    def _handle(self, shard: int):
        if shard not in self._checked:
            self._check_contents(shard)
        if shard not in self._handles:
            self._handles[shard] = safe_open(self.root / self.shards[shard]["file"], framework="pt")
        return self._handles[shard]

    def _image_ids(self, shard: int) -> list[str]:
        if shard not in self._ids:
            path = self.root / self.shards[shard]["file"]
            try:
                with safe_open(path, framework="pt") as handle:
                    meta = json.loads(handle.metadata()["saccade"])
            except (KeyError, TypeError, ValueError) as err:
                raise ShardError(f"shard {path} has no readable saccade metadata: {err}") from err
            self._ids[shard] = meta["image_ids"]
        return self._ids[shard]

    def __getstate__(self) -> dict:
        # File handles do not cross process boundaries (DataLoader workers reopen them lazily).
        return {**self.__dict__, "_handles": {}}


class DistillationPairs(Dataset):
    """(scene, teacher targets) pairs: item i -> (Scene, TeacherTargets) for the i-th stored feature.

    The scene dataset must be the one that was exported (same ids, same size); each item also checks that the
    image file still has the content hash recorded at export time.
    """

    def __init__(self, scenes: FileScenes, features: TeacherFeatures) -> None:
        recorded, current = features.plan["scenes"], scenes.fingerprint()
        for key in ("num_images", "ids_sha256", "size_px"):
            if recorded[key] != current[key]:
                raise ValueError(
                    f"scenes do not match the export in {features.root}: {key} is {current[key]!r}, "
                    f"the export recorded {recorded[key]!r}"
                )
        self.scenes, self.features = scenes, features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[Scene, TeacherTargets]:
        targets = self.features[index]
        scene = self.scenes[targets.position]
        if scene.content_sha256 != targets.content_sha256:
            raise ValueError(
                f"image {self.scenes.path(targets.position)} changed since the export "
                f"(sha256 {scene.content_sha256[:12]}..., recorded {targets.content_sha256[:12]}...)"
            )
        return scene, targets


class ShardDataset(Dataset):
    """A finished export as (image [3, S, S], patches [h, w, D] fp16, cls [D] fp32) triples, for pretraining.

    The scenes are rebuilt from the source recorded in the index (an image folder or the bundled set) unless
    `scenes` is given.
    """

    def __init__(self, root: str | os.PathLike, *, scenes: FileScenes | None = None, verify: bool = False) -> None:
        features = TeacherFeatures(root, verify=verify)
        self.pairs = DistillationPairs(scenes if scenes is not None else scenes_of(features), features)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        scene, targets = self.pairs[index]
        return scene.image, targets.patches, targets.cls


def scenes_of(features: TeacherFeatures) -> FileScenes:
    """Rebuild the scene dataset an export was made from, using the source recorded in its index."""
    from saccade.data.bundled import bundled_scenes

    source, size_px = features.index.get("scene_source"), features.plan["scenes"]["size_px"]
    if source is None:
        raise ValueError(f"the export in {features.root} does not record its scene source; pass the scenes explicitly")
    if source.get("kind") == "image-folder":
        return ImageFolderScenes(source["root"], size_px=size_px, extensions=source["extensions"])
    if source.get("kind") == "bundled":
        return bundled_scenes(
            source["split"], size_px=size_px, sources=source["sources"], debian_root=source["debian_root"]
        )
    raise ValueError(f"unknown scene source {source!r} in {features.root / INDEX_FILE}")


def collate_pairs(batch: Sequence[tuple[Scene, TeacherTargets]]) -> tuple[Tensor, TeacherOutput]:
    """DataLoader collate: -> (images [B, 3, S, S], TeacherOutput(cls [B, D] fp32, patches [B, h, w, D] fp32))."""
    images = torch.stack([scene.image for scene, _ in batch])  # [B, 3, S, S]
    cls = torch.stack([targets.cls for _, targets in batch])  # [B, D]
    patches = torch.stack([targets.patches for _, targets in batch]).float()  # [B, h, w, D]
    return images, TeacherOutput(cls=cls, patches=patches)
