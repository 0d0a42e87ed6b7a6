"""`saccade scenes` (the bundled photos) and `saccade export-features` (teacher-feature shards)."""

from __future__ import annotations

import argparse
import json
import sys

from saccade.cli._checks import checked_device, output_file, output_folder
from saccade.cli._common import add_threads_flag, print_table, use_threads_flag


def _add_photo_sources(parser: argparse.ArgumentParser) -> None:
    from saccade.data.bundled import DEFAULT_SOURCES, SOURCES

    parser.add_argument(
        "--sources",
        nargs="+",
        choices=sorted(SOURCES),
        default=list(DEFAULT_SOURCES),
        metavar="SOURCE",
        help=f"packages to take photos from, among {', '.join(SOURCES)} (default: {' '.join(DEFAULT_SOURCES)})",
    )
    parser.add_argument("--debian-root", default="/", help="root the Debian packages are installed or unpacked under")


def add_scenes(subparsers: argparse._SubParsersAction) -> None:
    from saccade.data.bundled import DEFAULT_SOURCES

    parser = subparsers.add_parser(
        "scenes",
        help="list or preview the bundled offline photos",
        description=(
            "The bundled scene set: real photographs shipped by installable packages, with a train / held-out split "
            f"by photo. Default sources: {', '.join(DEFAULT_SOURCES)}; Debian sources need apt-get install."
        ),
    )
    parser.add_argument("--split", choices=("train", "heldout", "all"), default="all", help="(default all)")
    _add_photo_sources(parser)
    parser.add_argument("--preview", metavar="PNG", help="write a contact sheet of the preprocessed scenes")
    parser.add_argument("--size-px", type=int, default=128, help="scene side for --preview (default 128)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(run=_run_scenes)


def _run_scenes(args: argparse.Namespace) -> int:
    from saccade.data.bundled import bundled_files, bundled_scenes
    from saccade.data.scenes import contact_sheet

    preview = None if args.preview is None else output_file(args.preview, flag="--preview")
    try:
        rows = bundled_files(args.split, sources=args.sources, debian_root=args.debian_root)
    except ImportError as error:
        print(f"saccade scenes: error: {error}", file=sys.stderr)
        return 2
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
    if args.json:
        print(json.dumps(listing, indent=1))
    else:
        header = ("image id", "split", "description")
        print_table(header, [(row["image_id"], row["split"], row["description"]) for row in listing])
        photos = {(row["split"], row["photo"]) for row in listing}
        counts = {split: sum(1 for s, _ in photos if s == split) for split in ("train", "heldout")}
        print(f"{len(listing)} files, {counts['train']} train photos, {counts['heldout']} held-out photos")
    if preview is not None:
        scenes = bundled_scenes(args.split, size_px=args.size_px, sources=args.sources, debian_root=args.debian_root)
        names = [image_id.split("/", 1)[-1] for image_id in scenes.image_ids]
        sheet = contact_sheet([scenes[i].image for i in range(len(scenes))], names)
        sheet.save(preview)
        print(f"preview: {args.preview}")
    return 0


def add_export_features(subparsers: argparse._SubParsersAction) -> None:
    from saccade.teachers import TEACHERS

    parser = subparsers.add_parser(
        "export-features",
        help="run a frozen teacher over scenes and write resumable feature shards",
        description=(
            "Teacher-feature export (paper App. C): CLS and fp16 patch features after the teacher's final LayerNorm, "
            "in fixed-size safetensors shards with an index. Rerun the same command to resume; launch with "
            "torchrun --nproc_per_node N to split the shards across processes."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder of the shards")
    parser.add_argument("--scenes", default="bundled", help="'bundled' or an image folder (default bundled)")
    parser.add_argument(
        "--split", choices=("train", "heldout", "all"), default="train", help="bundled split (default train)"
    )
    _add_photo_sources(parser)
    parser.add_argument("--size-px", type=int, default=224, help="scene side, a multiple of the patch size (224)")
    parser.add_argument("--teacher", choices=sorted(TEACHERS), default="dinov2-s14-imgfocus")
    parser.add_argument("--teacher-path", help="local Hugging Face model folder (--teacher hf)")
    parser.add_argument("--cache", help="cache folder of converted weights (default $SACCADE_CACHE_DIR or ~/.cache)")
    parser.add_argument("--shard-size", type=int, default=1024, help="scenes per shard (default 1024)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per teacher forward (default 32)")
    parser.add_argument("--cls-dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    parser.add_argument("--device", default="cpu", help="teacher device (default cpu)")
    add_threads_flag(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_export_features, batch_flag="--batch-size")


def _run_export_features(args: argparse.Namespace) -> int:

    from saccade.data.bundled import bundled_scenes
    from saccade.data.export import ExportConfig, export_features
    from saccade.data.scenes import ImageFolderScenes
    from saccade.teachers import load_teacher

    use_threads_flag(args)
    device = checked_device(args.device)
    output_folder(args.out, flag="--out")
    config = ExportConfig(
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        cls_dtype=args.cls_dtype,
        num_workers=args.num_workers,
        device=device,
    )
    try:
        if args.scenes == "bundled":
            scenes = bundled_scenes(
                args.split, size_px=args.size_px, sources=args.sources, debian_root=args.debian_root
            )
        else:
            scenes = ImageFolderScenes(args.scenes, size_px=args.size_px)
        if args.teacher == "hf":
            if args.teacher_path is None:
                raise ValueError("--teacher hf needs --teacher-path (a local Hugging Face model folder)")
            teacher = load_teacher("hf", args.teacher_path)
        else:
            teacher = load_teacher(args.teacher, cache=args.cache)
    except ImportError as error:
        print(f"saccade export-features: error: {error}", file=sys.stderr)
        return 2
    report = export_features(scenes, teacher.to(device), args.out, config=config, progress=not args.quiet)
    for item in report.skipped:
        print(f"skipped {item.image_id}: {item.reason}", file=sys.stderr)
    rate = report.images_written / report.seconds if report.seconds > 0 and report.images_written else 0.0
    summary = {"out": str(report.out_dir), "rank": report.rank, "world_size": report.world_size}
    summary |= {"shards_written": list(report.shards_written), "shards_already_done": list(report.shards_already_done)}
    summary |= {"images_written": report.images_written, "skipped": len(report.skipped)}
    print(json.dumps({**summary, "images_per_s": round(rate, 2), "complete": report.complete}))
    return 0
