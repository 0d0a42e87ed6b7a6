"""The README's released-model examples run as written, offline, against a huggingface_hub cache that holds tiny
models in the released layouts at the released ids: a Hub id to a mask PNG, and to a top-5 list."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from saccade.probes.heads import ProbeConfig, SegmentationProbe
from tests.test_hub import COMMIT_A, _no_hub, authors_folder, cache_snapshot  # noqa: F401 (an autouse fixture)

README = Path(__file__).parents[2] / "README.md"


def _task_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [block for block in blocks if "saccade.tasks" in block]


def _released(tmp_path: Path, blocks: list[str]) -> None:
    """Cache every id the blocks name: the pretrained model, the canvas probe and the teacher's ImageNet probe."""
    ids = sorted({match for block in blocks for match in re.findall(r'"(canvit/[^"]+)"', block)})
    for repo_id in ids:
        folder = tmp_path / "released" / repo_id.split("/")[1]
        if "-pretrain-" in repo_id:
            authors_folder(folder, seed=0)
        elif repo_id.split("/")[1].startswith("probe-"):
            probe = SegmentationProbe(ProbeConfig(task="segmentation", in_dim=96, num_classes=150))
            folder.mkdir(parents=True)
            config = {"embed_dim": 96, "num_classes": 150, "dropout": 0.1, "use_ln": True}
            (folder / "config.json").write_text(json.dumps(config))
            save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, folder / "model.safetensors")
        else:
            folder.mkdir(parents=True)
            save_file({"weight": torch.randn(1000, 16), "bias": torch.randn(1000)}, folder / "model.safetensors")
        cache_snapshot(tmp_path / "hub", repo_id, folder, COMMIT_A, refs=("main",))


def test_the_readme_task_examples_run_offline_in_five_lines_each(tmp_path, monkeypatch, capsys):
    blocks = _task_blocks()
    assert len(blocks) == 2
    for block in blocks:  # at most five lines of user code (a call continued on the next line counts as two)
        assert len([line for line in block.splitlines() if line.strip()]) <= 5, block
        ast.parse(block)
    _released(tmp_path, blocks)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)).save("photo.jpg")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    with Image.open(tmp_path / "mask.png") as mask:
        assert mask.mode == "P" and mask.size == (90, 60)
        assert int(np.array(mask).max()) < 150
    printed = capsys.readouterr().out.strip()
    top5 = ast.literal_eval(printed)
    assert len(top5) == 1 and len(top5[0]) == 5
    assert all(0 <= index < 1000 and 0 < p <= 1 for index, p in top5[0])
    assert [p for _, p in top5[0]] == sorted((p for _, p in top5[0]), reverse=True)
