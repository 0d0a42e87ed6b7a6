"""Report of `saccade evaluate-policy`: a Markdown table, a CSV and one plot (a curve per policy)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from saccade.policy_training.evaluate import PolicyCurve

__all__ = ["plot_curves", "write_report"]


def _cell(curve: PolicyCurve, t: int) -> str:
    return f"{curve.mean[t]:.4f} ± {curve.half_width[t]:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(
    curves: Sequence[PolicyCurve], differences: Sequence[PolicyCurve], *, metric: str, notes: Sequence[str]
) -> str:
    """Per-glimpse table (mean ± 95% half-width over scenes) and paired differences."""
    num_glimpses = len(curves[0].mean)
    lines = [f"# Learned glimpse policy: {metric} per glimpse", ""]
    lines += [f"- {note}" for note in notes] + [""]
    header = ["t", *(curve.name for curve in curves)]
    lines += _table(header, [[str(t), *(_cell(c, t) for c in curves)] for t in range(num_glimpses)])
    if differences:
        lines += ["", "Paired differences (same scenes), mean ± 95% half-width:", ""]
        header = ["t", *(d.name for d in differences)]
        lines += _table(header, [[str(t), *(_cell(d, t) for d in differences)] for t in range(num_glimpses)])
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, curves: Sequence[PolicyCurve]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["policy", "t", "mean", "ci95_low", "ci95_high", "num_scenes"])
        for curve in curves:
            for t, (mean, half) in enumerate(zip(curve.mean, curve.half_width, strict=True)):
                writer.writerow(
                    [curve.name, t, f"{mean:.6f}", f"{mean - half:.6f}", f"{mean + half:.6f}", curve.num_scenes]
                )


def plot_curves(curves: Sequence[PolicyCurve], path: Path, *, metric: str) -> Path:
    """One curve per policy with its 95% band, against the glimpse index."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    axes = fig.subplots()
    for curve in curves:
        t = list(range(len(curve.mean)))
        low = [m - h for m, h in zip(curve.mean, curve.half_width, strict=True)]
        high = [m + h for m, h in zip(curve.mean, curve.half_width, strict=True)]
        (line,) = axes.plot(t, curve.mean, marker="o", markersize=3, label=curve.name)
        axes.fill_between(t, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    axes.set_xlabel("glimpse t")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(
    out_dir: str | Path,
    curves: Sequence[PolicyCurve],
    differences: Sequence[PolicyCurve],
    *,
    metric: str,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """results.md, results.csv (curves and differences) and curves.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "plot": out / "curves.png"}
    paths["markdown"].write_text(markdown(curves, differences, metric=metric, notes=notes))
    _write_csv(paths["csv"], [*curves, *differences])
    plot_curves(curves, paths["plot"], metric=metric)
    return paths
