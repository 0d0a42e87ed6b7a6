"""Would larger objects let the segmentation benchmark show more? A demo model and the teacher on other sizes.

Issue 19 diagnostic. The demo's segmentation benchmark (fashion-seg) pastes 2-4 Fashion-MNIST objects of 48-96 px on
128 px scenes (32-64 px until 2026-12-05, when this measurement moved it). Here its object sizes are replaced by
--object-px, the benchmark is built again (cached apart, as its config differs), and the demo's evaluation runs on
it for a pretrained demo model (--demo-dir: its folder, whose pretrain/model and settings are used): the
segmentation probe trained on C2F rollouts, the policies per glimpse, and the passive teacher at 28 / 56 / 112 px.
The model is not pretrained again: its scenes keep the demo's object sizes.

Measured (2026-12-05) on `make demo`'s model from the bundled start of then (seed 0), 48-96 px objects, 2 cores, 10 min:
mIoU per glimpse t = 0 .. 9 C2F 7.6 10.1 12.3 13.5 14.7 14.9 14.9 15.0 15.0 15.1, EG-C2F 7.6 11.2 13.1 14.5 ... 15.5,
F2C 6.8 7.4 7.9 ... 10.1, RFS 7.6 -> 7.4; the teacher 7.6 / 16.1 / 30.0 at 28 / 56 / 112 px. With 32-64 px
objects the same model reads 7.6 -> 10.8 under C2F and the teacher 7.7 / 11.1 / 26.0.

    python benchmarks/object_size.py --demo-dir report --object-px 32 64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from saccade.demo.config import DemoConfig
from saccade.evaluate import benchmark, pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", default="report", help="a finished demo folder (its pretrain/model, config)")
    parser.add_argument("--object-px", type=int, nargs=2, required=True, metavar=("LOW", "HIGH"))
    parser.add_argument("--policies", nargs="+", default=["C2F", "F2C", "RFS", "EG-C2F"])
    parser.add_argument("--output-dir", default=None, help="default: runs/object-size-LOW-HIGH")
    args = parser.parse_args()
    low, high = args.object_px
    demo = DemoConfig.from_file(Path(args.demo_dir) / "config.json")
    demo = dataclasses.replace(demo, output_dir=args.demo_dir)
    sizes = dataclasses.replace(benchmark.BENCHMARKS["fashion-seg"], object_px=(low, high))
    benchmark.BENCHMARKS["fashion-seg"] = sizes  # the evaluation builds its benchmark by this name
    config = dataclasses.replace(
        demo.evaluate_run(),
        benchmark="fashion-seg",
        policies=tuple(args.policies),
        output_dir=args.output_dir or f"runs/object-size-{low}-{high}",
    )
    summary = pipeline.run_evaluation(config)
    table = {c.policy: [round(100 * v, 1) for v in c.mean.tolist()] for c in summary.curves if c.metric == "mIoU"}
    teacher = {p.input_px: round(100 * p.value, 1) for p in summary.passive if p.metric == "mIoU"}
    print(json.dumps({"object_px": [low, high], "mIoU per glimpse": table, "teacher mIoU": teacher}, indent=1))


if __name__ == "__main__":
    main()
