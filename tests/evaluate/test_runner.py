"""Per-policy, per-timestep evaluation on a tiny random CanViT; the passive teacher; FLOPs; the written report."""

from __future__ import annotations

import csv
import dataclasses
import math

import pytest
import torch

from saccade import CanViT, preset
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.curves import Curve, over_runs
from saccade.evaluate.metrics import mean_iou_of
from saccade.evaluate.report import passive_rows, read_curves, write_report
from saccade.evaluate.runner import (
    EvalConfig,
    PassivePoint,
    evaluate_passive,
    evaluate_policies,
    measured_teacher_flops,
)
from saccade.flops import glimpse_flops, seg_probe_flops
from saccade.probes import ProbeConfig, build_probe
from tests.evaluate.fakes import TinyTeacher, tiny_scenes

EPISODE = EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=4, num_glimpses=3)
CONFIG = EvalConfig(policies=("C2F", "R-IID", "EG-C2F"), episode=EPISODE, num_runs=3, batch_size=4)


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    torch.manual_seed(0)
    return CanViT(preset("canvit-tiny")).eval().requires_grad_(False)


def probe(task: str, dim: int, num_classes: int = 3, **kwargs):
    torch.manual_seed(0)
    return build_probe(ProbeConfig(task=task, in_dim=dim, num_classes=num_classes, **kwargs)).eval()


def test_segmentation_curves(tiny):
    curves = evaluate_policies(
        tiny, probe("segmentation", 96), tiny_scenes("segmentation"), CONFIG, task="segmentation", num_classes=3,
        progress=False,
    )  # fmt: skip
    assert [(c.policy, c.metric) for c in curves] == [
        (policy, metric) for policy in ("C2F", "R-IID", "EG-C2F") for metric in ("mIoU", "pixel accuracy")
    ]
    by_name = {(c.policy, c.metric): c for c in curves}
    deterministic, stochastic = by_name["EG-C2F", "mIoU"], by_name["R-IID", "mIoU"]
    assert deterministic.runs.shape == (1, 3) and math.isnan(float(deterministic.half_width[0]))
    assert stochastic.runs.shape == (3, 3) and not math.isnan(float(stochastic.half_width[0]))
    assert bool(((stochastic.low <= stochastic.mean) & (stochastic.mean <= stochastic.high)).all())
    assert bool(((stochastic.runs >= 0) & (stochastic.runs <= 1)).all())
    # C2F's tile order within a level is random: it gets the runs of a stochastic policy.
    coarse_to_fine = by_name["C2F", "mIoU"]
    assert coarse_to_fine.runs.shape == (3, 3)
    # EG-C2F and C2F both open with the full scene: the same first glimpse, the same t = 0 score.
    assert float(deterministic.mean[0]) == float(coarse_to_fine.runs[0, 0])
    expected = glimpse_flops(tiny.config, glimpse_px=32, canvas_grid=4).total + seg_probe_flops(96, 4, 3)
    assert deterministic.gflops_per_glimpse == pytest.approx(expected / 1e9)
    # Per-scene confusion counts [R, N, T, C, C] sum to the curve's global mIoU and pixel accuracy of every run.
    scenes = stochastic.scenes
    assert scenes.shape == (3, len(tiny_scenes("segmentation")), 3, 3, 3)
    assert torch.allclose(mean_iou_of(scenes.sum(1)), stochastic.runs)
    total = scenes.sum(1)  # [R, T, C, C]
    accuracy = total.diagonal(dim1=-2, dim2=-1).sum(-1) / total.sum((-2, -1))
    assert torch.allclose(accuracy.double(), by_name["R-IID", "pixel accuracy"].runs)


def test_classification_curves_and_eg_c2f_skipped_without_a_seg_probe(tiny):
    data = tiny_scenes("classification")
    cls_probe = probe("classification", 64)
    config = EvalConfig(policies=("F-IID", "RFS"), episode=dataclasses.replace(EPISODE, num_glimpses=2), num_runs=2)
    curves = evaluate_policies(tiny, cls_probe, data, config, task="classification", num_classes=3, progress=False)
    assert {c.metric for c in curves} == {"top-1", "top-5"}
    assert all(float(c.mean.max()) == 1.0 for c in curves if c.metric == "top-5")  # 3 classes: top-5 is certain
    with pytest.warns(UserWarning, match=r"^EG-C2F skipped: it needs a decoder .* \(e\.g\. a segmentation probe\)"):
        unsteered = evaluate_policies(
            tiny, cls_probe, data, CONFIG, task="classification", num_classes=3, progress=False
        )
    assert [c.policy for c in unsteered] == ["C2F", "C2F", "R-IID", "R-IID"]
    steered = evaluate_policies(
        tiny, cls_probe, data, CONFIG, task="classification", num_classes=3, seg_probe=probe("segmentation", 96),
        progress=False,
    )  # fmt: skip
    assert len(steered) == 6


