"""The paper's three effects in miniature, judged on held-out scenes, and the sanity check of the benchmark.

1. Accumulation. Under C2F the standardized patch cosine to the teacher (held-out crops of the pretraining data, in
   the model's training statistics) rises: the last glimpse at least COSINE_RISE above t=0 and above COSINE_FLOOR;
   the probe mIoU rises: the last glimpse's interval lies above t=0's; and both come from detail, not repetition:
   C2F above RFS at every t >= DETAIL_FROM_T (the paired interval of the difference above 0).
2. Order matters. C2F above F2C at t = 0 .. ORDER_UNTIL_T, for the cosine and the mIoU (paired intervals above 0).
3. Efficiency. Under C2F or EG-C2F, the best mean mIoU over the glimpses whose cumulative cost ((t + 1) glimpse
   steps, each with its probe: the probe is counted at every glimpse, a slight overcount as it costs about 0.5 % of a
   step) stays within one pass of the middle-resolution teacher and its probe is at or above that teacher's mIoU.
Benchmark. The full-resolution teacher reaches SANITY_SEG_FACTOR x the majority-class mIoU and x the low-resolution
teacher's mIoU, and SANITY_CLS_FACTOR x chance top-1: otherwise the benchmark cannot show anything.

Intervals are 95 % bootstraps over test scenes and policy runs (`saccade.evaluate.intervals`). A check that cannot
be made (too few glimpses, a missing policy) does not hold, and says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saccade.evaluate.intervals import Interval, bootstrap, difference, global_mean_iou, mean_over_scenes
from saccade.evaluate.metrics import mean_iou_of

__all__ = [
    "Check",
    "Verdict",
    "judge_accumulation",
    "judge_benchmark",
    "judge_efficiency",
    "judge_order",
    "majority_class_miou",
    "plot_claims",
]

COSINE_RISE = 0.10
COSINE_FLOOR = 0.35
DETAIL_FROM_T = 4
ORDER_UNTIL_T = 4
SANITY_SEG_FACTOR = 2.0
SANITY_CLS_FACTOR = 3.0


@dataclass(frozen=True)
class Check:
    """One condition of a claim, stated with its numbers."""

    text: str
    holds: bool


@dataclass(frozen=True)
class Verdict:
    """A claim and the checks it rests on; it holds when every check does."""

    claim: str
    checks: tuple[Check, ...]
    curves: Mapping[str, Interval]  # what its plot shows, by name
    against_gflops: bool = False  # plotted against cumulative GFLOPs (with the teacher's points), not glimpses

    @property
    def holds(self) -> bool:
        return all(check.holds for check in self.checks)

    def line(self) -> str:
        """One line: the verdict, then every check with its numbers."""
        marks = "; ".join(f"{check.text} [{'yes' if check.holds else 'no'}]" for check in self.checks)
        return f"{self.claim}: {'shown' if self.holds else 'NOT shown'}. {marks}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "holds": self.holds,
            "line": self.line(),
            "checks": [{"text": check.text, "holds": check.holds} for check in self.checks],
            "curves": {name: interval.to_dict() for name, interval in self.curves.items()},
        }


def _span(interval: Interval, t: int, scale: float = 1.0, digits: int = 3) -> str:
    return (
        f"{scale * float(interval.mean[t]):.{digits}f} "
        f"[{scale * float(interval.low[t]):.{digits}f}, {scale * float(interval.high[t]):.{digits}f}]"
    )


def _above_from(name: str, gap: Interval, ts: range, scale: float, digits: int) -> Check:
    """`name` (a paired difference) above 0 at every t in ts."""
    if len(ts) == 0 or ts.stop > gap.mean.shape[0]:
        return Check(
            f"{name} at t = {ts.start}..{ts.stop - 1}: needs {ts.stop} glimpses, got {gap.mean.shape[0]}", False
        )
    worst = min(ts, key=lambda t: float(gap.low[t]))
    holds = all(float(gap.low[t]) > 0 for t in ts)
    return Check(
        f"{name} at t = {ts.start}..{ts.stop - 1}, lowest at t={worst}: {_span(gap, worst, scale, digits)}", holds
    )


def _last_minus_first(metric):
    def rise(sample: Tensor) -> Tensor:
        values = metric(sample)  # [T]
        return values[-1:] - values[:1]  # [1]

    return rise


def judge_accumulation(cosine: Mapping[str, Tensor], confusion: Mapping[str, Tensor]) -> Verdict:
    """cosine: {policy: [R, N, T]} on held-out crops; confusion: {policy: [R, N, T, C, C]} on test scenes."""
    c2f_cos, c2f_iou = bootstrap(mean_over_scenes, cosine["C2F"]), bootstrap(global_mean_iou, confusion["C2F"])
    last = c2f_cos.mean.shape[0] - 1
    rise = bootstrap(_last_minus_first(mean_over_scenes), cosine["C2F"])
    checks = [
        Check(
            f"C2F cosine t=0 {_span(c2f_cos, 0)} -> t={last} {_span(c2f_cos, last)}: rise {_span(rise, 0)} "
            f">= {COSINE_RISE}",
            float(rise.mean[0]) >= COSINE_RISE,
        ),
        Check(
            f"C2F cosine at t={last} {float(c2f_cos.mean[last]):.3f} > {COSINE_FLOOR}",
            float(c2f_cos.mean[last]) > COSINE_FLOOR,
        ),
        Check(
            f"C2F mIoU t=0 {_span(c2f_iou, 0, 100, 1)} -> t={last} {_span(c2f_iou, last, 100, 1)}: intervals apart",
            float(c2f_iou.low[last]) > float(c2f_iou.high[0]),
        ),
    ]
    curves = {"C2F cosine": c2f_cos, "C2F mIoU": c2f_iou}
    if "RFS" in cosine and "RFS" in confusion:
        detail = range(DETAIL_FROM_T, last + 1)
        checks.append(
            _above_from("C2F - RFS cosine", difference(mean_over_scenes, cosine["C2F"], cosine["RFS"]), detail, 1, 3)
        )
        gap = difference(global_mean_iou, confusion["C2F"], confusion["RFS"])
        checks.append(_above_from("C2F - RFS mIoU", gap, detail, 100, 1))
        curves |= {
            "RFS cosine": bootstrap(mean_over_scenes, cosine["RFS"]),
            "RFS mIoU": bootstrap(global_mean_iou, confusion["RFS"]),
        }
    else:
        checks.append(Check("C2F above RFS: RFS was not evaluated", False))
    return Verdict("Accumulation: the canvas improves with every glimpse, from detail", tuple(checks), curves)


def judge_order(cosine: Mapping[str, Tensor], confusion: Mapping[str, Tensor]) -> Verdict:
    """C2F above F2C at t = 0 .. ORDER_UNTIL_T for the cosine and the mIoU."""
    if "F2C" not in cosine or "F2C" not in confusion:
        return Verdict(
            "Order matters: coarse to fine beats fine to coarse", (Check("F2C was not evaluated", False),), {}
        )
    early = range(0, ORDER_UNTIL_T + 1)
    cos_gap = difference(mean_over_scenes, cosine["C2F"], cosine["F2C"])
    iou_gap = difference(global_mean_iou, confusion["C2F"], confusion["F2C"])
    checks = (
        _above_from("C2F - F2C cosine", cos_gap, early, 1, 3),
        _above_from("C2F - F2C mIoU", iou_gap, early, 100, 1),
    )
    curves = {
        f"{policy} {name}": bootstrap(metric, sample[policy])
        for policy in ("C2F", "F2C")
        for name, metric, sample in (("cosine", mean_over_scenes, cosine), ("mIoU", global_mean_iou, confusion))
    }
    return Verdict("Order matters: coarse to fine beats fine to coarse", checks, curves)


def _teacher_rows(teacher: Sequence[Mapping[str, Any]], task: str, metric: str) -> list[Mapping[str, Any]]:
    """The teacher's rows of one task and metric, smallest input first."""
    return sorted((r for r in teacher if r["task"] == task and r["metric"] == metric), key=lambda r: r["input_px"])


