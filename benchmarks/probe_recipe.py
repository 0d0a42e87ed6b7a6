"""Does the demo's probe recipe read what a canvas holds? Its head, on C2F canvases or on R-IID ones (issue 19).

Issue 19 diagnostic. The canvases of a trained model (--model) on the bundled segmentation benchmark (fashion-seg,
128 px scenes, 8 x 8 cells of 16 px, each labelled with its majority class; background only: 7.4-7.9 mIoU) are
probed per cell by the demo's segmentation probe head (saccade.probes.heads) and scored on the C2F canvases at
t = 9 of the test scenes, after training it on:
  - C2F canvases at t = 9, 1,500 steps of 64 (benchmarks/cell_probe.py's budget), 300 steps of 16 with warmup and
    cosine (the demo's), 300 steps of 160;
  - R-IID canvases of every t = 0..9, 160 per step (how the demo trained its probes until 2026-12-04), 300 and
    1,500 steps.

Measured (2026-12-05, fashion-seg's objects then 32-64 px) on the demo's model trained on the bundled photos
(canvit-s16-cpu, 1,000 steps): 12.2, 10.0, 11.4 on C2F canvases; 7.9 and 7.6 on R-IID ones. A probe trained on
random glimpses reads only background, so the demo's probes train on C2F rollouts (EvaluateRunConfig.probe_policy).

    python benchmarks/probe_recipe.py --model report/pretrain/model
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from cell_probe import NUM_CLASSES, NUM_TEST, NUM_TRAIN, canvas_per_glimpse, cell_labels, miou_of_cells
from torch import Tensor

from saccade._schedule import warmup_cosine
from saccade.evaluate.benchmark import build_benchmark
from saccade.model.checkpoint import load_pretrained
from saccade.probes.heads import ProbeConfig, build_probe


def train_and_score(train: Tensor, labels: Tensor, test: Tensor, test_labels: Tensor, *, steps, batch, schedule):
    """The demo's head trained on cell features [N, 8, 8, D] (AdamW lr 3e-3, weight decay 1e-3), scored on test."""
    torch.manual_seed(0)
    probe = build_probe(ProbeConfig(task="segmentation", in_dim=train.shape[-1], num_classes=NUM_CLASSES))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=3e-3, weight_decay=1e-3)
    for step in range(steps):
        if schedule:  # 30 warmup steps, then cosine to 0, as the demo's ProbeTrainConfig
            for group in optimizer.param_groups:
                group["lr"] = warmup_cosine(step, warmup_steps=30, total_steps=steps, peak=3e-3)
        rows = torch.randint(0, len(train), (batch,))
        loss = F.cross_entropy(probe(train[rows]), labels[rows])  # logits [B, C, 8, 8]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe.eval()
    with torch.no_grad():
        return miou_of_cells(probe(test).argmax(1), test_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained CanViT or pretraining model folder")
    args = parser.parse_args()
    loaded = load_pretrained(args.model)
    canvit = getattr(loaded, "canvit", loaded).eval()
    benchmark = build_benchmark("fashion-seg", progress=False)
    images, test_images = benchmark.train.images[:NUM_TRAIN], benchmark.test.images[:NUM_TEST]
    labels = cell_labels(benchmark.train.targets[:NUM_TRAIN])
    test_labels = cell_labels(benchmark.test.targets[:NUM_TEST])
    c2f = canvas_per_glimpse(canvit, images, glimpse_px=32, policy="C2F", ts=[9])[9]
    test = canvas_per_glimpse(canvit, test_images, glimpse_px=32, policy="C2F", ts=[9])[9]
    for name, steps, batch, schedule in (("1,500 x 64", 1500, 64, False), ("300 x 16", 300, 16, True)):
        score = train_and_score(c2f, labels, test, test_labels, steps=steps, batch=batch, schedule=schedule)
        print(f"C2F canvases at t = 9, {name}: {score:.1f}")
    score = train_and_score(c2f, labels, test, test_labels, steps=300, batch=160, schedule=True)
    print(f"C2F canvases at t = 9, 300 x 160: {score:.1f}")
    random = canvas_per_glimpse(canvit, images, glimpse_px=32, policy="R-IID", ts=list(range(10)))
    pooled, pooled_labels = torch.cat([random[t] for t in range(10)]), labels.repeat(10, 1, 1)
    for steps in (300, 1500):
        score = train_and_score(pooled, pooled_labels, test, test_labels, steps=steps, batch=160, schedule=True)
        print(f"R-IID canvases of every t, {steps} x 160: {score:.1f}")


if __name__ == "__main__":
    main()
