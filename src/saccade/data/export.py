"""Teacher-feature export (paper App. C): run a frozen teacher over scenes once, write resumable shards.

Shard s covers scene positions [s * shard_size, (s + 1) * shard_size); under torchrun (RANK / WORLD_SIZE in the
environment) rank r writes the shards with s % world_size == r, so the shards are the same for any number of
processes. Crash safety: a shard is written to a hidden temporary file, fsynced and renamed into place
(`os.replace` is atomic), and only then recorded in the rank's journal `progress/rank-<r>.json`, itself
replaced atomically. A killed export therefore leaves only complete shards visible, and a rerun with the same
arguments skips every journalled shard and redoes the rest. The process that finds all shards journalled
writes `index.json` (see `saccade.data.shards` for the format). Unreadable images are skipped, warned about,
and listed in the report and the index.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from saccade._io import atomic_write
from saccade.data.scenes import FileScenes, Scene, UnreadableImageError
from saccade.data.shards import FORMAT, INDEX_FILE, read_index, shard_file_name
from saccade.teachers.base import Teacher
from saccade.teachers.dinov2_bundled import sha256_file

__all__ = ["ExportConfig", "ExportReport", "SkippedImage", "SkippedImageWarning", "export_features"]

PROGRESS_DIR = "progress"


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """How to export teacher features."""

    shard_size: int = 1024
    """scene positions per shard (the paper used 4096); the last shard may be smaller"""
    batch_size: int = 32
    """images per teacher forward"""
    cls_dtype: Literal["float32", "float16"] = "float32"
    """storage dtype of the CLS feature (patches are always float16)"""
    num_workers: int = 0
    """DataLoader worker processes decoding images (0 = decode in the main process)"""
    device: str = "cpu"
    """device the teacher runs on"""

    def __post_init__(self) -> None:
        for name in ("shard_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ExportConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"ExportConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.cls_dtype not in ("float32", "float16"):
            raise ValueError(f"ExportConfig.cls_dtype must be 'float32' or 'float16', got {self.cls_dtype!r}")


@dataclass(frozen=True)
class SkippedImage:
    """A scene left out of its shard because its file could not be read."""

    position: int
    image_id: str
    reason: str


class SkippedImageWarning(UserWarning):
    """An unreadable image was skipped by the export."""


@dataclass(frozen=True, kw_only=True)
class ExportReport:
    """What one call of `export_features` did on one rank."""

    out_dir: Path
    rank: int
    world_size: int
    complete: bool  # index.json exists: every shard of the export is on disk
    shards_written: tuple[int, ...] = ()
    shards_already_done: tuple[int, ...] = ()  # this rank's shards found on disk from an earlier run
    images_written: int = 0
    skipped: tuple[SkippedImage, ...] = ()
    seconds: float = 0.0


def export_features(
    scenes: FileScenes,
    teacher: Teacher,
    out_dir: str | os.PathLike,
    *,
    config: ExportConfig | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
) -> ExportReport:
    """Write this rank's shards of teacher features for `scenes` to `out_dir`, resuming where a run stopped.

    `rank` / `world_size` default to $RANK / $WORLD_SIZE (torchrun), else 0 / 1.
    """
    config = config or ExportConfig()
    rank, world_size = _rank_and_world(rank, world_size)
    out = Path(out_dir)
    start = time.perf_counter()
    plan = _plan(scenes, teacher, config)
    (out / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    if (out / INDEX_FILE).is_file():
        _check_plan(read_index(out)["plan"], plan, out / INDEX_FILE)
        return ExportReport(out_dir=out, rank=rank, world_size=world_size, complete=True)
    done = _journalled_shards(out, plan)
    journal = {s: entry for s, entry in _read_journal(out, rank, plan).items() if s in done}
    todo = [s for s in range(plan["num_shards"]) if s % world_size == rank and s not in done]
    already = tuple(s for s in range(plan["num_shards"]) if s % world_size == rank and s in done)
    written, skipped, num_images = [], [], 0
    for shard, entry in _run_teacher(scenes, teacher, out, plan, todo, config, rank, world_size, progress):
        journal[shard] = entry
        shards = {str(s): e for s, e in sorted(journal.items())}
        _write_json(out / PROGRESS_DIR / f"rank-{rank}.json", {"format": FORMAT, "plan": plan, "shards": shards})
        written.append(shard)
        num_images += entry["num_images"]
        skipped += [SkippedImage(**item) for item in entry["skipped"]]
    _finish_if_complete(out, plan, scenes.source)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # so every rank returns after the last one has written the index
    return ExportReport(
        out_dir=out,
        rank=rank,
        world_size=world_size,
        shards_written=tuple(written),
        shards_already_done=already,
        images_written=num_images,
        skipped=tuple(skipped),
        seconds=time.perf_counter() - start,
        complete=(out / INDEX_FILE).is_file(),
    )


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    try:
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    except ValueError as err:
        raise ValueError(f"RANK and WORLD_SIZE must be integers: {err}") from err
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def _plan(scenes: FileScenes, teacher: Teacher, config: ExportConfig) -> dict:
    """Everything that fixes the shards' contents; a resumed export must match it exactly."""
    num_images = len(scenes)
    if num_images == 0:
        raise ValueError("no scenes to export")
    if scenes.size_px % teacher.patch_size:
        raise ValueError(
            f"scene size {scenes.size_px} px must be a multiple of the teacher patch size {teacher.patch_size}"
        )
    grid = scenes.size_px // teacher.patch_size
    return {
        "num_images": num_images,
        "shard_size": config.shard_size,
        "num_shards": -(-num_images // config.shard_size),
        "grid_h": grid,
        "grid_w": grid,
        "teacher": {"name": teacher.name, "dim": teacher.dim, "patch_size": teacher.patch_size},
        "scenes": scenes.fingerprint(),
        "patch_dtype": "float16",
        "cls_dtype": config.cls_dtype,
    }


def _check_plan(found: dict, plan: dict, path: Path) -> None:
    if found != plan:
        keys = sorted(k for k in plan.keys() | found.keys() if found.get(k) != plan.get(k))
        diff = "; ".join(f"{k}: {found.get(k)!r} there, {plan.get(k)!r} now" for k in keys)
        raise ValueError(f"{path} belongs to a different export ({diff}); use a new output folder")


def _read_journal(out: Path, rank: int, plan: dict) -> dict[int, dict]:
    path = out / PROGRESS_DIR / f"rank-{rank}.json"
    if not path.is_file():
        return {}
    return {int(s): entry for s, entry in _load_journal(path, plan)["shards"].items()}


def _load_journal(path: Path, plan: dict) -> dict:
    try:
        journal = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the export journal {path}: {err}") from err
    if journal.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} journal")
    _check_plan(journal["plan"], plan, path)
    return journal