def judge_efficiency(
    confusion: Mapping[str, Tensor], gflops_per_glimpse: float, teacher: Sequence[Mapping[str, Any]]
) -> Verdict:
    """teacher: rows {'task', 'metric', 'input_px', 'value' (in [0, 1]), 'gflops'} of the passive teacher; those of
    segmentation mIoU count (the middle of three sizes or more sets the budget)."""
    title = "Efficiency: a few cheap glimpses beat the FLOP-matched passive teacher"
    rows = _teacher_rows(teacher, "segmentation", "mIoU")
    if len(rows) < 3:
        return Verdict(title, (Check("needs the teacher at a low, a middle and the full resolution", False),), {})
    middle = rows[len(rows) // 2]
    curves, best = {}, None
    for policy in ("C2F", "EG-C2F"):
        if policy not in confusion:
            continue
        curve = bootstrap(global_mean_iou, confusion[policy])
        curves[f"{policy} mIoU"] = curve
        affordable = [t for t in range(curve.mean.shape[0]) if (t + 1) * gflops_per_glimpse <= middle["gflops"]]
        for t in affordable:
            if best is None or float(curve.mean[t]) > best[2]:
                best = (policy, t, float(curve.mean[t]), curve)
    budget = f"{middle['gflops']:.3f} GFLOPs (teacher at {middle['input_px']} px + probe)"
    if best is None:
        text = f"no glimpse fits in {budget}: one glimpse costs {gflops_per_glimpse:.3f} GFLOPs"
        return Verdict(title, (Check(text, False),), curves, against_gflops=True)
    policy, t, value, curve = best
    text = (
        f"best within {budget}: {policy} t={t} ({(t + 1) * gflops_per_glimpse:.3f} GFLOPs) mIoU "
        f"{_span(curve, t, 100, 1)} vs the teacher's {100 * middle['value']:.1f}"
    )
    return Verdict(title, (Check(text, value >= middle["value"]),), curves, against_gflops=True)


def majority_class_miou(confusion: Tensor) -> float:
    """mIoU of predicting the most frequent true class everywhere, from confusion counts [..., C, C] of the test set
    (any runs and glimpses: every one holds each scene's true pixels once, and mIoU ignores a common scale)."""
    C = confusion.shape[-1]
    true_pixels = confusion.reshape(-1, C, C).sum(dim=(0, 2))  # [C]
    predicted = torch.zeros(C, C, dtype=true_pixels.dtype)
    predicted[:, int(true_pixels.argmax())] = true_pixels
    return float(mean_iou_of(predicted))


def judge_benchmark(
    teacher: Sequence[Mapping[str, Any]], *, majority_miou: float, num_classification_classes: int
) -> Verdict:
    """teacher: rows {'task', 'metric', 'input_px', 'value'} of the passive teacher at each size."""

    checks = []
    seg = _teacher_rows(teacher, "segmentation", "mIoU")
    if len(seg) >= 2:
        low, full = seg[0], seg[-1]
        checks.append(
            Check(
                f"teacher @ {full['input_px']} px mIoU {100 * full['value']:.1f} >= {SANITY_SEG_FACTOR:g} x "
                f"majority class {100 * majority_miou:.1f}",
                full["value"] >= SANITY_SEG_FACTOR * majority_miou,
            )
        )
        checks.append(
            Check(
                f"teacher @ {full['input_px']} px >= {SANITY_SEG_FACTOR:g} x teacher @ {low['input_px']} px "
                f"({100 * low['value']:.1f})",
                full["value"] >= SANITY_SEG_FACTOR * low["value"],
            )
        )
    else:
        checks.append(Check("segmentation teacher at two sizes or more was not evaluated", False))
    cls = _teacher_rows(teacher, "classification", "top-1")
    if cls:
        chance = 1 / num_classification_classes
        full = cls[-1]
        checks.append(
            Check(
                f"teacher @ {full['input_px']} px top-1 {100 * full['value']:.1f} >= {SANITY_CLS_FACTOR:g} x chance "
                f"{100 * chance:.1f}",
                full["value"] >= SANITY_CLS_FACTOR * chance,
            )
        )
    return Verdict("Benchmark: the task can show something", tuple(checks), {})


def plot_claims(
    verdicts: Sequence[Verdict], teacher: Sequence[Mapping[str, Any]], gflops_per_glimpse: float, out: Path
) -> dict[str, Path]:
    """One PNG per claim with curves: its intervals per glimpse (efficiency: against cumulative GFLOPs, with the
    teacher's points). Returns {claim: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    seg_teacher = _teacher_rows(teacher, "segmentation", "mIoU")
    for index, verdict in enumerate(verdicts):
        if not verdict.curves:
            continue
        efficiency = verdict.against_gflops
        metrics = ["mIoU"] if efficiency else ["cosine", "mIoU"]
        figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * max(2, len(metrics)), 3.8), squeeze=False)
        for axis, metric in zip(axes[0], metrics, strict=True):
            scale = 100 if metric == "mIoU" else 1
            for name, curve in verdict.curves.items():
                if not name.endswith(metric):
                    continue
                ts = torch.arange(curve.mean.shape[0])
                x = (ts + 1) * gflops_per_glimpse if efficiency else ts
                axis.plot(x, scale * curve.mean, marker="o", markersize=3, label=name.removesuffix(f" {metric}"))
                axis.fill_between(x, scale * curve.low, scale * curve.high, alpha=0.25)
            if efficiency and len(seg_teacher) >= 3:  # the budget: one pass of the middle-resolution teacher
                budget = seg_teacher[len(seg_teacher) // 2]["gflops"]
                axis.axvline(budget, linestyle="--", linewidth=1, color="gray", label="budget")
            if metric == "mIoU" and efficiency:
                for row in seg_teacher:
                    axis.scatter([row["gflops"]], [100 * row["value"]], marker="*", s=90, zorder=3)
                    axis.annotate(f"teacher {row['input_px']} px", (row["gflops"], 100 * row["value"]), fontsize=8)
            elif metric == "mIoU":
                _teacher_lines(axis, seg_teacher)
            axis.set_xlabel("cumulative GFLOPs" if efficiency else "glimpse t")
            axis.set_ylabel("mIoU (%)" if metric == "mIoU" else "patch cosine to the teacher")
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
        short = verdict.claim.split(":")[0]
        figure.suptitle(f"Claim {index + 1}, {short.lower()}: {'shown' if verdict.holds else 'NOT shown'}", fontsize=10)
        figure.tight_layout()
        path = out / f"claim_{index + 1}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths[verdict.claim] = path
    return paths


REFERENCE_REACH = 1.5
"""A teacher line is drawn on a per-glimpse mIoU panel when it is at most this times the curves' top; one further
above (the full-resolution teacher, at 2-3x the CanViT's mIoU) is named in the panel's title instead, so that the
curves keep the panel's height."""


def split_references(values: Sequence[float], curves_top: float) -> tuple[list[int], list[int]]:
    """Indices of the reference `values` drawn as lines within REFERENCE_REACH x `curves_top`, and of those above."""
    drawn = [i for i, value in enumerate(values) if value <= REFERENCE_REACH * curves_top]
    return drawn, [i for i in range(len(values)) if i not in drawn]


def _teacher_lines(axis, rows: Sequence[Mapping[str, Any]]) -> None:
    """The teacher's mIoU at each input size as a dotted line on a per-glimpse panel (split_references)."""
    values = [100 * row["value"] for row in rows]
    drawn, above = split_references(values, axis.get_ylim()[1])  # the limits fit the curves so far
    for i in drawn:
        axis.axhline(values[i], linestyle=":", linewidth=1, color="gray")
        axis.annotate(f"teacher {rows[i]['input_px']} px", (0, values[i]), fontsize=7, color="gray")
    if above:
        words = ", ".join(f"teacher {rows[i]['input_px']} px {values[i]:.1f}" for i in above)
        axis.set_title(f"above the panel: {words}", fontsize=8, color="gray")
