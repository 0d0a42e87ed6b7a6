"""One rank of a tiny pretraining run streamed from tar shards, as a subprocess for the SIGKILL-resume test.

Usage: python run_stream.py OUTPUT_DIR SHARDS STEPS CHECKPOINT_EVERY; RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT come from the environment (as torchrun sets them). Each rank logs its batches' sample ids to
OUTPUT_DIR/samples-rank-<r>.jsonl.
"""

from __future__ import annotations

import sys

from tests.pretrain.run_synthetic import config

from saccade.pretrain.stream import ShardStream, StreamOptions
from saccade.pretrain.trainer import pretrain


def main() -> None:
    output_dir, shards, steps, checkpoint_every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    options = StreamOptions(num_workers=2, shuffle_buffer=4, head_samples=16, sample_log_dir=output_dir)
    pretrain(config(output_dir, steps, checkpoint_every), ShardStream.open(shards, options), progress=False)


if __name__ == "__main__":
    main()