def _journalled_shards(out: Path, plan: dict) -> dict[int, dict]:
    """Shards recorded in any rank's journal whose file is on disk with the recorded size."""
    done = {}
    for path in sorted((out / PROGRESS_DIR).glob("rank-*.json")):
        for s, entry in _load_journal(path, plan)["shards"].items():
            shard_path = out / entry["file"]
            if shard_path.is_file() and shard_path.stat().st_size == entry["bytes"]:
                done[int(s)] = entry
    return done


class _Guarded(Dataset):
    """Scenes whose unreadable files become SkippedImage records instead of exceptions."""

    def __init__(self, scenes: FileScenes) -> None:
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, position: int):
        try:
            return position, self.scenes[position]
        except UnreadableImageError as err:
            return position, SkippedImage(position=position, image_id=self.scenes.image_ids[position], reason=str(err))


def _run_teacher(
    scenes: FileScenes,
    teacher: Teacher,
    out: Path,
    plan: dict,
    todo: list[int],
    config: ExportConfig,
    rank: int,
    world_size: int,
    progress: bool,
) -> Iterator[tuple[int, dict]]:
    """Yield (shard, index entry) for each shard of `todo`, after it is safely on disk."""
    size, total = plan["shard_size"], plan["num_images"]
    batches = [
        list(range(first, min(first + config.batch_size, (s + 1) * size, total)))
        for s in todo
        for first in range(s * size, min((s + 1) * size, total), config.batch_size)
    ]
    loader = DataLoader(_Guarded(scenes), batch_sampler=batches, collate_fn=list, num_workers=config.num_workers)
    bar = tqdm(
        total=sum(len(b) for b in batches),
        desc=f"teacher features (rank {rank}/{world_size})",
        unit="img",
        disable=not progress,
    )
    rows: list[tuple[int, Scene, torch.Tensor, torch.Tensor]] = []  # (position, scene, cls [D], patches [h, w, D])
    skipped: list[SkippedImage] = []
    for batch in loader:
        shard = batch[0][0] // size
        good = [(p, scene) for p, scene in batch if not isinstance(scene, SkippedImage)]
        for _, item in batch:
            if isinstance(item, SkippedImage):
                warnings.warn(f"skipping unreadable image: {item.reason}", SkippedImageWarning, stacklevel=2)
                skipped.append(item)
        if good:
            images = torch.stack([scene.image for _, scene in good]).to(config.device)  # [B, 3, S, S]
            output = teacher(images)
            cls, patches = output.cls.float().cpu(), output.patches.cpu()  # [B, D], [B, h, w, D]
            rows += [(p, scene, cls[i], patches[i]) for i, (p, scene) in enumerate(good)]
        bar.update(len(batch))
        if batch[-1][0] + 1 == min((shard + 1) * size, total):  # last position of this shard
            yield shard, _write_shard(out, shard, rows, skipped, plan)
            rows, skipped = [], []
    bar.close()


