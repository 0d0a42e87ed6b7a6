"""Does a canvas keep what its glimpses' tokens show? The fine-tile evidence before and after the Writes (issue 19).

Issue 19 diagnostic. On the bundled segmentation benchmark (fashion-seg, 128 px scenes, 8 x 8 cells of 16 px),
a CanViT looks at the 16 tiles of C2F's finest level (32 px glimpses, 2 x 2 tokens each, one token per canvas
cell), and a linear probe per cell (benchmarks/cell_probe.py's) reads three things:
  - the glimpse tokens themselves, each tile seen from a fresh state (what the backbone offers);
  - the values the last Write would store, V(LN(token)), placed at the token's own cell (a perfect Write);
  - the canvas after the 16 glimpses (what the Writes stored), with `--last-write-only` the last Write alone.
It also prints how much each cell's canvas changed against the value of its own token (norm ratio; 1 for a
perfect Write, ~4 when the 15 other tiles leak into it as much as its own) and their cosine.

The model is a CanViTConfig JSON with its backbone selected from the bundled teacher and the local canvas start
(saccade.pretrain.canvas_start), untrained, or a trained model folder (--model). Switches that test what loses
the evidence:
  --fresh-cls            CanViTConfig.cls_recurrence = False: every glimpse starts from the recurrent-CLS init;
  --patches-only         CanViTConfig.write_patches_only: the Writes' keys are the patch tokens only;
  --canvas-start         "local" (default) or "local-position" (saccade.pretrain.canvas_start), for --config;
  --query-ln-weight W    the Writes' canvas LayerNorm weight (1 at the local start; 0: queries are position only);
  --sink-zoom Z          the Write sink's logit per zoom level (10 at the local start).

Measured (2026-12-04, fashion-seg's objects then 32-64 px), configs/experiments/canvit-s16-frozen-sink.json
untrained, --last-write-only: tokens 15.2, perfect Write 14.1; canvas 7.8 (change / own value 4.15, cosine 0.45);
--fresh-cls 10.6 (4.03, 0.84); --patches-only --query-ln-weight 0 --sink-zoom 12: 9.4 (0.90, 0.51); all four
switches: 14.6 (0.91, 0.99); all four with every Write: 19.0 (1.44, 0.61). So two things lose the evidence: the
recurrent CLS, fed back into a frozen teacher backbone, changes its patch tokens (with local Writes, the canvas
holds values at cosine 0.51 to those of a fresh glimpse's tokens), and the local start's locality does not hold once
the canvas has content (its query content meets the key's position carrier) nor for the CLS, which has no position
and so looks as if it sat at the scene centre.

    python benchmarks/write_retention.py --last-write-only
    python benchmarks/write_retention.py --last-write-only --fresh-cls --patches-only --query-ln-weight 0 --sink-zoom 12
    python benchmarks/write_retention.py --last-write-only --config configs/experiments/canvit-s16-frozen-local.json \
        --canvas-start local-position

The last command is the same model built with the library's options: 14.6 (0.91, 0.99) again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from cell_probe import GRID, NUM_TEST, NUM_TRAIN, cell_labels, cell_miou, token_mosaic
from torch import Tensor

import saccade
from saccade.data.crops import normalize
from saccade.evaluate.benchmark import build_benchmark
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse

TILES, GLIMPSE_PX = 4, 32


def build(args: argparse.Namespace) -> saccade.CanViT:
    """The CanViT under test, with the switches applied."""
    from saccade.pretrain.canvas_start import apply_canvas_start

    if args.model:
        from saccade.model.checkpoint import load_pretrained

        loaded = load_pretrained(args.model)
        weights = getattr(loaded, "canvit", loaded).state_dict()
        config = getattr(loaded, "canvit", loaded).config
    else:
        weights, config = None, saccade.CanViTConfig.from_dict(json.loads(Path(args.config).read_text()))
    switches = {"cls_recurrence": False} if args.fresh_cls else {}
    switches |= {"write_patches_only": True} if args.patches_only else {}
    torch.manual_seed(0)
    canvit = saccade.CanViT(dataclasses.replace(config, **switches))
    with torch.no_grad():
        if weights is None:
            from saccade.pretrain.weight_selection import select_from_dinov2
            from saccade.teachers.dinov2_bundled import load_bundled_dinov2

            select_from_dinov2(canvit, load_bundled_dinov2().vit)
            apply_canvas_start(canvit, args.canvas_start)
        else:
            canvit.load_state_dict(weights)
        for write in canvit.canvas_writes:
            if args.query_ln_weight is not None:
                write.ln_q.weight.fill_(args.query_ln_weight)
            if args.sink_zoom is not None:
                if write.sink_zoom is None:
                    raise SystemExit("--sink-zoom needs a model with a Write sink (canvas_write_sink)")
                write.sink_zoom.fill_(args.sink_zoom)
        if args.last_write_only:
            for write in canvit.canvas_writes[:-1]:
                write.v_map.weight.zero_()
                write.v_map.bias.zero_()
    return canvit.eval()


@torch.inference_mode()
def canvas_change_after_fine_tiles(canvit, images: Tensor) -> Tensor:
    """Canvas cells [N, 8, 8, D_cv] after the 16 fine tiles (row-major order) minus their init."""
    centres = (2 * torch.arange(TILES) + 1) / TILES - 1  # [n] tile centres in scene units
    out = []
    for start in range(0, len(images), 64):
        scenes = normalize(images[start : start + 64])
        B = len(scenes)
        state = canvit.init_state(batch_size=B, canvas_grid=GRID)
        for y in centres:
            for x in centres:
                where = Viewpoint(centers=torch.stack([y, x]).expand(B, 2), scales=torch.full((B,), 1 / TILES))
                state = canvit(sample_glimpse(scenes, where, GLIMPSE_PX), state, where).state
        out.append(state.canvas_patch_grid())
    return torch.cat(out) - canvit.init_canvas_patch.detach().reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/experiments/canvit-s16-frozen-sink.json")
    parser.add_argument("--model", help="a trained CanViT or pretraining model folder instead of --config")
    parser.add_argument("--canvas-start", default="local", help="for --config: default, local or local-position")
    parser.add_argument("--fresh-cls", action="store_true")
    parser.add_argument("--patches-only", action="store_true")
    parser.add_argument("--query-ln-weight", type=float)
    parser.add_argument("--sink-zoom", type=float)
    parser.add_argument("--last-write-only", action="store_true")
    args = parser.parse_args()
    canvit = build(args)
    benchmark = build_benchmark("fashion-seg", progress=False)
    train, test = benchmark.train.images[:NUM_TRAIN], benchmark.test.images[:NUM_TEST]
    labels = cell_labels(benchmark.train.targets[:NUM_TRAIN]), cell_labels(benchmark.test.targets[:NUM_TEST])

    tokens = [token_mosaic(canvit, images, tiles=TILES, glimpse_px=GLIMPSE_PX) for images in (train, test)]
    print(f"glimpse tokens: cell mIoU {cell_miou(tokens[0], labels[0], tokens[1], labels[1]):.1f}")
    write = canvit.canvas_writes[-1]
    with torch.no_grad():
        values = [write.v_map(write.ln_kv(part)) for part in tokens]  # [N, 8, 8, D_cv]
    print(
        f"a perfect last Write, V(LN(token)) at its cell: {cell_miou(values[0], labels[0], values[1], labels[1]):.1f}"
    )
    canvases = [canvas_change_after_fine_tiles(canvit, images) for images in (train, test)]
    score = cell_miou(canvases[0], labels[0], canvases[1], labels[1])
    ratio = canvases[0].norm(dim=-1).mean() / values[0].norm(dim=-1).mean()
    cosine = F.cosine_similarity(canvases[0], values[0], dim=-1).mean()
    print(f"canvas after the 16 fine tiles: cell mIoU {score:.1f}; change / own value {ratio:.2f}, cosine {cosine:.2f}")


if __name__ == "__main__":
    main()
