"""Peak memory of one case, measured in a fresh subprocess per implementation.

torch's CPU tensors come from malloc, which tracemalloc does not see, so we measure the process: the
child builds the model, the inputs and (for pretraining) the optimizer state with one untimed call, then
returns freed heap pages to the OS (malloc_trim), resets the kernel's peak-RSS mark (`/proc/self/clear_refs`
"5") and reads VmRSS; it runs the case once and reads the peak VmHWM. `step_mb` = peak - before is the
memory the step itself needs on top of the weights, the inputs and the state; `peak_mb` is the whole
process, which also counts each package's imports. One process per measurement keeps the allocator
state of one implementation from hiding the other's peak.

Run as `python -m saccade.bench.memory '<json>'`; it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from saccade.bench.config import GlimpseCase, PretrainCase

__all__ = ["PeakMemory", "measure_peak_memory"]


@dataclass(frozen=True)
class PeakMemory:
    step_mb: float
    """Peak resident memory during the step minus the resident memory just before it."""
    peak_mb: float
    """Peak resident memory of the whole process during the step."""

    def to_dict(self) -> dict[str, float]:
        return {"step_mb": self.step_mb, "peak_mb": self.peak_mb}


def measure_peak_memory(
    case: GlimpseCase | PretrainCase,
    implementation: str,
    *,
    weights: Path,
    baseline_path: str | None,
    num_threads: int,
    seed: int,
    timeout_s: float = 1800,
) -> PeakMemory:
    """Run `case` once with `implementation` ("saccade" or "canvit-pytorch") in a child process."""
    request = {
        "kind": case.kind,
        "case": {name: getattr(case, name) for name in case.__dataclass_fields__},
        "implementation": implementation,
        "weights": str(weights),
        "baseline_path": baseline_path,
        "num_threads": num_threads,
        "seed": seed,
    }
    command = [sys.executable, "-m", "saccade.bench.memory", json.dumps(request)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory measurement of {case.name} ({implementation}) failed:\n{result.stderr[-2000:]}")
    return PeakMemory(**json.loads(result.stdout.strip().splitlines()[-1]))


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _settle() -> None:
    """Free what is garbage, hand free heap pages back to the OS and reset the peak-RSS mark."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _child(request: dict) -> dict[str, float]:
    from saccade.bench.implementations import AuthorsCanViT, SaccadeCanViT, import_baseline
    from saccade.bench.workloads import make_episode, make_workload

    torch.set_num_threads(request["num_threads"])
    case_type = PretrainCase if request["kind"] == "pretrain" else GlimpseCase
    case = case_type(**request["case"])
    if request["implementation"] == "saccade":
        implementation = SaccadeCanViT()
    else:
        implementation = AuthorsCanViT(import_baseline(request["baseline_path"]))
    workload = make_workload(implementation, Path(request["weights"]), case, make_episode(case, seed=request["seed"]))
    workload.run()  # the first call makes lazily allocated state (optimizer moments, caches)
    _settle()
    before_kb = _status_kb("VmRSS")
    result = workload.run()
    peak_kb = _status_kb("VmHWM")
    del result
    return {"step_mb": (peak_kb - before_kb) / 1024, "peak_mb": peak_kb / 1024}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
