"""Does a CanViT's canvas hold spatial detail, or one scene-wide vector copied into every cell?

Issue 19 diagnostic. A probe can only read objects from the canvas if its cells differ where the scene differs.
For a checkpoint this prints, over scenes whose four quadrants have different colours, in the space of its
teacher-patch readout (a component shared by all cells can dominate the raw canvas and a probe can project it out):
  - the cosine between the predictions of cells (0, 0) and (G-1, G-1) after a full-scene glimpse (near 1: uniform);
  - how much each cell changes when the first glimpse of a fresh canvas is the top-left quadrant (a write that
    lands where it looked changes the top-left cells more: ratio inside / outside > 1).
`--toy` first trains the checkpoint on a task that is spatial by construction (the target of each canvas cell is
the colour statistics of its scene cell), as a control that the architecture and trainer can learn locality.
`--local-start` starts that training from Canvas Attention set to write and read locally
(PretrainConfig.canvas_start = "local", saccade.pretrain.canvas_start).

Measured (issue 19): the demo's checkpoint with the default start (2026-12-03) and a fresh model change every cell
alike after a quadrant glimpse (ratio 1.00): with logits of order one the RoPE kernel cannot single out a cell. The
toy, 300 steps: after a quadrant glimpse, cosine inside it 0.885 (default start) / 0.901 (local start), elsewhere
0.776 / 0.774. On the distillation target, over 300 steps, the local start changed nothing (held-out C2F cosine at
t = 0: 0.198 / 0.195); over the demo's 1,300 it makes the cosine rise with glimpses (docs/main-job.md).

`--fresh` measures a new canvit-t16d6 with the local start, `--write-sink` with a Write sink
(CanViTConfig.canvas_write_sink): in the raw canvas a 1/16 tile after the full scene changes its own cells 1.43x as
much as the others without the sink and 4.17x with it (2026-12-04).

    python benchmarks/canvas_locality.py --model report/pretrain/model --glimpse-px 32
    python benchmarks/canvas_locality.py --fresh --write-sink
    python benchmarks/canvas_locality.py --toy --steps 300 --output-dir runs/canvas-locality-toy [--local-start]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
import torch.nn.functional as F

from saccade.episode_config import EPISODES
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.model.checkpoint import load_pretrained
from saccade.model.config import preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.pretrain.canvas_start import local_canvas_start

SCENE_PX = 128


@torch.inference_mode()
def locality(model: CanViTForPretraining, *, glimpse_px: int, canvas_grid: int, num_scenes: int = 16) -> dict:
    """Cell similarity after a full glimpse and where a top-left quadrant glimpse writes, on random scenes."""
    canvit = model.canvit.eval()
    scenes = _quadrant_scenes(num_scenes)
    full = Viewpoint(centers=torch.zeros(num_scenes, 2), scales=torch.ones(num_scenes))
    top_left = Viewpoint(centers=torch.full((num_scenes, 2), -0.5), scales=torch.full((num_scenes,), 0.5))
    state = canvit.init_state(batch_size=num_scenes, canvas_grid=canvas_grid)
    after_full = canvit(sample_glimpse(scenes, full, glimpse_px), state, full).state
    after_quadrant = canvit(sample_glimpse(scenes, top_left, glimpse_px), state, top_left).state
    # C2F's finest level: a top-left 1/4 x 1/4 tile after the full-scene glimpse
    tile = Viewpoint(centers=torch.full((num_scenes, 2), -0.75), scales=torch.full((num_scenes,), 0.25))
    after_tile = canvit(sample_glimpse(scenes, tile, glimpse_px), after_full, tile).state
    # In the readout's (standardized teacher) space: a large component shared by all cells is invisible there.
    B, G = num_scenes, canvas_grid
    cells = model.predict_teacher_patches(after_full).reshape(B, G, G, -1)  # [B, G, G, D_t]
    fresh = model.predict_teacher_patches(state).reshape(B, G, G, -1)  # [B, G, G, D_t]
    cells_after = model.predict_teacher_patches(after_quadrant).reshape(B, G, G, -1)  # [B, G, G, D_t]
    change = (cells_after - fresh).norm(dim=-1).mean(0)  # [G, G]
    full_change = (cells - fresh).norm(dim=-1).mean(0)  # [G, G]
    raw_tile_change = (after_tile.canvas_patches - after_full.canvas_patches).norm(dim=-1).mean(0).reshape(G, G)
    tile_change = (model.predict_teacher_patches(after_tile).reshape(B, G, G, -1) - cells).norm(dim=-1).mean(0)
    return {
        "corner_cell_cosine": F.cosine_similarity(cells[:, 0, 0], cells[:, -1, -1], dim=-1).mean().item(),
        "quadrant_write_inside_over_outside": _inside_over_outside(change, G // 2),
        "tile_write_inside_over_outside": _inside_over_outside(tile_change, G // 4),
        "tile_write_inside_over_outside_raw_canvas": _inside_over_outside(raw_tile_change, G // 4),
        "full_write_least_over_mean": (full_change.min() / full_change.mean()).item(),
        "relative_change_per_cell": (change / change.mean()).tolist(),
    }


def _inside_over_outside(change: torch.Tensor, side: int) -> float:
    """Mean change [G, G] of the top-left side x side cells over that of the others."""
    inside = change[:side, :side].sum()
    return (inside / side**2 / ((change.sum() - inside) / (change.numel() - side**2))).item()


def _quadrant_scenes(num: int) -> torch.Tensor:
    """[num, 3, S, S] scenes whose four quadrants have different colours (plus a little noise): cells must differ."""
    generator = torch.Generator().manual_seed(0)
    half = SCENE_PX // 2
    colours = torch.randn(num, 3, 2, 2, generator=generator)  # [B, 3, 2, 2] one colour per quadrant
    scenes = colours.repeat_interleave(half, dim=2).repeat_interleave(half, dim=3)  # [B, 3, S, S]
    return scenes + 0.1 * torch.randn(scenes.shape, generator=generator)


def train_toy(steps: int, output_dir: str, *, local_start: bool = False) -> CanViTForPretraining:
    """canvit-t16d6 trained to predict each canvas cell's colour statistics from random coloured rectangles."""
    from saccade.pretrain.config import PretrainConfig
    from saccade.pretrain.data import TensorDistillationDataset
    from saccade.pretrain.trainer import pretrain

    generator = torch.Generator().manual_seed(0)
    num, cell = 2048, SCENE_PX // 8
    scenes = torch.randn(num, 3, 1, 1, generator=generator).expand(num, 3, SCENE_PX, SCENE_PX).clone()
    for _ in range(4):
        for image in scenes:
            top, left = torch.randint(0, SCENE_PX - cell, (2,), generator=generator).tolist()
            height, width = torch.randint(cell, 4 * cell, (2,), generator=generator).tolist()
            image[:, top : top + height, left : left + width] = torch.randn(3, 1, 1, generator=generator)
    means = F.avg_pool2d(scenes, cell).permute(0, 2, 3, 1).reshape(num, 64, 3)  # [N, 8*8, 3]
    patches = torch.cat([means, means**2], dim=-1)  # [N, 64, 6]
    config = PretrainConfig(
        model="canvit-t16d6", episode=EPISODES["cpu"], batch_size=32, steps=steps, lr=1e-3, warmup_steps=50,
        schedule="cosine", rollouts=("full_then_random", "coarse_to_fine"), standardizer_samples=1024,
        checkpoint_every=steps, val_every=0, output_dir=output_dir, canvas_start="local" if local_start else "default",
    )  # fmt: skip
    return pretrain(config, TensorDistillationDataset(scenes, patches, patches.mean(1)), progress=True).model


