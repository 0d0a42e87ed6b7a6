"""The per-run thread choice: explicit counts win, busy cores and small work give fewer threads."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from saccade import threads
from saccade.threads import SMALL_WORK_TOKENS, choose_threads


@pytest.fixture
def machine(monkeypatch):
    """A 4-core machine with a settable number of cores busy, and no thread settings in the environment."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    busy = {"cores": 0.0}
    monkeypatch.setattr(threads, "busy_cores", lambda: busy["cores"])
    return busy


def test_an_idle_machine_uses_every_core_for_large_work(machine):
    assert choose_threads().num_threads == 4
    assert choose_threads(work_tokens=32 * 80).num_threads == 4


@pytest.mark.parametrize(("busy", "expected"), [(0.9, 3), (1.2, 3), (2.0, 2), (3.7, 1), (6.0, 1)])
def test_cores_busy_with_other_processes_are_left_to_them(machine, busy, expected):
    machine["cores"] = busy
    choice = choose_threads()
    assert choice.num_threads == expected
    assert f"{busy:.1f} busy" in choice.reason


def test_small_work_runs_on_one_thread(machine):
    choice = choose_threads(work_tokens=SMALL_WORK_TOKENS - 1)
    assert choice.num_threads == 1
    assert "small work" in choice.reason
    assert choose_threads(work_tokens=SMALL_WORK_TOKENS).num_threads == 4


def test_local_ranks_of_a_torchrun_job_share_the_free_cores(machine, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert choose_threads().num_threads == 2
    machine["cores"] = 1.0
    assert choose_threads().num_threads == 1


def test_an_explicit_count_wins_over_the_machine_and_the_environment(machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    requested = choose_threads(7, work_tokens=1)
    assert requested.to_dict() == {"num_threads": 7, "reason": "requested (--threads or the config)"}
    assert choose_threads(work_tokens=1).to_dict() == {"num_threads": 3, "reason": "OMP_NUM_THREADS=3"}


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_thread_counts_are_refused(machine, bad):
    with pytest.raises(ValueError, match="--threads must be a positive integer"):
        choose_threads(bad)


def test_a_bad_omp_num_threads_is_refused(machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a positive integer, got 'two'"):
        choose_threads()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")
def test_a_busy_process_is_seen_as_a_busy_core():
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_cores(0.5) >= 0.6
    finally:
        competitor.kill()
        competitor.wait()


def test_the_cgroup_quota_caps_the_cores(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    assert threads.available_cores() == min(2, len(os.sched_getaffinity(0)))
    quota.write_text("max 100000\n")
    assert threads.available_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("flag", [-1, -4])
def test_the_threads_flag_refuses_negative_counts(flag, tmp_path, capsys):
    from saccade.cli import main

    argv = ["export-features", "--output-dir", str(tmp_path), "--threads", str(flag)]
    assert main(argv) == 2
    assert f"--threads must be a positive integer, got {flag}" in capsys.readouterr().err


def test_use_threads_applies_the_choice(machine):
    import torch

    choice = threads.use_threads(0, work_tokens=SMALL_WORK_TOKENS // 2)
    assert choice.num_threads == 1 == torch.get_num_threads()
    assert threads.use_threads(3).num_threads == 3 == torch.get_num_threads()


def test_pretrain_builds_its_data_on_the_chosen_threads(monkeypatch, tmp_path):
    """The teacher features of a named crop set are computed before pretrain(): on the run's threads too."""
    import torch

    import saccade.cli.pretrain as cli_pretrain
    from saccade.cli import main

    seen = []

    def record_threads(spec, config, *, seed, **options):
        seen.append(torch.get_num_threads())
        raise ValueError("stop before training")

    monkeypatch.setattr(cli_pretrain, "_open", record_threads)
    assert main(["pretrain", "--data", "synthetic", "--threads", "3", "--output-dir", str(tmp_path)]) == 2
    assert seen == [3]
