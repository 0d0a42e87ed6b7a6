"""`saccade bench` runs end to end on tiny cases; speed is not asserted (a benchmark is not a test)."""

from __future__ import annotations

import json

import pytest

from saccade.bench import BenchConfig, GlimpseCase, run_bench
from saccade.bench.implementations import SaccadeCanViT, import_baseline
from saccade.bench.memory import measure_peak_memory
from saccade.bench.workloads import save_shared_weights
from saccade.cli import main


class _OtherCopy(SaccadeCanViT):
    """Ours again under another name: exercises the comparison path without the authors' package."""

    name = "other-copy"


def test_quick_bench_writes_json_and_markdown(tmp_path, capsys):
    assert main(["bench", "--quick", "--no-measure-memory", "--grids", "2", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    kinds = [case["kind"] for case in report["cases"]]
    assert kinds == ["latency", "throughput", "pretrain"]
    for case in report["cases"]:
        assert case["timings"]["saccade"]["min_ms"] > 0
        assert case["flops"] > 0 and case["ratio_median"] is None
    assert report["matmul_gflops"]["start_median"] > 0
    markdown = (tmp_path / "bench.md").read_text()
    assert "canvit-tiny latency B=1 G=2" in markdown and "GFLOP/s" in markdown
    assert "wrote" in capsys.readouterr().out


def test_comparison_checks_agreement_and_reports_ratios():
    config = BenchConfig.quick(grids=(3,), throughput_batch=0, repeats=1)
    report = run_bench(config, baseline=_OtherCopy(), log=lambda _: None)
    assert [case.kind for case in report.cases] == ["latency", "pretrain"]
    for case in report.cases:
        assert case.agree and case.max_abs_diff <= config.atol
        assert case.ratio("median_ms", "other-copy") > 0
    assert report.cases[1].grad_rel_diff is not None
    assert "ratio median" in report.to_markdown()


def test_peak_memory_in_a_subprocess(tmp_path):
    case = GlimpseCase(model="canvit-tiny", batch_size=1, canvas_grid=2, glimpse_px=32)
    weights = save_shared_weights(case, tmp_path, seed=0)
    memory = measure_peak_memory(
        case, "saccade", weights=weights, baseline_path=None, num_threads=1, seed=0, timeout_s=120
    )
    assert memory.peak_mb > 0 and memory.step_mb >= 0


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown presets"):
        BenchConfig(models=("canvit-xl",))
    with pytest.raises(ValueError, match="no canvit_pytorch package"):
        import_baseline(tmp_path)
