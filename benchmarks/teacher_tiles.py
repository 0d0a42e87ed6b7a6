"""Can zoomed views recover the teacher's full-scene patch features? An upper bound on what detail can add.

Issue 19 diagnostic. CanViT distils the teacher's patches of the whole scene at full resolution; a zoomed glimpse
shows a tile of the scene at a higher resolution than the full-scene glimpse, but out of its context. Here the
teacher itself sees the scene as an n x n mosaic of tiles, each resized to --tile-px, and its tiles' patch maps are
stitched and compared with its full-scene patches (bilinear to the target grid, standardized with statistics of the
same scenes, mean cosine over patches and scenes, as pretraining scores a student). If the mosaic at the finest
zoom scores no better than the whole scene at the glimpse's resolution, a teacher-like backbone cannot gain from
zooming in by copying: the student would have to learn to integrate views, which takes far longer to train.

Measured (fashion-seg's objects then 32-64 px; 48 fashion-seg test scenes on held-out photos / 48 training scenes,
128 px; DINOv2-S/14; cosines):

| target: whole scene at | view                       | held-out | training |
| ---------------------- | -------------------------- | -------- | -------- |
| 112 px (8 x 8 grid)    | whole scene at 28 px       | 0.044    | -0.036   |
|                        | whole scene at 56 px       | 0.361    | 0.325    |
|                        | 2 x 2 tiles at 56 px       | 0.332    | 0.304    |
|                        | 4 x 4 tiles at 28 px       | 0.078    | 0.042    |
|                        | 4 x 4 tiles at 56 px       | 0.146    | 0.141    |
| 224 px (16 x 16 grid)  | whole scene at 112 px      | 0.651    | 0.691    |
|                        | 2 x 2 tiles at 112 px      | 0.422    | 0.485    |
|                        | 4 x 4 tiles at 112 px      | 0.186    | 0.203    |

    python benchmarks/teacher_tiles.py
    python benchmarks/teacher_tiles.py --teacher-px 224 --grid 16 --tiles 1 2 4 --tile-px 56 112
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.data.crops import normalize
from saccade.evaluate.benchmark import build_benchmark
from saccade.pretrain.step import standardized_cosine
from saccade.teachers.dinov2_bundled import load_bundled_dinov2


def mosaic_patches(teacher, scenes: Tensor, *, tiles: int, tile_px: int, grid: int) -> Tensor:
    """Scenes [B, 3, S, S] seen as tiles x tiles views of tile_px each -> stitched patches [B, grid * grid, D]."""
    B, _, side, _ = scenes.shape
    step = side // tiles
    views = scenes.unfold(2, step, step).unfold(3, step, step)  # [B, 3, n, n, step, step]
    views = views.permute(0, 2, 3, 1, 4, 5).reshape(B * tiles * tiles, 3, step, step)
    with torch.no_grad():
        output = teacher(F.interpolate(views, size=(tile_px, tile_px), mode="bilinear", antialias=True))
    g = tile_px // teacher.patch_size
    patches = output.patches.reshape(B, tiles, tiles, g, g, -1).permute(0, 1, 3, 2, 4, 5)  # [B, n, g, n, g, D]
    patches = patches.reshape(B, tiles * g, tiles * g, -1).permute(0, 3, 1, 2)  # [B, D, n*g, n*g]
    patches = F.interpolate(patches, size=(grid, grid), mode="bilinear")  # [B, D, grid, grid]
    return patches.flatten(2).transpose(1, 2)  # [B, grid * grid, D]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher-px", type=int, default=112, help="the target: the teacher on the whole scene")
    parser.add_argument("--grid", type=int, default=8, help="target grid (the canvas grid)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[1, 2, 4], help="tiles per side of each mosaic")
    parser.add_argument("--tile-px", type=int, nargs="+", default=[28, 56], help="input size of each tile")
    parser.add_argument("--scenes", type=int, default=48, help="scenes of each split")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher = load_bundled_dinov2()
    benchmark = build_benchmark("fashion-seg", progress=False)
    splits = {"held-out photos": benchmark.test.images, "training photos": benchmark.train.images}
    for name, images in splits.items():
        scenes = normalize(images[: args.scenes])
        target = mosaic_patches(teacher, scenes, tiles=1, tile_px=args.teacher_px, grid=args.grid)
        mean, std = target.mean(0), target.std(0) + 1e-6  # [grid * grid, D] per position, as the standardizer

        def score(features: Tensor, mean: Tensor = mean, std: Tensor = std, target: Tensor = target) -> float:
            return standardized_cosine((features - mean) / std, (target - mean) / std).item()

        print(f"{name}: {args.scenes} scenes, target = teacher at {args.teacher_px} px on the whole scene")
        for tiles in args.tiles:
            for tile_px in args.tile_px:
                mosaic = mosaic_patches(teacher, scenes, tiles=tiles, tile_px=tile_px, grid=args.grid)
                print(f"  {tiles} x {tiles} tiles at {tile_px} px: patch cosine {score(mosaic):.3f}")


if __name__ == "__main__":
    main()
