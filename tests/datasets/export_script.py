"""Run an export of a tiny image folder with the tiny teacher; used by tests as a subprocess (or under torchrun).

usage: python export_script.py FOLDER OUT SHARD_SIZE BATCH_SIZE DELAY_S
"""

from __future__ import annotations

import os
import sys

import torch

from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from tests.datasets.helpers import SIZE_PX, SlowTeacher, tiny_teacher


def main() -> None:
    folder, out, shard_size, batch_size, delay_s = sys.argv[1:6]
    torch.set_num_threads(1)
    distributed = "LOCAL_RANK" in os.environ  # launched by torchrun
    if distributed:
        torch.distributed.init_process_group("gloo")
    teacher = SlowTeacher(tiny_teacher(), float(delay_s))
    config = ExportConfig(shard_size=int(shard_size), batch_size=int(batch_size))
    report = export_features(ImageFolderScenes(folder, size_px=SIZE_PX), teacher, out, config=config, progress=False)
    print(f"rank {report.rank}/{report.world_size} wrote {list(report.shards_written)} complete={report.complete}")
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
