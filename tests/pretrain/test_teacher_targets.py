"""The teacher in the loop: targets equal an export's bit for bit, a run trains on an image folder, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.datasets.helpers import make_image_folder
from tests.evaluate.fakes import TinyTeacher

import saccade.pretrain.state as state_module
from saccade.cli import main
from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import TeacherFeatures
from saccade.data.specs import open_distillation
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.teacher_targets import TeacherInLoopDataset
from saccade.teachers import load_teacher

GRID = 4  # canvas grid = teacher patch grid


def hf_teacher_folder(root: Path, *, patch_size: int = 8) -> Path:
    """A tiny random transformers DINOv2 saved as a local Hugging Face folder."""
    transformers = pytest.importorskip("transformers", reason="transformers (optional extra 'hf') not installed")
    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=patch_size,
        image_size=patch_size * GRID,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(root)
    return root


def teacher_of(kind: str, root: Path):
    return TinyTeacher(patch_size=8, dim=16) if kind == "tiny" else load_teacher("hf", hf_teacher_folder(root))


@pytest.mark.parametrize("kind", ["tiny", "hf"])
@pytest.mark.parametrize("cls_dtype", ["float32", "float16"])
def test_in_loop_targets_equal_the_exported_shards_bit_for_bit(tmp_path, kind, cls_dtype):
    images = make_image_folder(tmp_path / "images", 7)
    teacher = teacher_of(kind, tmp_path / "teacher")
    scenes = ImageFolderScenes(images, size_px=teacher.patch_size * GRID)
    config = ExportConfig(shard_size=4, batch_size=3, cls_dtype=cls_dtype)
    export_features(scenes, teacher, tmp_path / "shards", config=config, progress=False)
    exported = TeacherFeatures(tmp_path / "shards")

    data = open_distillation(str(images), canvas_grid=GRID, teacher=teacher)
    assert isinstance(data, TeacherInLoopDataset) and len(data) == len(exported) == 7
    for indices in ([0, 1, 2], [3], [4, 5, 6]):  # the export's teacher batches (3 per batch, shards of 4)
        batch = data.collate(indices)
        assert batch.patches.dtype == batch.cls.dtype == torch.float32
        stored = [exported[i] for i in indices]
        patches = torch.stack([item.patches for item in stored]).flatten(1, 2)  # [B, G*G, D] float16
        cls = torch.stack([item.cls for item in stored])  # [B, D]
        assert torch.equal(batch.patches.half(), patches)
        assert torch.equal(batch.cls.to(getattr(torch, cls_dtype)).float(), cls)
        assert torch.equal(batch.scenes, torch.stack([scenes[i].image for i in indices]))


def tiny_run(output_dir: Path, steps: int, *, data: str, teacher_path: Path, checkpoint_every: int = 1000) -> list[str]:
    """argv of a tiny `saccade pretrain` with the hf teacher in the loop."""
    args = ["pretrain", "--data", data, "--teacher", "hf", "--teacher-path", str(teacher_path)]
    args += ["--model", "canvit-tiny", "--episode.glimpse-px", "16", "--episode.canvas-grid", str(GRID)]
    args += ["--batch-size", "4", "--steps", str(steps), "--warmup-steps", "1", "--standardizer-samples", "6"]
    args += ["--val-every", "0", "--log-every", "1", "--threads", "1", "--checkpoint-every", str(checkpoint_every)]
    return [*args, "--output-dir", str(output_dir), "--quiet", "--device", "cpu"]


def test_pretrain_from_an_image_folder_resumes_without_refitting(tmp_path, monkeypatch, capsys):
    images = str(make_image_folder(tmp_path / "images", 9))
    teacher = hf_teacher_folder(tmp_path / "teacher")
    assert main(tiny_run(tmp_path / "whole", 4, data=images, teacher_path=teacher)) == 0
    assert main(tiny_run(tmp_path / "split", 2, data=images, teacher_path=teacher)) == 0
    recorded = json.loads((tmp_path / "split" / "config.json").read_text())
    assert (recorded["teacher"], recorded["teacher_path"], recorded["standardizer_samples"]) == ("hf", str(teacher), 6)
    capsys.readouterr()

    def refit(*args, **kwargs):
        raise AssertionError("a resumed run refitted its standardizers")

    monkeypatch.setattr(state_module, "_fit_standardizers", refit)
    longer = [*tiny_run(tmp_path / "split", 4, data=images, teacher_path=teacher), "--allow-config-change"]
    assert main(longer) == 0  # resumes the finished 2-step run for 2 more steps
    assert json.loads(capsys.readouterr().out)["steps"] == 4
    whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    split = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert whole.keys() == split.keys()
    for key, value in whole.items():  # same standardizers, same targets, same steps: the same weights
        assert torch.equal(split[key], value), key


def test_a_resumed_run_keeps_its_teacher(tmp_path, capsys):
    images = str(make_image_folder(tmp_path / "images", 6))
    teacher = hf_teacher_folder(tmp_path / "teacher")
    assert main(tiny_run(tmp_path / "run", 1, data=images, teacher_path=teacher)) == 0
    other = hf_teacher_folder(tmp_path / "other")
    capsys.readouterr()
    assert main(tiny_run(tmp_path / "run", 2, data=images, teacher_path=other)) == 2
    assert "teacher_path" in capsys.readouterr().err


def test_teacher_and_data_must_agree(tmp_path, capsys):
    images = str(make_image_folder(tmp_path / "images", 4))
    base = ["pretrain", "--output-dir", str(tmp_path / "run"), "--quiet"]
    assert main([*base, "--data", images]) == 2
    assert "not a teacher-feature export (no index.json); to train on its images" in capsys.readouterr().err
    teacher = str(hf_teacher_folder(tmp_path / "teacher"))
    assert main([*base, "--data", "synthetic", "--teacher", "hf", "--teacher-path", teacher]) == 2
    assert "a named set carries its own teacher features" in capsys.readouterr().err
    scenes = ImageFolderScenes(images, size_px=32)
    export_features(scenes, TinyTeacher(patch_size=8, dim=16), tmp_path / "shards", progress=False)
    assert main([*base, "--data", str(tmp_path / "shards"), "--teacher", "hf", "--teacher-path", teacher]) == 2
    assert "is a teacher-feature export: drop --teacher" in capsys.readouterr().err
    with pytest.raises(ValueError, match="teacher_path names the folder of teacher 'hf'"):
        PretrainConfig(teacher="dinov2-s14-imgfocus", teacher_path=teacher)
    with pytest.raises(ValueError, match="teacher must be one of"):
        PretrainConfig(teacher="dinov3")
    with pytest.raises(ValueError, match="teacher_path names the folder"):
        PretrainConfig(teacher="hf")