def _write_shard(out: Path, shard: int, rows: list[tuple], skipped: list[SkippedImage], plan: dict) -> dict:
    """Write one shard atomically; return its index entry."""
    D, h, w = plan["teacher"]["dim"], plan["grid_h"], plan["grid_w"]
    cls_dtype = getattr(torch, plan["cls_dtype"])
    patches = torch.stack([r[3] for r in rows]) if rows else torch.zeros(0, h, w, D)  # [n, h, w, D]
    cls = torch.stack([r[2] for r in rows]) if rows else torch.zeros(0, D)  # [n, D]
    if tuple(patches.shape[1:]) != (h, w, D) or tuple(cls.shape[1:]) != (D,):
        raise ValueError(
            f"teacher {plan['teacher']['name']} returned patches {tuple(patches.shape[1:])} and cls "
            f"{tuple(cls.shape[1:])} per image, expected [{h}, {w}, {D}] and [{D}]"
        )
    digests = torch.tensor([list(bytes.fromhex(r[1].content_sha256)) for r in rows], dtype=torch.uint8)
    tensors = {
        "patches": _checked_cast(patches, torch.float16),
        "cls": _checked_cast(cls, cls_dtype),
        "positions": torch.tensor([r[0] for r in rows], dtype=torch.int64).reshape(-1),  # [n]
        "content_sha256": digests.reshape(-1, 32),  # [n, 32]
    }
    meta = {"format": FORMAT, "shard": shard, "image_ids": [r[1].image_id for r in rows]}
    name = shard_file_name(shard)
    metadata = {"saccade": json.dumps(meta, sort_keys=True)}
    path = atomic_write(out / name, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return {
        "shard": shard,
        "file": name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "first_position": shard * plan["shard_size"],
        "num_images": len(rows),
        "skipped": [vars(item) for item in skipped],
    }


def _checked_cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    y = x.to(dtype).contiguous()
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"teacher features are not finite in {dtype} (max |x| = {x.abs().max().item():.3g})")
    return y


def _write_json(path: Path, payload: dict) -> None:
    """Replace `path` atomically with `payload` as JSON."""
    text = json.dumps(payload, indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _finish_if_complete(out: Path, plan: dict, scene_source: dict | None) -> None:
    """Write index.json once every shard is journalled; remove leftover temporary shard files."""
    done = _journalled_shards(out, plan)
    if len(done) < plan["num_shards"]:
        return
    entries = [done[s] for s in range(plan["num_shards"])]
    skipped = [item for entry in entries for item in entry["skipped"]]
    index = {"format": FORMAT, "plan": plan, "scene_source": scene_source, "shards": entries}
    _write_json(out / INDEX_FILE, {**index, "num_skipped": len(skipped)})
    for stale in out.glob(".shard-*.safetensors.*.tmp"):
        stale.unlink(missing_ok=True)
