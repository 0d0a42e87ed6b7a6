"""The one writer of per-glimpse results: a long-format CSV, a Markdown report and metric-versus-glimpse plots of
Curves (paper §6 tables and figures), and `read_curves`, which reads the CSV back.

`saccade evaluate` and `saccade evaluate-policy` write through it. Markdown tables follow the paper's layout: one
row per policy, one column per timestep t (0-based; t = 0 is the first glimpse), fractions in %, `mean ± half-width`
where the interval is centred (over runs), `mean [low, high]` where it is not (over scenes and runs), and the best t.
Paired differences get their own table. The passive comparison puts CanViT after its first (full-scene) glimpse beside
the probed teacher at every input size, marking the *input-matched* teacher (input side closest to the glimpse side)
and the *FLOP-matched* one (the cheapest input whose FLOPs per image reach CanViT's FLOPs per glimpse; the most
expensive one if none does).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from saccade.evaluate.curves import OVER_RUNS, OVER_SCENES, Curve
from saccade.evaluate.runner import PassivePoint
from saccade.policies import POLICIES, resolve_policy

__all__ = ["CSV_DIGITS", "Results", "passive_rows", "plot_curves", "read_curves", "write_report"]

CSV_DIGITS = 6
"""Decimals of every number in results.csv (and so of what the demo records from it)."""
CSV_FIELDS = (
    "task", "model", "policy", "t", "input_px", "metric", "mean", "ci_half_width", "num_runs", "gflops", "ci_low",
    "ci_high", "interval",
)  # fmt: skip
_PAPER_COLUMNS = (0, 1, 2, 3, 4, 9, 16, 20)
_INTERVAL_NOTES = {
    OVER_RUNS: "± is the half-width of the 95% bootstrap interval over runs of a random-order policy",
    OVER_SCENES: "[low, high] is the 95% percentile bootstrap interval over test scenes and runs; paired "
    "differences resample both policies on the same scenes",
}


@dataclass(frozen=True)
class Results:
    """What results.csv holds: the curves, the passive teacher points and the paired differences."""

    curves: list[Curve]
    passive: list[PassivePoint]
    differences: list[Curve]


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _value(curve: Curve, value: float) -> str:
    """A value in % (1 decimal) for fractions, else with 4 decimals."""
    if not curve.percent:
        return "-" if math.isnan(value) else f"{value:.4f}"
    return _pct(value)


def _cell(curve: Curve, t: int) -> str:
    mean, low, high = float(curve.mean[t]), float(curve.low[t]), float(curve.high[t])
    if math.isnan(low):
        return _value(curve, mean)
    if curve.interval == OVER_RUNS:  # centred on the mean
        half = (high - low) / 2
        return f"{_value(curve, mean)} ± " + (f"{100 * half:.1f}" if curve.percent else f"{half:.4f}")
    return f"{_value(curve, mean)} [{_value(curve, low)}, {_value(curve, high)}]"


def _columns(num_glimpses: int) -> list[int]:
    """All timesteps when there are few, else the paper's columns that exist, plus the last."""
    if num_glimpses <= 12:
        return list(range(num_glimpses))
    return sorted({t for t in _PAPER_COLUMNS if t < num_glimpses} | {num_glimpses - 1})


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _curve_table(curves: Sequence[Curve], *, first: str, best: bool) -> list[str]:
    """One row per curve, one column per (shown) timestep, and the best t."""
    columns = _columns(curves[0].num_glimpses)
    header = [first, "runs", *[f"t={t}" for t in columns], *(["best (t)"] if best else [])]
    rows = [
        [
            c.policy,
            str(c.num_runs),
            *[_cell(c, t) for t in columns],
            *([f"{_value(c, float(c.mean.max()))} ({c.best_t})"] if best else []),
        ]
        for c in curves
    ]
    return _table(header, rows)