def fresh_model(*, write_sink: bool, canvas_grid: int) -> CanViTForPretraining:
    """A new canvit-t16d6 with the local canvas start (random readout: the raw canvas is what to look at)."""
    torch.manual_seed(0)
    config = dataclasses.replace(preset("canvit-t16d6"), canvas_write_sink=write_sink)
    model = CanViTForPretraining(config, teacher_dim=384, teacher_patch_grid=canvas_grid)
    local_canvas_start(model.canvit)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="CanViTForPretraining checkpoint folder")
    parser.add_argument("--toy", action="store_true", help="train the spatial toy task first and measure that model")
    parser.add_argument("--fresh", action="store_true", help="measure a new canvit-t16d6 with the local start")
    parser.add_argument("--write-sink", action="store_true", help="--fresh: with a Write sink (canvas_write_sink)")
    parser.add_argument("--steps", type=int, default=300, help="toy training steps")
    parser.add_argument("--local-start", action="store_true", help="start the toy from the local canvas start")
    parser.add_argument("--output-dir", default="runs/canvas-locality-toy")
    parser.add_argument("--glimpse-px", type=int, default=32)
    parser.add_argument("--canvas-grid", type=int, default=8)
    args = parser.parse_args()
    if args.toy + args.fresh + (args.model is not None) != 1:
        parser.error("give exactly one of --model, --toy and --fresh")
    if args.local_start and not args.toy:
        parser.error("--local-start goes with --toy")
    if args.write_sink and not args.fresh:
        parser.error("--write-sink goes with --fresh")
    if args.toy:
        model = train_toy(args.steps, args.output_dir, local_start=args.local_start)
    elif args.fresh:
        model = fresh_model(write_sink=args.write_sink, canvas_grid=args.canvas_grid)
    else:
        model = load_pretrained(args.model)
    if not isinstance(model, CanViTForPretraining):
        parser.error(f"{args.model} is not a pretraining checkpoint (it has no teacher readouts)")
    result = locality(model, glimpse_px=args.glimpse_px, canvas_grid=args.canvas_grid)
    print(f"cosine of cells (0, 0) and (G-1, G-1) after a full glimpse: {result['corner_cell_cosine']:.3f}")
    ratio = result["quadrant_write_inside_over_outside"]
    print(f"a first glimpse at the top-left quadrant changes the cells inside / outside it: {ratio:.2f}")
    ratio = result["tile_write_inside_over_outside"]
    print(
        f"after the full scene, a glimpse of the top-left 1/16 tile changes the cells inside / outside it: {ratio:.2f}"
    )
    ratio = result["tile_write_inside_over_outside_raw_canvas"]
    print(f"  the same in the raw canvas (not the readout's space): {ratio:.2f}")
    least = result["full_write_least_over_mean"]
    print(f"a first full-scene glimpse changes its least-changed cell {least:.2f} x as much as the average cell")


if __name__ == "__main__":
    main()
