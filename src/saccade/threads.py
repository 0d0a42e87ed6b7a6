"""How many intra-op CPU threads a run uses: chosen once per run from the cores that are free and the work size.

torch's default (one thread per core) collapses when another process keeps a core busy: every parallel
region waits for its thread on the shared core, which the scheduler runs only part of the time. On a
2-core machine beside one busy single-threaded process, canvit-t16d6 training ran 11.6x slower at the
default and 1.6x on one thread (benchmarks/thread_contention.py). So a run counts the cores it may use
(affinity and cgroup quota), subtracts those other processes keep busy (a short sample of /proc/stat), and
uses no more threads than the work can keep busy. An explicit count (`--threads N`, or OMP_NUM_THREADS in
the environment) always wins. The choice is recorded in the run's config so that a run can be repeated with
the same thread count (float sums can depend on it).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "SMALL_WORK_TOKENS",
    "ThreadChoice",
    "apply_threads",
    "available_cores",
    "busy_cores",
    "choose_threads",
    "use_threads",
]

SMALL_WORK_TOKENS = 256
"""Below this many token rows per forward (batch x tokens of one glimpse step: batch 1-3 of a 32 px glimpse on an
8 x 8 canvas) a second thread gained 11 % on an idle 2-core machine and lost 36x beside one busy process
(benchmarks/thread_contention.py, canvit-t16d6 at batch 1), so such work runs on one thread."""


@dataclass(frozen=True)
class ThreadChoice:
    num_threads: int
    reason: str  # why: "requested", "OMP_NUM_THREADS=1", "2 cores, 1.0 busy by other processes, ..."

    def to_dict(self) -> dict[str, int | str]:
        return {"num_threads": self.num_threads, "reason": self.reason}


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def busy_cores(sample_seconds: float = 0.25) -> float:
    """Cores (of this process's affinity set) that other processes kept busy over a short sample; 0 if unknown."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    before = _cpu_times(allowed)
    if not before:
        return 0.0
    time.sleep(sample_seconds)
    after = _cpu_times(allowed)
    busy = total = 0
    for cpu, (busy_before, total_before) in before.items():
        if cpu in after:
            busy += after[cpu][0] - busy_before
            total += after[cpu][1] - total_before
    return len(before) * busy / total if total > 0 else 0.0


def _cpu_times(allowed: set[int] | None) -> dict[int, tuple[int, int]]:
    """{cpu: (busy jiffies, total jiffies)} from /proc/stat; {} where it does not exist."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return {}
    times = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        cpu = int(name[3:])
        if allowed is not None and cpu not in allowed:
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + values[4]
        times[cpu] = (sum(values) - idle, sum(values))
    return times


def choose_threads(requested: int | None = None, *, work_tokens: int | None = None) -> ThreadChoice:
    """The intra-op thread count of a run: `requested` if given, else OMP_NUM_THREADS, else from the free cores
    (shared by the LOCAL_WORLD_SIZE processes of a torchrun job) and `work_tokens`, the token rows per forward
    (None: large)."""
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise ValueError(f"--threads must be a positive integer, got {requested!r}")
        return ThreadChoice(requested, "requested (--threads or the config)")
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env:
        if not from_env.isdigit() or int(from_env) < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {from_env!r}")
        return ThreadChoice(int(from_env), f"OMP_NUM_THREADS={from_env}")
    cores, busy = available_cores(), busy_cores()
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    free = max(1, (cores - round(busy)) // max(1, local_processes))
    reason = f"{cores} cores, {busy:.1f} busy by other processes"
    if local_processes > 1:
        reason += f", shared by {local_processes} local ranks"
    if work_tokens is not None and work_tokens < SMALL_WORK_TOKENS:
        return ThreadChoice(1, f"{reason}, small work ({work_tokens} tokens per forward)")
    return ThreadChoice(free, reason)


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op thread count of this process."""
    torch.set_num_threads(choice.num_threads)


def use_threads(requested: int = 0, *, work_tokens: int | None = None) -> ThreadChoice:
    """Choose (`requested`, or automatically when 0) and apply this process's thread count: a run's first step."""
    choice = choose_threads(requested or None, work_tokens=work_tokens)
    apply_threads(choice)
    return choice