def passive_rows(curves: Sequence[Curve], passive: Sequence[PassivePoint], *, task: str, metric: str, glimpse_px: int):
    """(CanViT t=0 row or None, teacher rows) of the passive comparison, each a dict of its fields."""
    points = sorted((p for p in passive if p.task == task and p.metric == metric), key=lambda p: p.input_px)
    if not points:
        return None, []
    canvit = None
    for curve in curves:  # the first policy whose first glimpse is the full scene: the 't = 0, one glimpse' point
        if (
            curve.task == task
            and curve.metric == metric
            and POLICIES[resolve_policy(curve.policy)].starts_with_full_scene
        ):
            canvit = {"policy": curve.policy, "gflops": curve.gflops_per_glimpse, "value": float(curve.mean[0])}
            break
    rows = [{"input_px": p.input_px, "gflops": p.gflops, "value": p.value, "note": []} for p in points]
    closest = min(rows, key=lambda r: (abs(r["input_px"] - glimpse_px), r["input_px"]))
    closest["note"].append("input-matched")
    if canvit is not None:
        reaching = [r for r in rows if r["gflops"] >= canvit["gflops"]]
        (reaching[0] if reaching else rows[-1])["note"].append("FLOP-matched")
    return canvit, rows


def _passive_table(curves: Sequence[Curve], passive: Sequence[PassivePoint], task: str, metric: str, glimpse_px: int):
    canvit, rows = passive_rows(curves, passive, task=task, metric=metric, glimpse_px=glimpse_px)
    if not rows:
        return []
    table = []
    if canvit is not None:
        first = f"CanViT, t=0 ({canvit['policy']}, full scene)"
        table.append([first, f"{glimpse_px} (glimpse)", f"{canvit['gflops']:.3f}", _pct(canvit["value"]), ""])
    table += [
        ["teacher", str(r["input_px"]), f"{r['gflops']:.3f}", _pct(r["value"]), ", ".join(r["note"])] for r in rows
    ]
    header = ["model", "input px", "GFLOPs", f"{metric} (%)", "match"]
    return [f"## {task}: passive comparison ({metric})", "", *_table(header, table), ""]


def _footer(curves: Sequence[Curve], passive: Sequence[PassivePoint]) -> list[str]:
    notes = [_INTERVAL_NOTES[kind] for kind in sorted({c.interval for c in curves})]
    if passive or any(c.gflops_per_glimpse is not None for c in curves):
        notes.insert(
            0,
            "GFLOPs: per glimpse for CanViT (glimpse step + probe), per image for the teacher (forward + probe); "
            "2 FLOPs per multiply-accumulate, matmuls and convolutions only",
        )
    return [". ".join(notes) + ".", ""] if notes else []


def write_report(
    out_dir: str | Path,
    curves: Sequence[Curve],
    *,
    passive: Sequence[PassivePoint] = (),
    differences: Sequence[Curve] = (),
    notes: Sequence[str] = (),
    glimpse_px: int = 0,
    title: str = "CanViT evaluation",
    plot: bool = True,
    plot_names: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Path]:
    """Write results.csv, results.md and one PNG per (task, metric) into out_dir; returns the paths by name.

    Args:
        notes: lines listed under the title (the run's settings).
        glimpse_px: CanViT's glimpse side, for the passive comparison's input-matched teacher.
        plot_names: file stem of a (task, metric) plot (default `task_metric`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "markdown": out / "results.md"}
    _write_csv(paths["csv"], curves, passive, differences)
    lines = [f"# {title}", "", *[f"- {note}" for note in notes], ""]
    groups = sorted({(c.task, c.metric) for c in curves} | {(p.task, p.metric) for p in passive})
    for task, metric in groups:
        group = [c for c in curves if (c.task, c.metric) == (task, metric)]
        paired = [d for d in differences if (d.task, d.metric) == (task, metric)]
        unit = " (%)" if group and group[0].percent else ""
        if group:
            lines += [f"## {task}: {metric}{unit} per glimpse", "", *_curve_table(group, first="policy", best=True), ""]
        if paired:
            lines += [f"## {task}: paired differences ({metric})", ""]
            lines += [*_curve_table(paired, first="difference", best=False), ""]
        if group and plot:
            default = f"{task}_{metric.replace(' ', '_').replace('-', '')}"
            name = (plot_names or {}).get((task, metric), default)
            paths[name] = plot_curves(out / f"{name}.png", group, passive, title=f"{task}: {metric}")
        lines += _passive_table(curves, passive, task, metric, glimpse_px)
    lines += _footer([*curves, *differences], passive)
    paths["markdown"].write_text("\n".join(lines))
    return paths


def _number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{CSV_DIGITS}f}"


def _curve_rows(curve: Curve, model: str) -> list[dict[str, object]]:
    return [
        {
            "task": curve.task,
            "model": model,
            "policy": curve.policy,
            "t": t,
            "input_px": "",
            "metric": curve.metric,
            "mean": _number(float(curve.mean[t])),
            "ci_half_width": _number(float(curve.half_width[t])),
            "num_runs": curve.num_runs,
            "gflops": "" if curve.gflops_per_glimpse is None else _number(curve.gflops_per_glimpse * (t + 1)),
            "ci_low": _number(float(curve.low[t])),
            "ci_high": _number(float(curve.high[t])),
            "interval": curve.interval,
        }
        for t in range(curve.num_glimpses)
    ]


def _write_csv(
    path: Path, curves: Sequence[Curve], passive: Sequence[PassivePoint], differences: Sequence[Curve]
) -> None:
    """One row per (curve, t), CanViT's GFLOPs cumulative over t + 1 glimpses; one row per passive point."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, restval="")
        writer.writeheader()
        for curve in curves:
            writer.writerows(_curve_rows(curve, "canvit"))
        for point in passive:
            writer.writerow(
                {
                    "task": point.task,
                    "model": "teacher",
                    "policy": "passive",
                    "input_px": point.input_px,
                    "metric": point.metric,
                    "mean": _number(point.value),
                    "num_runs": 1,
                    "gflops": _number(point.gflops),
                }
            )
        for curve in differences:
            writer.writerows(_curve_rows(curve, "difference"))


