"""`saccade pack-shards`: an image folder or a teacher-feature export -> WebDataset-format tar shards."""

from __future__ import annotations

import json
from dataclasses import dataclass

from saccade.cli._checks import output_folder


@dataclass(frozen=True, kw_only=True)
class PackShardsCommand:
    """Pack scenes into WebDataset-format tar shards for streamed pretraining (`saccade pretrain --data SHARDS`): each
    sample is the image file's own bytes, a .json (its id) and, from an export-features folder, its teacher targets
    (.patches.npy fp16, .cls.npy). Copy the shards to an object store and train from `pipe:` commands."""

    data: str
    """An image folder (jpg / png / webp, recursive) or a finished `saccade export-features` folder."""
    output_dir: str
    """Folder of the shards, shard-000000.tar, shard-000001.tar, ..."""
    shard_size: int = 1000
    """Samples per shard; a run reads with (processes x --data-workers) readers, so pack at least that many shards."""


def run_pack_shards(command: PackShardsCommand) -> int:
    from saccade.data.tar_shards import pack_shards

    output_folder(command.output_dir, flag="--output-dir")
    shards = pack_shards(command.data, command.output_dir, shard_size=command.shard_size)
    print(json.dumps({"output_dir": command.output_dir, "shards": len(shards), "first": str(shards[0])}))
    return 0
