"""A rank that dies takes a torchrun job down, and the last checkpoint (at most checkpoint_every steps old) resumes."""

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

SCRIPT = Path(__file__).parent / "run_rank.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow  # ~30 s: torchrun, 2 gloo ranks on CPU
def test_a_killed_rank_ends_the_job_with_a_recent_checkpoint(tmp_path):
    checkpoint_every = 3
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += [str(SCRIPT), str(tmp_path), str(checkpoint_every)]
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _steps_logged(tmp_path) >= 2 * checkpoint_every + 1:
            assert job.poll() is None and time.monotonic() < deadline, "the job did not get going"
            time.sleep(0.2)
        os.kill(int((tmp_path / "pid-1").read_text()), signal.SIGKILL)  # rank 1 dies mid-run
        stderr = job.communicate(timeout=120)[1]
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0, "torchrun must fail when a rank dies"
    assert "SIGKILL" in stderr or "Signal 9" in stderr or "exitcode" in stderr
    logged = _steps_logged(tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"]
    # periodic, or written by rank 0 on torchrun's SIGTERM after a step whose all-reduce completed
    assert 0 <= logged - saved <= checkpoint_every, (saved, logged)
    assert not (tmp_path / "model").exists()  # no final model from a failed job


@pytest.mark.slow  # ~20 s: torchrun, 2 gloo ranks on CPU
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_checkpoint(tmp_path):
    """SIGTERM to rank 1 alone: rank 0 stops with it (they agree at the next logging step), so the job ends with
    rank 0's interrupted summary and a checkpoint of the step both stopped at, instead of rank 0 waiting forever."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += [str(SCRIPT), str(tmp_path), "1000"]
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _steps_logged(tmp_path) >= 3:
            assert job.poll() is None and time.monotonic() < deadline, "the job did not get going"
            time.sleep(0.2)
        os.kill(int((tmp_path / "pid-1").read_text()), signal.SIGTERM)
        job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    summary = json.loads((tmp_path / "summary.json").read_text())  # written by rank 0, which got no signal
    assert (summary["status"], summary["signal"]) == ("interrupted", "SIGTERM")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"]
    assert saved == summary["steps"] >= 3
    assert not (tmp_path / "model").exists()


def _steps_logged(folder: Path) -> int:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [json.loads(line).get("step", 0) for line in path.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)
