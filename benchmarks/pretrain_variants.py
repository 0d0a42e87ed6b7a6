"""Does the demo's pretraining recipe show a rise with glimpses on other data or another geometry? (issue 19)

Runs the main job's pretraining (saccade.demo.config, preset "full") on other data, geometry or canvas start and
prints the held-out standardized patch cosine per glimpse that pretraining validates with (C2F, F2C, random):
  - `--data fashion`: the bundled benchmark's own kind of scenes, labels unused (saccade.data.scene_sets, as the
    demo's `--data scenes`: training photos and objects), validated on 64 held-out scenes (held-out photos and test
    objects). Until 2026-12-04 this script built them itself with seed 7 instead of scene_sets' 1,000: the
    `fashion` numbers below were measured on that build;
  - `--data photos`: crops of the bundled training photos (the demo's data), validated on `bundled-heldout`;
  - `--glimpse-px`, `--scene-px`, `--grid`: the geometry (the teacher sees patch_size x grid px);
  - `--canvas-start`: "default" (here the default, unlike the demo) or "local" (saccade.pretrain.canvas_start);
  - `--train-sources`: with `--data fashion`, catalogue sources whose training photos are behind the training
    scenes too (saccade.data.scene_sets, as the demo's `--scene-photo-sources`);
  - `--model`, `--freeze-backbone`, `--freeze-write-attention`, `--chunk-size`, `--continue-prob`, `--min-scale`,
    `--backbone-lr-scale`, `--patch-readout-blocks`: the PretrainConfig fields of those names.

Measured on 2 cores (2026-12-04, docs/main-job.md), C2F at t = 0 / 4 / 9, held out, default start unless said:
  - fashion, demo geometry (32 px glimpses of 128 px scenes, 8 x 8), 1,300 steps: 0.185 / 0.176 / 0.174;
    the canvas cell probe (benchmarks/cell_probe.py --policy C2F) 7.9 / 7.5 / 7.5 mIoU at t = 0 / 4 / 9
    (background only 7.4-7.9);
  - photos, 64 px glimpses (4 x 4 tokens) of 256 px scenes, 16 x 16 canvas (teacher at 224 px), 600 steps:
    0.267 / 0.267 / 0.261;
  - photos, demo geometry, 10,000 crops (the demo's), `--canvas-start local`, 1,300 steps: 0.326 / 0.360 / 0.374;
  - fashion, demo geometry, `--canvas-start local --freeze-backbone --model configs/experiments/canvit-s16-frozen.json`
    (the teacher's ViT-S, frozen, Reads off), 600 steps: 0.282 / 0.294 / 0.279, canvas cell probe 10.8 / 10.1 /
    10.4 / 11.0 at t = 0 / 4 / 9 / 20; with `canvit-s16-frozen-sink.json`: 0.273 / 0.304 / 0.293, cell probe
    10.8 / 11.0 / 11.2 / 11.4 (2026-12-04);
  - fashion, `--canvas-start local-position --freeze-backbone --model
    configs/experiments/canvit-s16-frozen-local.json`, 600 steps: 0.250 / 0.337 / 0.338 (flat from t = 4: the
    Writes learned to ignore the 1/16 tiles), cell probe 10.7 / 14.4 / 14.4 / 14.4; with
    `--freeze-write-attention` as well: 0.230 / 0.311 / 0.320, cell probe 7.6 / 11.7 / 12.1 / 13.8, RFS 7.6 flat.
  - fashion, the demo's frozen-backbone recipe of 2026-12-05 (`--num-train 10000 --steps 1000 --canvas-start
    local-position --freeze-backbone --freeze-write-attention --train-sources scikit-image scikit-learn
    matplotlib`): 0.276 / 0.334 / 0.341; with `--min-scale 0.25`, 0.272 / 0.327 / 0.332 at step 750, where the
    run without gave 0.273 / 0.329 / 0.334;
  - the same with `--patch-readout-blocks 1` (2026-12-05): 0.316 / 0.389 / 0.398; with `--backbone-lr-scale 0.1`
    instead of `--freeze-backbone` too, 500 steps: 0.281 / 0.386 / 0.394 (0.275 / 0.388 / 0.396 at step 375).

    python benchmarks/pretrain_variants.py runs/fashion --data fashion
    python benchmarks/pretrain_variants.py runs/local --data photos --num-train 10000 --canvas-start local
    python benchmarks/pretrain_variants.py runs/geometry --data photos --num-train 4096 --glimpse-px 64 \
        --scene-px 256 --grid 16 --steps 600
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from saccade.data.crops import CropDistillationSet
from saccade.data.scene_sets import benchmark_scene_sets
from saccade.demo.config import DEMO_PRESETS
from saccade.episode_config import EPISODES
from saccade.pretrain.config import CANVAS_STARTS
from saccade.pretrain.trainer import pretrain
from saccade.threads import use_threads


def photo_crops(num_train: int, *, grid: int) -> tuple[CropDistillationSet, CropDistillationSet]:
    """(train, held-out) crops of the bundled photos, 16 x grid px scenes."""
    from saccade.data.distill_sets import distillation_crops

    train = distillation_crops("bundled", canvas_grid=grid, num_crops=num_train)
    return train, distillation_crops("bundled-heldout", canvas_grid=grid)


RECIPE_OVERRIDES = {
    "chunk_size": int,
    "continue_prob": float,
    "min_scale": float,
    "backbone_lr_scale": float,
    "patch_readout_blocks": int,
}
"""PretrainConfig fields a flag of the same name sets instead of the demo's value."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--data", choices=("fashion", "photos"), default="fashion")
    parser.add_argument("--num-train", type=int, default=8192)
    parser.add_argument(
        "--train-sources", nargs="*", default=(), help="with --data fashion: catalogue sources of more training photos"
    )
    parser.add_argument("--steps", type=int, default=1300)
    parser.add_argument("--glimpse-px", type=int, default=32)
    parser.add_argument("--scene-px", type=int, default=128)
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--canvas-start", choices=CANVAS_STARTS, default="default")
    parser.add_argument("--model", help="another model than the demo's (a preset or CanViTConfig JSON file)")
    parser.add_argument("--freeze-backbone", action="store_true", help="PretrainConfig.freeze_backbone")
    parser.add_argument("--freeze-write-attention", action="store_true", help="PretrainConfig.freeze_write_attention")
    for name, kind in RECIPE_OVERRIDES.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, help=f"PretrainConfig.{name} (default: the demo's)")
    args = parser.parse_args()
    use_threads(args.threads)
    if args.data == "fashion":
        train, heldout = benchmark_scene_sets(
            "fashion-seg",
            canvas_grid=args.grid,
            num_train=args.num_train,
            num_heldout=64,
            train_sources=args.train_sources,
        )
    else:
        train, heldout = photo_crops(args.num_train, grid=args.grid)
    recipe = DEMO_PRESETS["full"].pretrain
    episode = dataclasses.replace(
        EPISODES["cpu"], scene_px=args.scene_px, glimpse_px=args.glimpse_px, canvas_grid=args.grid
    )
    every = max(args.steps // 4, 1)
    config = dataclasses.replace(
        recipe,
        episode=episode,
        steps=args.steps,
        output_dir=args.output_dir,
        threads=args.threads,
        val_every=every,
        checkpoint_every=every,
        canvas_start=args.canvas_start,
        model=args.model or recipe.model,
        freeze_backbone=args.freeze_backbone,
        freeze_write_attention=args.freeze_write_attention,
        **{name: getattr(args, name) for name in RECIPE_OVERRIDES if getattr(args, name) is not None},
    )
    summary = pretrain(config, train, heldout).summary
    Path(args.output_dir, "variant.json").write_text(json.dumps({"args": vars(args), "summary": summary}, indent=1))
    for rollout, cosines in summary["validation"].items():
        print(f"{rollout:>16}: " + " ".join(f"{value:.3f}" for value in cosines["patch"]))


if __name__ == "__main__":
    main()
