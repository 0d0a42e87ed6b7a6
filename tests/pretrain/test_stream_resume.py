"""A data-parallel run streamed from tar shards, SIGKILLed between checkpoints, resumes on exactly its samples.

Two gloo ranks on CPU, each with 2 DataLoader workers and one intra-op thread; the killed-and-resumed run ends with
the weights of an uninterrupted run, bit for bit, and every rank logs the same sample ids for every step.
"""

from __future__ import annotations

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
from safetensors.torch import load_file
from tests.pretrain.tar_helpers import write_target_shards

SCRIPT = Path(__file__).parent / "run_stream.py"
REPO = Path(__file__).parents[2]
STEPS, CHECKPOINT_EVERY, WORLD_SIZE = 8, 3, 2


def _launch(output_dir: Path, shards: Path) -> list[subprocess.Popen]:
    """Both ranks, each in its own process group (with its DataLoader workers), rendezvous on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ranks = []
    for rank in range(WORLD_SIZE):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(rank)}
        env |= {"WORLD_SIZE": str(WORLD_SIZE), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"}
        env["MASTER_PORT"] = str(port)
        command = [sys.executable, str(SCRIPT), str(output_dir), str(shards), str(STEPS), str(CHECKPOINT_EVERY)]
        ranks.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, start_new_session=True))
    return ranks


def _wait(ranks: list[subprocess.Popen]) -> None:
    for process in ranks:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]


def _logged_steps(output_dir: Path) -> int:
    path = output_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _sample_log(output_dir: Path, rank: int) -> list[tuple[int, list[str]]]:
    lines = (output_dir / f"samples-rank-{rank}.jsonl").read_text().splitlines()
    return [(record["consumed"], record["ids"]) for record in map(json.loads, lines)]


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_on_the_same_samples(tmp_path):
    shards = write_target_shards(tmp_path / "shards", num_samples=24, shard_size=3)  # 8 shards: 2 a reader slot
    _wait(_launch(tmp_path / "straight", shards))

    killed = _launch(tmp_path / "killed", shards)
    deadline = time.monotonic() + 240
    while _logged_steps(tmp_path / "killed") < CHECKPOINT_EVERY + 1:  # past the first checkpoint
        assert all(process.poll() is None for process in killed), killed[0].stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for process in killed:
        os.killpg(process.pid, signal.SIGKILL)  # the rank and its DataLoader workers
        process.wait()
    checkpoint = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert CHECKPOINT_EVERY <= checkpoint["step"] < STEPS
    assert checkpoint["data"]["consumed"].tolist() == [checkpoint["step"] * 4] * WORLD_SIZE
    _wait(_launch(tmp_path / "killed", shards))

    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert not [key for key in straight if not torch.equal(straight[key], resumed[key])]
    for rank in range(WORLD_SIZE):
        expected = dict(_sample_log(tmp_path / "straight", rank))  # samples consumed before the batch -> its ids
        assert sorted(expected) == [4 * step for step in range(STEPS)]
        logged = _sample_log(tmp_path / "killed", rank)  # the steps after the checkpoint ran twice
        assert [expected[consumed] == ids for consumed, ids in logged] == [True] * len(logged)
        assert {consumed for consumed, _ in logged} == set(expected)
