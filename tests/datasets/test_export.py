"""Teacher-feature export: shard layout, resume after a real SIGKILL, no partial shard, torchrun ranks, skipping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from saccade.data import export as export_module
from saccade.data.export import ExportConfig, SkippedImageWarning, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import TeacherFeatures
from tests.datasets.helpers import SIZE_PX, make_image_folder, shard_bytes, tiny_teacher

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("export_script.py")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _export(folder: Path, out: Path, **config) -> export_module.ExportReport:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocess exports use one thread; keep the arithmetic identical
    try:
        scenes = ImageFolderScenes(folder, size_px=SIZE_PX)
        return export_features(scenes, tiny_teacher(), out, config=ExportConfig(**config), progress=False)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("scenes"), 12)


def test_layout_and_contents(folder, tmp_path):
    report = _export(folder, tmp_path, shard_size=5, batch_size=2)
    assert report.complete and report.shards_written == (0, 1, 2) and report.images_written == 12
    index = json.loads((tmp_path / "index.json").read_text())
    assert [e["num_images"] for e in index["shards"]] == [5, 5, 2]
    with safe_open(tmp_path / "shard-000001.safetensors", framework="pt") as shard:
        assert shard.get_tensor("patches").dtype == torch.float16
        assert shard.get_tensor("patches").shape == (5, 2, 2, 16)
        assert shard.get_tensor("cls").dtype == torch.float32
        assert shard.get_tensor("positions").tolist() == [5, 6, 7, 8, 9]
        assert json.loads(shard.metadata()["saccade"])["shard"] == 1
    again = _export(folder, tmp_path, shard_size=5, batch_size=2)  # a finished export is a no-op
    assert again.complete and again.shards_written == ()


def test_fp16_cls_and_plan_mismatch(folder, tmp_path):
    _export(folder, tmp_path, shard_size=6, cls_dtype="float16")
    with safe_open(tmp_path / "shard-000000.safetensors", framework="pt") as shard:
        assert shard.get_tensor("cls").dtype == torch.float16
    with pytest.raises(ValueError, match="shard_size: 6 there, 4 now"):
        _export(folder, tmp_path, shard_size=4, cls_dtype="float16")


def test_resume_after_sigkill_matches_uninterrupted_run(folder, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _export(folder, reference, shard_size=2, batch_size=1)
    args = [sys.executable, str(SCRIPT), str(folder), str(killed), "2", "1", "0.25"]
    process = subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = killed / "progress" / "rank-0.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and len(json.loads(journal.read_text())["shards"]) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "index.json").exists()
    visible = sorted(p.name for p in killed.glob("shard-*.safetensors"))
    assert 2 <= len(visible) < 6
    for name in visible:  # every visible shard is whole
        with safe_open(killed / name, framework="pt") as shard:
            assert shard.get_tensor("patches").shape == (2, 2, 2, 16)
    report = _export(folder, killed, shard_size=2, batch_size=1)
    assert report.complete and set(report.shards_already_done) >= {0, 1} and report.shards_written
    assert shard_bytes(killed) == shard_bytes(reference)


def test_failure_mid_write_leaves_no_visible_shard(folder, tmp_path, monkeypatch):
    real_save = export_module.save_file
    calls = []

    def save_then_die(tensors, path, metadata):
        calls.append(path)
        if len(calls) == 3:  # third shard: write half of it, then "crash"
            real_save(tensors, path, metadata=metadata)
            Path(path).write_bytes(Path(path).read_bytes()[:100])
            raise KeyboardInterrupt
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(export_module, "save_file", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _export(folder, tmp_path, shard_size=4, batch_size=4)
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-000000.safetensors", "shard-000001.safetensors"]
    assert not list(tmp_path.glob(".shard-*"))  # the interrupted write removed its temporary file
    (tmp_path / ".shard-000002.safetensors.0123abcd.tmp").write_bytes(b"half")  # what a SIGKILL leaves
    monkeypatch.setattr(export_module, "save_file", real_save)
    report = _export(folder, tmp_path, shard_size=4, batch_size=4)
    assert report.shards_written == (2,) and report.complete
    assert not list(tmp_path.glob(".shard-*"))
    assert len(TeacherFeatures(tmp_path, verify=True)) == 12


def test_two_torchrun_ranks_write_the_union(folder, tmp_path):
    out = tmp_path / "ranks"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(SCRIPT), str(folder), str(out), "2", "2", "0"]
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    journals = {r: json.loads((out / "progress" / f"rank-{r}.json").read_text())["shards"] for r in (0, 1)}
    assert sorted(map(int, journals[0])) == [0, 2, 4] and sorted(map(int, journals[1])) == [1, 3, 5]
    features = TeacherFeatures(out, verify=True)
    positions = [features[i].position for i in range(len(features))]
    assert sorted(positions) == list(range(12))  # no duplicate, none missing
    single = TeacherFeatures(_export(folder, tmp_path / "single", shard_size=2, batch_size=2).out_dir)
    for i in range(12):
        torch.testing.assert_close(features[i].patches, single[i].patches, rtol=0, atol=1e-3)
        assert features[i].image_id == single[i].image_id


def test_rank_from_environment(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    report = _export(folder, tmp_path, shard_size=2)
    assert (report.rank, report.world_size, report.shards_written) == (1, 3, (1, 4))
    assert not report.complete and not (tmp_path / "index.json").exists()
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="rank=3, world_size=3"):
        _export(folder, tmp_path, shard_size=2)


def test_unreadable_images_are_skipped_and_reported(folder, tmp_path):
    scenes_dir = tmp_path / "scenes"
    make_image_folder(scenes_dir, 5)
    (scenes_dir / "broken.jpg").write_bytes(b"not an image at all")
    good = (scenes_dir / "img000.png").read_bytes()
    (scenes_dir / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.warns(SkippedImageWarning) as record:
        report = _export(scenes_dir, tmp_path / "out", shard_size=4)
    messages = " ".join(str(w.message) for w in record)
    assert str(scenes_dir / "broken.jpg") in messages and str(scenes_dir / "truncated.png") in messages
    assert sorted(s.image_id for s in report.skipped) == ["broken.jpg", "truncated.png"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["num_skipped"] == 2
    features = TeacherFeatures(tmp_path / "out")
    assert len(features) == 5
    assert {features[i].image_id for i in range(5)}.isdisjoint({"broken.jpg", "truncated.png"})


def test_bad_arguments(folder, tmp_path):
    with pytest.raises(ValueError, match=r"ExportConfig.shard_size must be >= 1, got 0"):
        ExportConfig(shard_size=0)
    scenes = ImageFolderScenes(folder, size_px=30)
    with pytest.raises(ValueError, match="30 px must be a multiple of the teacher patch size 14"):
        export_features(scenes, tiny_teacher(), tmp_path, progress=False)
