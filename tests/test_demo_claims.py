"""The demo's verdicts on the paper's three effects: each check holds exactly when its numbers say so."""

from __future__ import annotations

import torch

from saccade.demo.claims import (
    judge_accumulation,
    judge_benchmark,
    judge_efficiency,
    judge_order,
    majority_class_miou,
    plot_claims,
    split_references,
)

N, T, C = 64, 6, 3


def cosines(start: float, per_glimpse: float, runs: int = 2, noise: float = 0.02) -> torch.Tensor:
    """[R, N, T] per-scene cosines that rise by `per_glimpse` each glimpse."""
    generator = torch.Generator().manual_seed(int(1000 * start + 100 * per_glimpse))
    trend = start + per_glimpse * torch.arange(T, dtype=torch.float64)
    return trend + noise * torch.randn(runs, N, T, generator=generator, dtype=torch.float64)


def confusions(accuracy_per_t: list[float], runs: int = 2) -> torch.Tensor:
    """[R, N, T, C, C]: each scene has 100 pixels per class; a fraction of them correct, the rest called class 0."""
    confusion = torch.zeros(runs, N, T, C, C, dtype=torch.long)
    generator = torch.Generator().manual_seed(int(1000 * sum(accuracy_per_t)))
    for t, accuracy in enumerate(accuracy_per_t):
        correct = (100 * accuracy + 3 * torch.randn(runs, N, C, generator=generator)).round().clamp(0, 100).long()
        for c in range(C):
            confusion[:, :, t, c, c] = correct[:, :, c]
            confusion[:, :, t, c, 0] += 100 - correct[:, :, c]
    return confusion


RISING = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
FLAT = [0.3] * T


def test_accumulation_holds_only_for_a_rise_from_detail():
    rising = judge_accumulation(
        {"C2F": cosines(0.30, 0.04), "RFS": cosines(0.30, 0.0, runs=1)},
        {"C2F": confusions(RISING), "RFS": confusions(FLAT, runs=1)},
    )
    assert rising.holds, rising.line()
    # The same curves from repetition alone (RFS just as good): the rise is not from detail.
    repeated = judge_accumulation(
        {"C2F": cosines(0.30, 0.04), "RFS": cosines(0.30, 0.04, runs=1)},
        {"C2F": confusions(RISING), "RFS": confusions(RISING, runs=1)},
    )
    assert not repeated.holds
    assert [check.holds for check in repeated.checks] == [True, True, True, False, False]
    # A rise that ends below the floor, and flat mIoU.
    low = judge_accumulation({"C2F": cosines(0.10, 0.03), "RFS": cosines(0.1, 0.0, runs=1)}, {"C2F": confusions(FLAT)})
    assert [check.holds for check in low.checks][:3] == [True, False, False]
    assert "RFS was not evaluated" in low.line() and "NOT shown" in low.line()


def test_order_needs_c2f_above_f2c_early():
    better = confusions([*RISING[1:], 0.9])
    shown = judge_order(
        {"C2F": cosines(0.4, 0.01), "F2C": cosines(0.1, 0.04)}, {"C2F": better, "F2C": confusions(FLAT)}
    )
    assert shown.holds, shown.line()
    same = judge_order(
        {"C2F": cosines(0.4, 0.0), "F2C": cosines(0.4, 0.0)}, {"C2F": confusions(FLAT), "F2C": confusions(FLAT)}
    )
    assert not same.holds and "lowest at t=" in same.line()
    assert not judge_order({"C2F": cosines(0.4, 0.0)}, {"C2F": confusions(FLAT)}).holds


TEACHER = [
    {"task": "segmentation", "metric": "mIoU", "input_px": 28, "value": 0.10, "gflops": 0.1},
    {"task": "segmentation", "metric": "mIoU", "input_px": 56, "value": 0.45, "gflops": 0.35},
    {"task": "segmentation", "metric": "mIoU", "input_px": 112, "value": 0.9, "gflops": 1.5},
    {"task": "classification", "metric": "top-1", "input_px": 112, "value": 0.47, "gflops": 1.5},
]


def test_efficiency_compares_within_the_middle_teachers_budget():
    curve = {"C2F": confusions(RISING)}  # global mIoU ~0.3 .. 0.8 over t
    within_three = judge_efficiency(curve, 0.1, TEACHER)  # t = 0..2 affordable (0.3 GFLOPs <= 0.35)
    assert within_three.holds, within_three.line()
    assert "C2F t=2" in within_three.line()
    within_one = judge_efficiency(curve, 0.3, TEACHER)  # only t = 0: mIoU below the teacher's 45
    assert not within_one.holds and "C2F t=0" in within_one.line()
    none = judge_efficiency(curve, 1.0, TEACHER)
    assert not none.holds and "no glimpse fits" in none.line()


def test_benchmark_sanity_and_the_majority_level():
    level = majority_class_miou(confusions(FLAT))  # equal classes: IoU 1/3 for the majority pick, 0 otherwise
    assert abs(level - 1 / 9) < 1e-9
    ok = judge_benchmark(TEACHER, majority_miou=level, num_classification_classes=10)
    assert ok.holds, ok.line()
    weak = [
        dict(row, value=0.15) if row["input_px"] == 112 and row["task"] == "segmentation" else row for row in TEACHER
    ]
    assert [c.holds for c in judge_benchmark(weak, majority_miou=level, num_classification_classes=10).checks] == [
        False,
        False,
        True,
    ]


def test_plots_one_picture_per_claim_with_curves(tmp_path):
    verdicts = [
        judge_accumulation(
            {"C2F": cosines(0.3, 0.04), "RFS": cosines(0.3, 0.0, runs=1)},
            {"C2F": confusions(RISING), "RFS": confusions(FLAT, runs=1)},
        ),
        judge_benchmark(TEACHER, majority_miou=0.1, num_classification_classes=10),
        judge_efficiency({"C2F": confusions(RISING)}, 0.1, TEACHER),
    ]
    paths = plot_claims(verdicts, TEACHER, 0.1, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["claim_1.png", "claim_3.png"]
    assert all(p.stat().st_size > 5000 for p in paths.values())


def test_a_teacher_line_far_above_the_curves_is_named_instead_of_squashing_them():
    """The demo's case: curves up to 10 mIoU, teachers at 7.7, 11.1 and 26.0 (28, 56, 112 px)."""
    assert split_references([7.7, 11.1, 26.0], curves_top=10.0) == ([0, 1], [2])
    assert split_references([7.7, 11.1, 26.0], curves_top=20.0) == ([0, 1, 2], [])
