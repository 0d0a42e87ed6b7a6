"""How much object evidence do a CanViT's glimpse tokens and canvas hold, against the teacher's own patches?

Issue 19 diagnostic. A linear probe (LayerNorm + Linear) per 16 px cell of the bundled segmentation benchmark
(fashion-seg, 128 px scenes, an 8 x 8 grid of cells, each labelled with its majority class) is trained on frozen
features and scored by mIoU over cells on the test scenes; 7.4-7.9 is the background-only level. Sources:
  - `teacher`: the bundled DINOv2-S/14's patches of the whole scene at --teacher-px (56: 12.6, 112: 32.5);
  - `tokens`: the CanViT backbone's patch tokens of one full-scene glimpse (nearest-upsampled to 8 x 8);
  - `canvas`: the canvas after that glimpse.
  - `canvas` after t glimpses of a policy (--policy C2F --glimpses 0 4 9): does the canvas gather evidence?
The CanViT is a pretraining checkpoint (--model) or, before any training, a preset whose backbone is selected
from the teacher (--preset); --silence-reads zeroes every Canvas Read's output map first.

Measured (issue 19; fashion-seg's objects were 32-64 px until 2026-12-05, 48-96 px since): canvit-s16 before
training, reads silenced, 64 px glimpses: canvas after C2F glimpse 0 / 1 / 4 / 9: 14.4 / 14.4 / 16.6 / 13.2 (with a
locality start of Canvas Attention, runs/ only); after 150 pretraining steps with the backbone frozen: 8.2 / 8.1 /
7.7 / 7.7 at lr 4e-4, 11.6 / 11.3 / 11.0 / 10.3 at lr 5e-5, 16.6 / 15.8 / 17.6 / 15.5 at lr 4e-4 with the Reads also
frozen at zero (a learned Read erases the evidence). canvit-t16d6 after the demo's pretraining, 32 px: 7.6 / 7.6 /
7.5 / 7.5.

    python benchmarks/cell_probe.py --preset canvit-s16 --glimpse-px 128 --silence-reads
    python benchmarks/cell_probe.py --model report/pretrain/model --glimpse-px 32
    python benchmarks/cell_probe.py --model report/pretrain/model --glimpse-px 32 --policy C2F --glimpses 0 1 4 9
    python benchmarks/cell_probe.py --teacher-px 56 112
    python benchmarks/cell_probe.py --teacher-px 28 --tiles 1 2 4
    python benchmarks/cell_probe.py --preset configs/experiments/canvit-s16-frozen.json --glimpse-px 32 --tiles 1 2 4

`--tiles n ...` shows the scene as an n x n mosaic of views instead (the teacher at --teacher-px per view, the
CanViT one glimpse per view from a fresh state) and probes the stitched patches: what a backbone of that quality
sees at C2F's levels, before any canvas. Measured (2026-12-04), views of 1 / 2 / 4 tiles per side: the teacher at
28 px per view 7.6 / 10.8 / 17.0 (its patches bilinear on the cells); the tokens of the teacher-selected ViT-S
backbone (configs/experiments/canvit-s16-frozen.json, RoPE instead of the teacher's position embeddings, 16 px
patches) at 32 px per glimpse 7.5 / 10.8 / 15.2. Its canvas after C2F t = 0 / 4 / 9 / 20, frozen backbone, 400
steps of the demo's recipe: 9.3 / 9.3 / 8.8 / 9.2, and with the Write sink 9.3 / 9.7 / 10.3 / 10.4
(benchmarks/write_retention.py finds where the evidence goes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.data.crops import normalize, teacher_features
from saccade.evaluate.benchmark import build_benchmark
from saccade.evaluate.metrics import mean_iou_of, scene_confusions
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse

GRID, NUM_CLASSES, NUM_TRAIN, NUM_TEST = 8, 11, 1024, 256


def cell_labels(label_maps: Tensor) -> Tensor:
    """[N, H, W] pixel labels -> [N, 8, 8] majority class of each cell."""
    one_hot = F.one_hot(label_maps.long(), NUM_CLASSES).permute(0, 3, 1, 2).float()  # [N, C, H, W]
    return F.adaptive_avg_pool2d(one_hot, GRID).argmax(1)  # [N, 8, 8]


def on_cells(features: Tensor) -> Tensor:
    """[N, h, w, D] -> [N, 8, 8, D] (nearest)."""
    return F.interpolate(features.permute(0, 3, 1, 2), size=(GRID, GRID), mode="nearest").permute(0, 2, 3, 1)


def cell_miou(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, steps: int = 1500) -> float:
    """Train a LayerNorm + Linear probe on [N, 8, 8, D] cell features; mIoU (%) over the classes of the test cells."""
    torch.manual_seed(0)
    probe = torch.nn.Sequential(torch.nn.LayerNorm(train.shape[-1]), torch.nn.Linear(train.shape[-1], NUM_CLASSES))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(train), (64,))
        loss = F.cross_entropy(probe(train[batch]).permute(0, 3, 1, 2), train_labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return miou_of_cells(probe(test).argmax(-1), test_labels)  # predicted [N, 8, 8]


def miou_of_cells(predicted: Tensor, labels: Tensor) -> float:
    """mIoU (%) over the classes present in `predicted` or `labels` [N, 8, 8], as the evaluation scores pixels."""
    confusion = scene_confusions(predicted, labels, NUM_CLASSES).sum(0)  # [C, C]
    return 100 * mean_iou_of(confusion).item()


def stitched(patches: Tensor, tiles: int) -> Tensor:
    """Patch maps of the views [B * n * n, g, g, D] (row-major per scene) -> the mosaic on cells [B, 8, 8, D]."""
    _, g, _, D = patches.shape
    mosaic = patches.reshape(-1, tiles, tiles, g, g, D).permute(0, 1, 3, 2, 4, 5)  # [B, n, g, n, g, D]
    return on_cells(mosaic.reshape(-1, tiles * g, tiles * g, D))


@torch.inference_mode()
def teacher_mosaic(teacher, images: Tensor, *, tiles: int, view_px: int) -> Tensor:
    """[N, 8, 8, D] teacher patches of uint8 scenes seen as tiles x tiles views, each resized to view_px
    (benchmarks/teacher_tiles.py's mosaic, bilinear on the cells)."""
    from teacher_tiles import mosaic_patches

    out = []
    for start in range(0, len(images), 64):
        scenes = normalize(images[start : start + 64])
        out.append(mosaic_patches(teacher, scenes, tiles=tiles, tile_px=view_px, grid=GRID).float())
    return torch.cat(out).reshape(len(images), GRID, GRID, -1)


@torch.inference_mode()
def token_mosaic(canvit, images: Tensor, *, tiles: int, glimpse_px: int) -> Tensor:
    """[N, 8, 8, D] glimpse tokens of one glimpse per tile of a tiles x tiles mosaic, each from a fresh state."""
    grid = glimpse_px // canvit.config.backbone.patch_size
    centres = (2 * torch.arange(tiles) + 1) / tiles - 1  # [n] tile centres in scene units
    out = []
    for start in range(0, len(images), 64):
        scenes = normalize(images[start : start + 64])
        B = len(scenes)
        views = []
        for y in centres:
            for x in centres:
                where = Viewpoint(centers=torch.stack([y, x]).expand(B, 2), scales=torch.full((B,), 1 / tiles))
                state = canvit.init_state(batch_size=B, canvas_grid=GRID)
                output = canvit(sample_glimpse(scenes, where, glimpse_px), state, where)
                views.append(output.glimpse_patches.reshape(B, grid, grid, -1))
        out.append(stitched(torch.stack(views, 1).flatten(0, 1), tiles))  # views in row-major order per scene
    return torch.cat(out)


@torch.inference_mode()
def canvit_features(canvit, images: Tensor, *, glimpse_px: int) -> tuple[Tensor, Tensor]:
    """(glimpse tokens, canvas) [N, 8, 8, D] each after one full-scene glimpse of uint8 scenes [N, 3, H, W]."""
    tokens, canvases = [], []
    grid = glimpse_px // canvit.config.backbone.patch_size
    for start in range(0, len(images), 64):
        scenes = normalize(images[start : start + 64])
        B = len(scenes)
        full = Viewpoint(centers=torch.zeros(B, 2), scales=torch.ones(B))
        state = canvit.init_state(batch_size=B, canvas_grid=GRID)
        out = canvit(sample_glimpse(scenes, full, glimpse_px), state, full)
        tokens.append(on_cells(out.glimpse_patches.reshape(B, grid, grid, -1)))
        canvases.append(out.state.canvas_patch_grid())
    return torch.cat(tokens), torch.cat(canvases)


@torch.inference_mode()
def canvas_per_glimpse(canvit, images: Tensor, *, glimpse_px: int, policy: str, ts: list[int]) -> dict[int, Tensor]:
    """{t: canvas [N, 8, 8, D] after glimpse t} of a `policy` rollout (policy seed 0) over uint8 scenes."""
    from saccade.episode import iter_rollout
    from saccade.policies import make_policy

    canvases: dict[int, list[Tensor]] = {t: [] for t in ts}
    for start in range(0, len(images), 64):
        scenes = normalize(images[start : start + 64])
        chosen = make_policy(policy, batch_size=len(scenes), generator=torch.Generator().manual_seed(0))
        steps = iter_rollout(canvit, scenes, chosen, num_glimpses=max(ts) + 1, glimpse_px=glimpse_px, canvas_grid=GRID)
        for step in steps:
            if step.t in canvases:
                canvases[step.t].append(step.state.canvas_patch_grid())
    return {t: torch.cat(parts) for t, parts in canvases.items()}


def _canvit(args: argparse.Namespace):
    import saccade
    from saccade.model.checkpoint import load_pretrained
    from saccade.pretrain.weight_selection import select_from_dinov2
    from saccade.teachers.dinov2_bundled import load_bundled_dinov2

    if args.model:
        loaded = load_pretrained(args.model)
        canvit = getattr(loaded, "canvit", loaded)
    else:
        if args.preset.endswith(".json"):
            config = saccade.CanViTConfig.from_dict(json.loads(Path(args.preset).read_text()))
        else:
            config = saccade.preset(args.preset)
        canvit = saccade.CanViT(config)
        with torch.no_grad():
            select_from_dinov2(canvit, load_bundled_dinov2().vit)
    if args.silence_reads:
        with torch.no_grad():
            for read in canvit.canvas_reads:
                for parameter in read.o_map.parameters():
                    parameter.zero_()
    return canvit.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="CanViT or CanViTForPretraining checkpoint folder")
    parser.add_argument(
        "--preset", help="a preset (or CanViTConfig JSON file) whose backbone is selected from the bundled teacher"
    )
    parser.add_argument("--glimpse-px", type=int, default=64)
    parser.add_argument("--silence-reads", action="store_true", help="zero every Canvas Read's output map")
    parser.add_argument("--teacher-px", type=int, nargs="*", default=[], help="also probe the teacher at these sizes")
    parser.add_argument("--policy", help="probe the canvas after --glimpses of this policy's rollout instead")
    parser.add_argument("--glimpses", type=int, nargs="+", default=[0, 1, 4, 9], help="glimpse indices t (--policy)")
    parser.add_argument("--tiles", type=int, nargs="*", default=[], help="probe n x n mosaics of views instead")
    args = parser.parse_args()
    if args.model and args.preset:
        parser.error("give at most one of --model and --preset")
    benchmark = build_benchmark("fashion-seg", progress=False)
    train, test = benchmark.train.images[:NUM_TRAIN], benchmark.test.images[:NUM_TEST]
    labels = cell_labels(benchmark.train.targets[:NUM_TRAIN]), cell_labels(benchmark.test.targets[:NUM_TEST])
    if args.teacher_px:
        from saccade.teachers.dinov2_bundled import load_bundled_dinov2

        teacher = load_bundled_dinov2()
        for px in args.teacher_px:
            for tiles in args.tiles:
                train_patches = teacher_mosaic(teacher, train, tiles=tiles, view_px=px)
                test_patches = teacher_mosaic(teacher, test, tiles=tiles, view_px=px)
                score = cell_miou(train_patches, labels[0], test_patches, labels[1])
                print(f"teacher at {px} px per view, {tiles} x {tiles} views: cell mIoU {score:.1f}")
            if args.tiles:
                continue
            train_patches = on_cells(teacher_features(teacher, train, teacher_px=px)[0].float())
            test_patches = on_cells(teacher_features(teacher, test, teacher_px=px)[0].float())
            print(f"teacher at {px} px: cell mIoU {cell_miou(train_patches, labels[0], test_patches, labels[1]):.1f}")
    if (args.model or args.preset) and args.tiles:
        canvit = _canvit(args)
        for tiles in args.tiles:
            train_tokens = token_mosaic(canvit, train, tiles=tiles, glimpse_px=args.glimpse_px)
            test_tokens = token_mosaic(canvit, test, tiles=tiles, glimpse_px=args.glimpse_px)
            score = cell_miou(train_tokens, labels[0], test_tokens, labels[1])
            print(f"{args.model or args.preset}: glimpse tokens of {tiles} x {tiles} glimpses: cell mIoU {score:.1f}")
    elif (args.model or args.preset) and args.policy:
        canvit = _canvit(args)
        train = canvas_per_glimpse(canvit, train, glimpse_px=args.glimpse_px, policy=args.policy, ts=args.glimpses)
        test = canvas_per_glimpse(canvit, test, glimpse_px=args.glimpse_px, policy=args.policy, ts=args.glimpses)
        scores = ", ".join(f"t={t}: {cell_miou(train[t], labels[0], test[t], labels[1]):.1f}" for t in args.glimpses)
        print(f"{args.model or args.preset} at {args.glimpse_px} px, canvas cell mIoU under {args.policy}: {scores}")
    elif args.model or args.preset:
        canvit = _canvit(args)
        train_tokens, train_canvas = canvit_features(canvit, train, glimpse_px=args.glimpse_px)
        test_tokens, test_canvas = canvit_features(canvit, test, glimpse_px=args.glimpse_px)
        tokens = cell_miou(train_tokens, labels[0], test_tokens, labels[1])
        canvas = cell_miou(train_canvas, labels[0], test_canvas, labels[1])
        name = args.model or args.preset
        print(f"{name} at {args.glimpse_px} px: cell mIoU glimpse tokens {tokens:.1f}, canvas {canvas:.1f}")


if __name__ == "__main__":
    main()
