"""`run_bench`: build, check and time every case of a BenchConfig, then measure memory; returns a BenchReport."""

from __future__ import annotations

import gc
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from saccade.bench.config import BenchConfig, Case, GlimpseCase, PretrainCase
from saccade.bench.implementations import AuthorsCanViT, Implementation, SaccadeCanViT, import_baseline
from saccade.bench.latency import matmul_gflops, time_interleaved
from saccade.bench.memory import PeakMemory, measure_peak_memory
from saccade.bench.report import OURS, BenchReport, CaseResult
from saccade.bench.workloads import make_episode, make_workload, save_shared_weights
from saccade.flops import glimpse_flops
from saccade.model.config import preset
from saccade.provenance import provenance

__all__ = ["case_flops", "run_bench"]

GRAD_REL_TOLERANCE = 1e-4


def run_bench(
    config: BenchConfig, *, baseline: Implementation | None = None, log: Callable[[str], None] = print
) -> BenchReport:
    """Every case of `config`, ours and the baseline, in one process.

    The baseline is the authors' package imported from config.baseline_path, unless `baseline` is given
    (tests compare two copies of ours); with neither, only our figures are reported.
    """
    implementations: list[Implementation] = [SaccadeCanViT()]
    if baseline is None and config.baseline_path is not None:
        baseline = AuthorsCanViT(import_baseline(config.baseline_path))
    if baseline is not None:
        implementations.append(baseline)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    load_start = _load_average()
    try:
        start_median, start_best = matmul_gflops(config.matmul_size)
        log(f"matmul {config.matmul_size}: {start_median:.0f} GFLOP/s median, {start_best:.0f} best")
        results = []
        for case in config.cases():
            results.append(_run_case(case, implementations, config))
            log(_summary(results[-1]))
        end_median, end_best = matmul_gflops(config.matmul_size)
    finally:
        torch.set_num_threads(previous_threads)
    return BenchReport(
        config=config.to_dict(),
        machine={
            "cpu": _cpu_name(),
            "num_threads": config.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "logical_cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": _load_average(),
        },
        versions={implementation.name: implementation.version for implementation in implementations},
        matmul_gflops={
            "start_median": start_median,
            "end_median": end_median,
            "best": max(start_best, end_best),
        },
        cases=results,
        provenance=provenance(seeds={"seed": config.seed}, device="cpu", threads=config.threads),
    )


def case_flops(case: Case) -> int:
    """Analytic FLOPs of one timed call; a pretraining step counts 3 x its forward (backward ~ 2 x forward)."""
    config = preset(case.model)
    per_glimpse = glimpse_flops(config, glimpse_px=case.glimpse_px, canvas_grid=case.canvas_grid).total
    if isinstance(case, GlimpseCase):
        return case.batch_size * per_glimpse
    patch_readout = 2 * case.canvas_grid**2 * config.canvas_dim * case.teacher_dim
    readouts = patch_readout + 2 * config.backbone.embed_dim * case.teacher_dim
    return 3 * case.num_glimpses * case.batch_size * (per_glimpse + readouts)


def _run_case(case: Case, implementations: list[Implementation], config: BenchConfig) -> CaseResult:
    model_config = preset(case.model)
    skipped = {impl.name: why for impl in implementations if (why := impl.unsupported(model_config)) is not None}
    active = [impl for impl in implementations if impl.name not in skipped]
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="saccade-bench-") as folder:
        weights = save_shared_weights(case, Path(folder), seed=config.seed)
        episode = make_episode(case, seed=config.seed)
        workloads = {impl.name: make_workload(impl, weights, case, episode) for impl in active}
        outputs = {name: workload.outputs() for name, workload in workloads.items()}
        max_abs_diff = grad_rel_diff = agree = None
        if len(active) > 1:
            max_abs_diff, grad_rel_diff = _differences(outputs[OURS], outputs[active[1].name])
            agree = max_abs_diff <= config.atol and (grad_rel_diff or 0.0) <= GRAD_REL_TOLERANCE
        del outputs
        timings = time_interleaved(
            {name: workload.run for name, workload in workloads.items()},
            warmup=config.warmup,
            repeats=config.repeats,
            min_repeats=config.min_repeats,
            budget_s=config.case_budget_s,
        )
        del workloads
        gc.collect()
        load_after = _load_average()
        memory: dict[str, PeakMemory] = {}
        if config.measure_memory:
            for impl in active:
                memory[impl.name] = measure_peak_memory(
                    case,
                    impl.name,
                    weights=weights,
                    baseline_path=config.baseline_path,
                    num_threads=config.threads,
                    seed=config.seed,
                )
    return CaseResult(
        name=case.name,
        kind=case.kind,
        model=case.model,
        batch_size=case.batch_size,
        canvas_grid=case.canvas_grid,
        flops=case_flops(case),
        timings=timings,
        max_abs_diff=max_abs_diff,
        grad_rel_diff=grad_rel_diff if isinstance(case, PretrainCase) else None,
        agree=agree,
        memory=memory,
        skipped=skipped,
        load_average=None if load_before is None else [load_before[0], load_after[0]],
    )


def _differences(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> tuple[float, float | None]:
    """(max |Δ| over outputs, max over gradients of |Δ| / max |grad|, or None without gradients)."""
    assert ours.keys() == theirs.keys(), sorted(set(ours) ^ set(theirs))
    output_diff, grad_diff = 0.0, None
    for name, value in ours.items():
        delta = (value.float() - theirs[name].float()).abs().max().item()
        if name.startswith("grad "):
            scale = max(theirs[name].abs().max().item(), 1e-12)
            grad_diff = max(grad_diff or 0.0, delta / scale)
        else:
            output_diff = max(output_diff, delta)
    return output_diff, grad_diff


def _summary(result: CaseResult) -> str:
    ours = result.timings[OURS]
    text = f"{result.name}: {ours.median_ms:.1f} ms median, {ours.min_ms:.1f} min"
    baseline = next((name for name in result.timings if name != OURS), None)
    if baseline is not None:
        text += (
            f" | {baseline} {result.timings[baseline].median_ms:.1f} ms; ratio "
            f"{result.ratio('median_ms', baseline):.2f}x median, {result.ratio('min_ms', baseline):.2f}x min; "
            f"max |diff| {result.max_abs_diff:.1e}"
        )
    for name, memory in result.memory.items():
        text += f" | {name} step {memory.step_mb:.0f} MB"
    if result.load_average is not None:
        text += f" | load {result.load_average[0]:.1f} -> {result.load_average[1]:.1f}"
    return text


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other processes on a shared machine disturb the timings."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"
