"""Benchmark results as JSON and as Markdown tables (time and ratios; GFLOP/s against matmul; memory)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saccade.bench.latency import Timing
from saccade.bench.memory import PeakMemory

__all__ = ["BenchReport", "CaseResult"]

OURS = "saccade"


@dataclass(frozen=True, kw_only=True)
class CaseResult:
    name: str
    kind: str  # latency | throughput | pretrain
    model: str
    batch_size: int
    canvas_grid: int
    flops: int
    """FLOPs of one timed call, batch included (pretraining: 3 x forward)."""
    timings: dict[str, Timing]
    max_abs_diff: float | None = None
    """Largest |ours - baseline| over the compared outputs (None without a baseline)."""
    grad_rel_diff: float | None = None
    """Pretraining: largest |Δ grad| / max |grad| over parameters."""
    agree: bool | None = None
    memory: dict[str, PeakMemory] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Implementations not run on this case, with the reason."""
    load_average: list[float] | None = None
    """1-minute load average before and after timing the case (other processes disturb it)."""

    def ratio(self, statistic: str, baseline: str) -> float | None:
        """Baseline time / our time (> 1: we are faster) for 'median_ms' or 'min_ms'."""
        if baseline not in self.timings:
            return None
        return getattr(self.timings[baseline], statistic) / getattr(self.timings[OURS], statistic)

    def gflops_per_s(self, implementation: str) -> float | None:
        timing = self.timings.get(implementation)
        return None if timing is None else self.flops / timing.median_ms / 1e6

    def to_dict(self, baseline: str | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "batch_size": self.batch_size,
            "canvas_grid": self.canvas_grid,
            "flops": self.flops,
            "timings": {name: timing.to_dict() for name, timing in self.timings.items()},
            "ratio_median": self.ratio("median_ms", baseline) if baseline else None,
            "ratio_min": self.ratio("min_ms", baseline) if baseline else None,
            "gflops_per_s": {name: self.gflops_per_s(name) for name in self.timings},
            "max_abs_diff": self.max_abs_diff,
            "grad_rel_diff": self.grad_rel_diff,
            "agree": self.agree,
            "memory": {name: memory.to_dict() for name, memory in self.memory.items()},
            "skipped": self.skipped,
            "load_average": self.load_average,
        }


@dataclass(frozen=True, kw_only=True)
class BenchReport:
    config: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, str]
    """Implementation name -> package version; the baseline, when present, is the second entry."""
    matmul_gflops: dict[str, float]
    """Reference float32 matmul rate: median and best GFLOP/s, at the start and at the end of the run."""
    cases: list[CaseResult]
    provenance: dict[str, Any]
    """saccade.provenance: git commit, versions, device, threads, seeds."""

    @property
    def baseline(self) -> str | None:
        others = [name for name in self.versions if name != OURS]
        return others[0] if others else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "machine": self.machine,
            "versions": self.versions,
            "matmul_gflops": self.matmul_gflops,
            "cases": [case.to_dict(self.baseline) for case in self.cases],
            "provenance": self.provenance,
        }

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write bench.json and bench.md into `folder`; returns both paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path = folder / "bench.json", folder / "bench.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        markdown_path.write_text(self.to_markdown())
        return json_path, markdown_path

    def to_markdown(self) -> str:
        baseline = self.baseline
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        lines = [
            "# saccade bench",
            "",
            f"{self.machine['cpu']}, {self.machine['num_threads']} threads, torch {self.machine['torch']}, "
            f"float32, eager. Implementations: {versions}. Load average (1, 5, 15 min) at the start "
            f"{self.machine.get('load_average_start')} and at the end {self.machine.get('load_average_end')} "
            f"on {self.machine.get('logical_cpus')} logical CPUs.",
            "",
        ]
        lines += [*self._time_table(baseline), "", *self._flops_table(baseline)]
        if any(case.memory for case in self.cases):
            lines += ["", *self._memory_table(baseline)]
        skipped = [f"- {case.name}: {name} skipped, {why}" for case in self.cases for name, why in case.skipped.items()]
        if skipped:
            lines += ["", *skipped]
        return "\n".join(lines) + "\n"

    def _time_table(self, baseline: str | None) -> list[str]:
        header = ["case", f"{OURS} ms median (min)"]
        if baseline:
            header += [f"{baseline} ms median (min)", "ratio median", "ratio min", "max abs diff"]
        header.append("load")
        rows = []
        for case in self.cases:
            row = [case.name, _ms(case.timings[OURS])]
            if baseline:
                diff = "" if case.max_abs_diff is None else f"{case.max_abs_diff:.1e}" + ("" if case.agree else " (!)")
                row += [
                    _ms(case.timings.get(baseline)),
                    _ratio(case.ratio("median_ms", baseline)),
                    _ratio(case.ratio("min_ms", baseline)),
                    diff,
                ]
            load = case.load_average
            rows.append([*row, "" if load is None else f"{load[0]:.1f}-{load[1]:.1f}"])
        title = "Time per call (ratio = baseline time / our time, > 1 means saccade is faster)"
        note = (
            "load: 1-minute load average before and after the case's timing; the benchmark itself accounts for up "
            "to its thread count, more means other processes competed for the cores."
        )
        return [f"## {title}", "", note, "", *_table(header, rows)]

    def _flops_table(self, baseline: str | None) -> list[str]:
        rate = self.matmul_gflops
        note = (
            f"Reference: float32 {self.config['matmul_size']}² matmul, {rate['start_median']:.0f} GFLOP/s median "
            f"at the start of the run and {rate['end_median']:.0f} at the end (best {rate['best']:.0f}); "
            "% = achieved / the larger median."
        )
        peak = max(rate["start_median"], rate["end_median"])
        header = ["case", "GFLOPs per call", f"{OURS} GFLOP/s", "% of matmul"]
        if baseline:
            header += [f"{baseline} GFLOP/s", "% of matmul"]
        rows = []
        for case in self.cases:
            row = [case.name, f"{case.flops / 1e9:.1f}"]
            for name in [OURS] + ([baseline] if baseline else []):
                achieved = case.gflops_per_s(name)
                row += ["", ""] if achieved is None else [f"{achieved:.0f}", f"{100 * achieved / peak:.0f}%"]
            rows.append(row)
        return ["## Achieved GFLOP/s (analytic FLOPs, saccade.flops)", "", note, "", *_table(header, rows)]

    def _memory_table(self, baseline: str | None) -> list[str]:
        names = [OURS] + ([baseline] if baseline else [])
        header = ["case"] + [f"{name} step MB" for name in names] + [f"{name} peak MB" for name in names]
        rows = []
        for case in self.cases:
            cells = [case.memory.get(name) for name in names]
            rows.append(
                [case.name]
                + ["" if m is None else f"{m.step_mb:.0f}" for m in cells]
                + ["" if m is None else f"{m.peak_mb:.0f}" for m in cells]
            )
        note = "step = peak RSS during one call minus RSS just before it (weights, inputs, state excluded)."
        return ["## Peak memory (fresh process per implementation and case)", "", note, "", *_table(header, rows)]


def _ms(timing: Timing | None) -> str:
    return "" if timing is None else f"{timing.median_ms:.1f} ({timing.min_ms:.1f})"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
