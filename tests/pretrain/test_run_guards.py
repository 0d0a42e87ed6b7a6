"""Runs that go wrong stop and say so: divergence, signals, unwritable or shared folders, settings changed on resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tests.pretrain.run_synthetic import config as synthetic_config

import saccade.pretrain.trainer as trainer_module
from saccade.cli import main
from saccade.pretrain.data import TensorDistillationDataset, synthetic_dataset
from saccade.pretrain.schedule import learning_rate
from saccade.pretrain.trainer import pretrain
from saccade.threads import ThreadChoice

SCRIPT = Path(__file__).parent / "run_synthetic.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
TINY_FLAGS = [
    "--data",
    "synthetic",
    "--model",
    "canvit-tiny",
    "--episode.glimpse-px",
    "32",
    "--episode.canvas-grid",
    "4",
]
TINY_FLAGS += ["--batch-size", "8", "--warmup-steps", "2", "--standardizer-samples", "64", "--val-every", "0"]
TINY_FLAGS += ["--quiet"]


def _data(dim: int = 16) -> TensorDistillationDataset:
    return synthetic_dataset(32, scene_px=64, grid=4, dim=dim, seed=0)


def _config(folder: Path, steps: int = 2, **changes):
    return dataclasses.replace(synthetic_config(str(folder), steps), **changes)


class _Counting:
    """A dataset that counts its reads."""

    def __init__(self, dataset) -> None:
        self.dataset, self.reads = dataset, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        self.reads += 1
        return self.dataset[index]


def test_huge_learning_rate_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = _config(tmp_path, 6, lr=1e20, checkpoint_every=1)
    with pytest.raises(ValueError, match=r"diverged at step 3 of 6: the loss is nan .* checkpoint of step 2 .* stays"):
        pretrain(config, _data(), progress=False)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 2
    assert all(bool(torch.isfinite(value).all()) for value in checkpoint["model"].values())
    assert not (tmp_path / "model").exists() and not (tmp_path / "summary.json").exists()


def test_non_finite_training_data_stops_at_the_first_step(tmp_path):
    data = _data()
    data.patches[3, 1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"step 1 of 2: .* no checkpoint was written.* non-finite scenes or teacher"):
        pretrain(_config(tmp_path), data, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_marks_the_run_interrupted_and_exits_non_zero(tmp_path, monkeypatch, capsys, signum, code):
    step = trainer_module.training_step
    calls = []

    def signalled_step(*args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)  # as `kill` or Ctrl-C would, in the middle of step 2
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "training_step", signalled_step)
    command = ["pretrain", *TINY_FLAGS, "--steps", "4", "--output-dir", str(tmp_path)]
    assert main(command) == code
    assert f"{signum.name} stopped pretraining at step 2 of 4" in capsys.readouterr().err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["total_steps"]) == ("interrupted", 2, 4)
    assert not (tmp_path / "model").exists()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2

    monkeypatch.setattr(trainer_module, "training_step", step)
    assert main(command) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "complete"
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_unwritable_output_dir_fails_before_reading_any_data(tmp_path):
    (tmp_path / "a-file").write_text("")
    data = _Counting(_data())
    with pytest.raises(ValueError, match=f"output_dir {tmp_path / 'a-file' / 'run'} is not a writable folder"):
        pretrain(_config(tmp_path / "a-file" / "run"), data, progress=False)
    assert data.reads == 0


def test_negative_time_limit_is_refused(tmp_path, capsys):
    data = _Counting(_data())
    with pytest.raises(ValueError, match="max_seconds must be > 0"):
        pretrain(_config(tmp_path), data, progress=False, max_seconds=-60)
    assert data.reads == 0
    assert main(["pretrain", *TINY_FLAGS, "--max-minutes", "-1", "--output-dir", str(tmp_path)]) == 2
    assert "--max-minutes must be > 0, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resume_refuses_changed_settings_unless_allowed(tmp_path):
    data = _data()
    config = _config(tmp_path)
    pretrain(config, data, progress=False)
    with pytest.raises(ValueError, match=r"lr 0\.001 in the checkpoint, 0\.002 now; .*--allow-config-change"):
        pretrain(dataclasses.replace(config, lr=2e-3), data, progress=False)
    changed = dataclasses.replace(config, batch_size=4, seed=1, steps=3)
    with pytest.raises(ValueError, match=r"batch_size 8 in the checkpoint, 4 now, steps 2 .*, seed 0 in the"):
        pretrain(changed, data, progress=False)
    pretrain(dataclasses.replace(config, log_every=2, checkpoint_every=5), data, progress=False)  # harmless

    faster = dataclasses.replace(config, lr=2e-3, steps=3)
    pretrain(faster, data, progress=False, allow_config_change=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 2, "config_changes": {"lr": [1e-3, 2e-3], "steps": [2, 3]}} in records
    assert records[-1]["step"] == 3 and records[-1]["lr"] == pytest.approx(learning_rate(3, faster))  # the new lr


def test_resume_with_another_model_names_what_differs(tmp_path):
    pretrain(_config(tmp_path, 1), _data(), progress=False)
    other_model = _config(tmp_path, 1, model="canvit-t16d6")
    with pytest.raises(ValueError, match=r"cannot resume .*: model 'canvit-tiny' in the checkpoint, 'canvit-t16d6'"):
        pretrain(other_model, _data(), progress=False, allow_config_change=True)
    readouts = r"8 mis-shaped key\(s\): teacher_cls_readout.proj.bias: checkpoint \(16,\) vs model \(8,\)"
    with pytest.raises(ValueError, match=readouts):  # teacher features of another width
        pretrain(_config(tmp_path, 1), _data(dim=8), progress=False)


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    first = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), "1000"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "metrics.jsonl").is_file():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        holder = rf"{tmp_path} is in use by another pretraining run \(pid {first.pid} on {socket.gethostname()}, "
        with pytest.raises(ValueError, match=holder):
            pretrain(_config(tmp_path, 1000, seed=1), _data(), progress=False)
    finally:
        first.kill()
        first.wait()
    pretrain(_config(tmp_path, 1), _data(), progress=False, allow_config_change=True)  # a dead holder does not block


def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.k2x9_a.tmp", tmp_path / "model" / ".model.safetensors.3fj1.tmp"]
    kept = [tmp_path / ".notes.tmp", tmp_path / "checkpoint.pt.tmp", tmp_path / "model" / "mine.tmp"]
    for path in stale + kept:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    pretrain(_config(tmp_path, 1), _data(), progress=False)
    assert [path.exists() for path in stale + kept] == [False, False, True, True, True]


def test_the_thread_choice_is_recorded_and_a_resumed_run_keeps_it(tmp_path, monkeypatch):
    """threads = 0 is chosen at the start and written to config.json; a resume reuses the recorded count."""
    data = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    config = dataclasses.replace(synthetic_config(str(tmp_path), 2), threads=0)
    monkeypatch.setattr(trainer_module, "choose_threads", lambda *a, **k: ThreadChoice(2, "2 cores, 0.0 busy"))
    result = pretrain(config, data, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["threads"] == 2
    assert result.summary["threads"] == {"num_threads": 2, "reason": "2 cores, 0.0 busy"}
    assert torch.get_num_threads() == 2

    busy = ThreadChoice(1, "2 cores, 1.0 busy")  # the machine got busy: a fresh choice would differ
    monkeypatch.setattr(trainer_module, "choose_threads", lambda *a, **k: busy)
    result = pretrain(dataclasses.replace(config, steps=3), data, progress=False, allow_config_change=True)
    assert result.summary["threads"] == {"num_threads": 2, "reason": "recorded in the checkpoint's config"}
    assert torch.get_num_threads() == 2
    monkeypatch.undo()  # an explicit count wins over the recorded one
    result = pretrain(dataclasses.replace(config, steps=4, threads=1), data, progress=False, allow_config_change=True)
    assert result.summary["threads"] == {"num_threads": 1, "reason": "requested (--threads or the config)"}
    assert torch.get_num_threads() == 1
