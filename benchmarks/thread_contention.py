"""Throughput of tiny-model training and batch-1 inference on an idle CPU and next to one busy process.

Issue 18 (item 10): torch's default intra-op threading (one thread per core) collapses when another process
keeps a core busy. This script measures, in one run, each workload at a fixed number of steps with
  - `default`: torch's own thread count (what saccade did before it chose threads itself),
  - `auto`: saccade.threads.choose_threads (what every saccade command does now),
  - `1`, `2`, ...: a fixed count,
both alone and beside one single-threaded busy-loop process started before the workload (as a test run
or another job would be). Each measurement runs in a fresh subprocess so that the thread choice is made
as a command would make it. Results: a table on stdout and a JSON file.

    python benchmarks/thread_contention.py --output runs/thread-contention.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = ("train-t16d6", "train-tiny", "infer-t16d6-b1")
BUSY_LOOP = "while True: pass"


def _measure(workload: str, threads: str, steps: int) -> dict:
    """Run `workload` for `steps` steps in this process; {'steps_per_s', 'num_threads', 'reason'}."""
    import torch

    from saccade.threads import apply_threads, choose_threads

    if threads == "default":
        reason = f"torch default ({torch.get_num_threads()} threads)"
    else:
        choice = choose_threads(None if threads == "auto" else int(threads), work_tokens=_work_tokens(workload))
        apply_threads(choice)
        reason = choice.reason
    run = _workload(workload)
    for _ in range(3):  # warm-up: allocator, kernels, caches
        run()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    seconds = time.perf_counter() - start
    return {"steps_per_s": steps / seconds, "num_threads": torch.get_num_threads(), "reason": reason}


def _work_tokens(workload: str) -> int:
    """Token rows per forward: batch x (glimpse + canvas tokens) of a 32 px glimpse on an 8 x 8 canvas."""
    return (1 if workload.startswith("infer") else 32) * (16 + 64)


def _workload(name: str):
    import torch

    import saccade
    from saccade.geometry import Viewpoint
    from saccade.glimpse import sample_glimpse

    torch.manual_seed(0)
    model_name = "canvit-tiny" if name == "train-tiny" else "canvit-t16d6"
    if name.startswith("train"):
        from saccade.episode_config import EPISODES
        from saccade.model.pretraining import CanViTForPretraining
        from saccade.pretrain.config import PretrainConfig
        from saccade.pretrain.data import DistillationBatch
        from saccade.pretrain.step import training_step

        config = PretrainConfig(
            model=model_name, episode=EPISODES["cpu"], batch_size=32, steps=10, warmup_steps=1,
            continue_prob=0.0, rollouts=("full_then_random", "coarse_to_fine"),
        )  # fmt: skip
        model = CanViTForPretraining(saccade.preset(model_name), teacher_dim=384, teacher_patch_grid=8)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = DistillationBatch(torch.randn(32, 3, 128, 128), torch.randn(32, 64, 384), torch.randn(32, 384))
        model.teacher_patch_standardizer.fit(batch.patches)
        model.teacher_cls_standardizer.fit(batch.cls)
        generator = torch.Generator().manual_seed(0)

        def step() -> None:
            training_step(model, batch, config=config, generator=generator)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    model = saccade.CanViT(saccade.preset(model_name)).eval()
    scene = torch.randn(1, 3, 128, 128)
    viewpoint = Viewpoint(centers=torch.zeros(1, 2), scales=torch.ones(1))
    state = model.init_state(batch_size=1, canvas_grid=8)

    def glimpse_step() -> None:
        with torch.inference_mode():
            model(sample_glimpse(scene, viewpoint, 32), state, viewpoint)

    return glimpse_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--threads", nargs="+", default=["default", "auto", "1"])
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--infer-steps", type=int, default=300)
    parser.add_argument("--output", default="runs/thread-contention.json")
    parser.add_argument("--_child", nargs=3, metavar=("WORKLOAD", "THREADS", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        workload, threads, steps = args._child
        print(json.dumps(_measure(workload, threads, int(steps))))
        return

    rows = []
    for busy in (False, True):
        competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
        try:
            time.sleep(1.5 if busy else 0)  # let the competitor show up in the kernel's CPU accounting
            for workload in args.workloads:
                steps = args.train_steps if workload.startswith("train") else args.infer_steps
                for threads in args.threads:
                    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
                    command = [sys.executable, __file__, "--_child", workload, threads, str(steps)]
                    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                    row = {"workload": workload, "threads": threads, "busy": busy, **json.loads(output)}
                    rows.append(row)
                    print(
                        f"{workload:15s} {'busy' if busy else 'idle':4s} threads={threads:7s} -> "
                        f"{row['num_threads']} threads, {row['steps_per_s']:7.2f} steps/s  ({row['reason']})",
                        flush=True,
                    )
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=1))
    print("\nslowdown next to one busy process (idle steps/s / busy steps/s):")
    for workload in args.workloads:
        for threads in args.threads:
            idle, busy = (
                next(r for r in rows if r["workload"] == workload and r["threads"] == threads and r["busy"] == b)
                for b in (False, True)
            )
            print(f"  {workload:15s} threads={threads:7s} {idle['steps_per_s'] / busy['steps_per_s']:5.2f}x")


if __name__ == "__main__":
    main()
