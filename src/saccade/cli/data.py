"""`saccade scenes` (the bundled photos) and `saccade export-features` (teacher-feature shards)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import ClassVar, Literal

from saccade.cli._checks import checked_device, output_file, output_folder
from saccade.cli._tables import print_table
from saccade.data.bundled import DEFAULT_SOURCES, SourceName, Split
from saccade.teachers import TeacherName


@dataclass(frozen=True, kw_only=True)
class ScenesCommand:
    """The bundled scene set: real photographs shipped by installable packages, with a train / held-out split by
    photo. Debian sources need apt-get install."""

    split: Split = "all"
    """Which photos to list."""
    sources: tuple[SourceName, ...] = DEFAULT_SOURCES
    """Packages to take photos from."""
    debian_root: str = "/"
    """Root the Debian packages are installed or unpacked under."""
    preview: str | None = None
    """Write a contact sheet of the preprocessed scenes to this PNG."""
    size_px: int = 128
    """Scene side of the preview."""
    json: bool = False
    """Print the list as JSON."""


def run_scenes(command: ScenesCommand) -> int:
    from saccade.data.bundled import bundled_files, bundled_scenes
    from saccade.data.scenes import contact_sheet

    preview = None if command.preview is None else output_file(command.preview, flag="--preview")
    rows = bundled_files(command.split, sources=command.sources, debian_root=command.debian_root)
    listing = [
        {
            "image_id": p.image_id,
            "split": p.split,
            "photo": p.photo,
            "source": p.source,
            "path": str(path),
            "description": p.description,
        }
        for p, path in rows
    ]
    if command.json:
        print(json.dumps(listing, indent=1))
    else:
        header = ("image id", "split", "description")
        print_table(header, [(row["image_id"], row["split"], row["description"]) for row in listing])
        photos = {(row["split"], row["photo"]) for row in listing}
        counts = {split: sum(1 for s, _ in photos if s == split) for split in ("train", "heldout")}
        print(f"{len(listing)} files, {counts['train']} train photos, {counts['heldout']} held-out photos")
    if preview is not None:
        scenes = bundled_scenes(
            command.split, size_px=command.size_px, sources=command.sources, debian_root=command.debian_root
        )
        names = [image_id.split("/", 1)[-1] for image_id in scenes.image_ids]
        contact_sheet([scenes[i].image for i in range(len(scenes))], names).save(preview)
        print(f"preview: {command.preview}")
    return 0


@dataclass(frozen=True, kw_only=True)
class ExportFeaturesCommand:
    """Teacher-feature export (paper App. C): CLS and fp16 patch features after the teacher's final LayerNorm, in
    fixed-size safetensors shards with an index. Rerun the same command to resume; launch with torchrun
    --nproc_per_node N to split the shards across processes."""

    BATCH_FLAG: ClassVar[str] = "--batch-size"

    output_dir: str
    """Output folder of the shards."""
    data: str = "bundled"
    """Scenes: 'bundled' (the bundled photos) or an image folder."""
    split: Split = "train"
    """Split of the bundled photos."""
    sources: tuple[SourceName, ...] = DEFAULT_SOURCES
    """Packages to take the bundled photos from."""
    debian_root: str = "/"
    """Root the Debian packages are installed or unpacked under."""
    size_px: int = 224
    """Scene side, a multiple of the teacher's patch size."""
    teacher: TeacherName = "dinov2-s14-imgfocus"
    """The frozen teacher (saccade.teachers)."""
    teacher_path: str | None = None
    """Local Hugging Face model folder (--teacher hf)."""
    cache: str | None = None
    """Cache folder of converted weights (default $SACCADE_CACHE_DIR or ~/.cache/saccade)."""
    shard_size: int = 1024
    """Scenes per shard."""
    batch_size: int = 32
    """Images per teacher forward."""
    cls_dtype: Literal["float32", "float16"] = "float32"
    """Storage type of the CLS features (patches are always float16)."""
    num_workers: int = 0
    """Image-decoding worker processes."""
    device: str = "cpu"
    """Teacher device."""
    threads: int = 0
    """Intra-op CPU threads; 0: chosen from the free cores (saccade.threads)."""
    quiet: bool = False
    """No progress bar."""


def run_export_features(command: ExportFeaturesCommand) -> int:
    from saccade.data.bundled import bundled_scenes
    from saccade.data.export import ExportConfig, export_features
    from saccade.data.scenes import ImageFolderScenes
    from saccade.teachers import load_teacher
    from saccade.threads import use_threads

    use_threads(command.threads)
    device = checked_device(command.device)
    output_folder(command.output_dir, flag="--output-dir")
    config = ExportConfig(
        shard_size=command.shard_size,
        batch_size=command.batch_size,
        cls_dtype=command.cls_dtype,
        num_workers=command.num_workers,
        device=device,
    )
    if command.data == "bundled":
        sides = {"size_px": command.size_px, "sources": command.sources, "debian_root": command.debian_root}
        scenes = bundled_scenes(command.split, **sides)
    else:
        scenes = ImageFolderScenes(command.data, size_px=command.size_px)
    if command.teacher == "hf":
        if command.teacher_path is None:
            raise ValueError("--teacher hf needs --teacher-path (a local Hugging Face model folder)")
        teacher = load_teacher("hf", command.teacher_path)
    else:
        teacher = load_teacher(command.teacher, cache=command.cache)
    report = export_features(scenes, teacher.to(device), command.output_dir, config=config, progress=not command.quiet)
    for item in report.skipped:
        print(f"skipped {item.image_id}: {item.reason}", file=sys.stderr)
    rate = report.images_written / report.seconds if report.seconds > 0 and report.images_written else 0.0
    summary = {"output_dir": str(report.out_dir), "rank": report.rank, "world_size": report.world_size}
    summary |= {"shards_written": list(report.shards_written), "shards_already_done": list(report.shards_already_done)}
    summary |= {"images_written": report.images_written, "skipped": len(report.skipped)}
    print(json.dumps({**summary, "images_per_s": round(rate, 2), "complete": report.complete}))
    return 0
