"""A tiny pretraining run on synthetic data, as a subprocess for the resume and data-parallel tests.

Usage: python run_synthetic.py OUTPUT_DIR STEPS [CHECKPOINT_EVERY]
"""

from __future__ import annotations

import sys

from saccade.episode_config import EpisodeConfig
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.trainer import pretrain


def config(output_dir: str, steps: int, checkpoint_every: int = 1000) -> PretrainConfig:
    return PretrainConfig(
        model="canvit-tiny",
        episode=EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=4, num_glimpses=10),
        batch_size=8,
        steps=steps,
        threads=1,
        warmup_steps=2,
        lr=1e-3,
        checkpoint_every=checkpoint_every,
        val_every=0,
        log_every=1,
        standardizer_samples=64,
        output_dir=output_dir,
    )


def main() -> None:
    output_dir, steps = sys.argv[1], int(sys.argv[2])
    checkpoint_every = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    data = synthetic_dataset(64, scene_px=64, grid=4, dim=16, seed=0)
    pretrain(config(output_dir, steps, checkpoint_every), data, progress=False)


if __name__ == "__main__":
    main()
