"""One rank of a run that trains until killed, for the rank-failure test: writes pid-RANK, then pretrains.

Usage (under torchrun): python run_rank.py OUTPUT_DIR CHECKPOINT_EVERY
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from tests.pretrain.run_synthetic import config

from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.trainer import pretrain


def main() -> None:
    output_dir, checkpoint_every = Path(sys.argv[1]), int(sys.argv[2])
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"pid-{os.environ['RANK']}").write_text(str(os.getpid()))
    settings = dataclasses.replace(config(str(output_dir), 100_000, checkpoint_every), log_every=1, tracker="none")
    pretrain(settings, synthetic_dataset(64, scene_px=64, grid=4, dim=16, seed=0), progress=False)


if __name__ == "__main__":
    main()