def read_curves(path: str | Path) -> Results:
    """The curves, passive points and differences of a results.csv written by `write_report`, at its precision.

    Per-run values, per-scene samples and `percent` are not in the CSV.
    """
    series: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    passive = []
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["model"] == "teacher":
                passive.append(
                    PassivePoint(
                        task=row["task"],
                        metric=row["metric"],
                        input_px=int(row["input_px"]),
                        gflops=float(row["gflops"]),
                        value=float(row["mean"]),
                    )
                )
            else:
                series.setdefault((row["model"], row["task"], row["metric"], row["policy"]), []).append(row)
    curves = {key: _curve_of(key, rows) for key, rows in series.items()}
    return Results(
        curves=[curve for (model, *_), curve in curves.items() if model == "canvit"],
        passive=passive,
        differences=[curve for (model, *_), curve in curves.items() if model == "difference"],
    )


def _curve_of(key: tuple[str, str, str, str], rows: list[dict[str, str]]) -> Curve:
    _, task, metric, policy = key

    def column(name: str) -> torch.Tensor:
        return torch.tensor([float(row[name]) if row[name] else math.nan for row in rows], dtype=torch.float64)

    mean, low, high = column("mean"), column("ci_low"), column("ci_high")
    gflops = rows[0]["gflops"]
    return Curve(
        policy=policy,
        metric=metric,
        task=task,
        mean=mean,
        low=low,
        high=high,
        interval=rows[0]["interval"],
        num_runs=int(rows[0]["num_runs"]),
        gflops_per_glimpse=float(gflops) if gflops else None,  # the t = 0 row: one glimpse
    )


def plot_curves(
    path: str | Path, curves: Sequence[Curve], passive: Sequence[PassivePoint] = (), *, title: str = ""
) -> Path:
    """Metric versus glimpse index, one curve per policy with its 95% band where it has one, teachers dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scale = 100 if curves and curves[0].percent else 1
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for curve in curves:
        steps = list(range(curve.num_glimpses))
        (line,) = ax.plot(steps, (scale * curve.mean).tolist(), marker="o", markersize=3, label=curve.policy)
        if not bool(torch.isnan(curve.low).all()):
            low, high = (scale * curve.low).tolist(), (scale * curve.high).tolist()
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    metric = curves[0].metric if curves else ""
    teachers = [p for p in passive if curves and p.task == curves[0].task and p.metric == metric]
    styles = ("--", ":", "-.")
    for index, point in enumerate(sorted(teachers, key=lambda p: p.input_px)):
        label = f"teacher {point.input_px} px ({point.gflops:.2g} GF)"
        ax.axhline(scale * point.value, linestyle=styles[index % 3], linewidth=1.2, color="0.35", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("glimpse t")
    ax.set_ylabel(f"{metric} (%)" if scale == 100 else metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