def test_stochastic_runs_replay_with_the_seed(tiny):
    data, seg = tiny_scenes("segmentation"), probe("segmentation", 96)
    config = EvalConfig(policies=("R-IID",), episode=dataclasses.replace(EPISODE, num_glimpses=2), num_runs=2)
    first = evaluate_policies(tiny, seg, data, config, task="segmentation", num_classes=3, progress=False)
    again = evaluate_policies(tiny, seg, data, config, task="segmentation", num_classes=3, progress=False)
    assert torch.equal(first[0].runs, again[0].runs)


def test_eval_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"EvalConfig\.policies"):
        EvalConfig(policies=("zigzag",))
    with pytest.raises(ValueError, match=r"EpisodeConfig\.num_glimpses"):
        EpisodeConfig(num_glimpses=0)


def test_teacher_flops_counted_and_declared():
    teacher = TinyTeacher(patch_size=8, dim=16)
    assert measured_teacher_flops(teacher, 32) == teacher.expected_flops(32)

    class Declared(TinyTeacher):
        def flops(self, input_px: int) -> int:
            return 123

    assert measured_teacher_flops(Declared(), 32) == 123


def test_passive_points(tiny):
    teacher = TinyTeacher(patch_size=8, dim=16)
    seg = probe("segmentation", 16, layer_norm=False)
    points = evaluate_passive(
        teacher, seg, tiny_scenes("segmentation"), task="segmentation", input_px=32, num_classes=3, progress=False
    )
    assert [p.metric for p in points] == ["mIoU", "pixel accuracy"]
    assert points[0].gflops == pytest.approx((teacher.expected_flops(32) + seg_probe_flops(16, 4, 3)) / 1e9)
    assert 0 <= points[0].value <= 1


def fake_curve(policy: str, values: list[float], gflops: float = 1.0, runs: int = 1) -> Curve:
    spread = torch.linspace(-0.01, 0.01, runs) if runs > 1 else torch.zeros(1)  # [R] run-to-run differences
    tensor = torch.tensor([values] * runs, dtype=torch.float64) + spread[:, None]
    return over_runs(tensor, policy=policy, metric="mIoU", task="segmentation", gflops_per_glimpse=gflops, percent=True)


def test_passive_matching():
    curves = [fake_curve("R-IID", [0.1, 0.2], runs=3), fake_curve("C2F", [0.3, 0.4], gflops=1.5)]
    passive = [
        PassivePoint("segmentation", "mIoU", px, gflops, 0.25) for px, gflops in ((28, 0.5), (42, 1.2), (56, 2.0))
    ]
    canvit, rows = passive_rows(curves, passive, task="segmentation", metric="mIoU", glimpse_px=32)
    assert canvit == {"policy": "C2F", "gflops": 1.5, "value": 0.3}
    assert [r["note"] for r in rows] == [["input-matched"], [], ["FLOP-matched"]]


def test_report_files(tmp_path):
    curves = [fake_curve("C2F", [0.3, 0.4, 0.45]), fake_curve("R-IID", [0.1, 0.2, 0.3], runs=3)]
    passive = [PassivePoint("segmentation", "mIoU", 32, 0.5, 0.25), PassivePoint("segmentation", "mIoU", 64, 2.0, 0.35)]
    paths = write_report(tmp_path, curves, passive=passive, glimpse_px=32)
    text = paths["markdown"].read_text()
    assert "| C2F | 1 | 30.0 | 40.0 | 45.0 | 45.0 (2) |" in text
    assert "| R-IID | 3 | 10.0 ± 1.0 | 20.0 ± 1.0 | 30.0 ± 1.0 | 30.0 (2) |" in text
    assert "input-matched" in text and "FLOP-matched" in text and "CanViT, t=0 (C2F, full scene)" in text
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 + 3 + 2
    assert list(rows[0])[:10] == [
        "task", "model", "policy", "t", "input_px", "metric", "mean", "ci_half_width", "num_runs", "gflops"
    ]  # fmt: skip
    assert rows[0]["policy"] == "C2F" and rows[0]["t"] == "0" and float(rows[0]["mean"]) == pytest.approx(0.3)
    assert rows[0]["ci_half_width"] == "" and float(rows[3]["ci_half_width"]) == pytest.approx(0.01, abs=2e-3)
    assert paths["segmentation_mIoU"].stat().st_size > 5_000


def test_results_csv_round_trips_through_read_curves(tmp_path):
    curves = [fake_curve("C2F", [0.3, 0.4, 0.45], gflops=0.25), fake_curve("R-IID", [0.1, 0.2, 0.3], runs=3)]
    passive = [PassivePoint("segmentation", "mIoU", 32, 0.5, 0.25)]
    results = read_curves(write_report(tmp_path, curves, passive=passive, plot=False)["csv"])
    assert results.passive == passive and results.differences == []
    for read, written in zip(results.curves, curves, strict=True):
        assert (read.policy, read.metric, read.task, read.interval) == (
            written.policy, written.metric, written.task, written.interval
        )  # fmt: skip
        assert (read.num_runs, read.gflops_per_glimpse) == (written.num_runs, written.gflops_per_glimpse)
        for field in ("mean", "low", "high"):
            torch.testing.assert_close(getattr(read, field), getattr(written, field), atol=1e-6, rtol=0, equal_nan=True)
