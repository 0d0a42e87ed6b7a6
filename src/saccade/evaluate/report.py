"""Results as files: a long-format CSV, a Markdown report, and metric-versus-glimpse plots (paper §6 tables/figures).

Markdown tables follow the paper's layout: one row per policy, one column per timestep t (0-based; t = 0 is the
first glimpse), values in %, `mean ± half-width` of the 95% bootstrap interval for policies run several times,
and the best t. The passive comparison puts CanViT after its first (full-scene) glimpse beside the probed
teacher at every input size, marking the *input-matched* teacher (input side closest to the glimpse side) and
the *FLOP-matched* one (the cheapest input whose FLOPs per image reach CanViT's FLOPs per glimpse; the most
expensive one if none does).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from saccade.evaluate.runner import Curve, PassivePoint
from saccade.policies import POLICIES, resolve_policy

__all__ = ["passive_rows", "plot_curves", "write_report"]
_PAPER_COLUMNS = (0, 1, 2, 3, 4, 9, 16, 20)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _cell(curve: Curve, t: int) -> str:
    mean, half = float(curve.mean[t]), float(curve.ci_half_width[t])
    return _pct(mean) if math.isnan(half) else f"{_pct(mean)} ± {100 * half:.1f}"


def _columns(num_glimpses: int) -> list[int]:
    """All timesteps when there are few, else the paper's columns that exist, plus the last."""
    if num_glimpses <= 12:
        return list(range(num_glimpses))
    return sorted({t for t in _PAPER_COLUMNS if t < num_glimpses} | {num_glimpses - 1})


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def passive_rows(curves: Sequence[Curve], passive: Sequence[PassivePoint], *, task: str, metric: str, glimpse_px: int):
    """(CanViT t=0 row or None, teacher rows) of the passive comparison, each a dict of its fields."""
    canvit = None
    for curve in curves:  # the first policy whose first glimpse is the full scene: the 't = 0, one glimpse' point
        if (
            curve.task == task
            and curve.metric == metric
            and POLICIES[resolve_policy(curve.policy)].starts_with_full_scene
        ):
            canvit = {"policy": curve.policy, "gflops": curve.gflops_per_glimpse, "value": float(curve.mean[0])}
            break
    points = sorted((p for p in passive if p.task == task and p.metric == metric), key=lambda p: p.input_px)
    rows = [{"input_px": p.input_px, "gflops": p.gflops, "value": p.value, "note": []} for p in points]
    if rows:
        closest = min(rows, key=lambda r: (abs(r["input_px"] - glimpse_px), r["input_px"]))
        closest["note"].append("input-matched")
        if canvit is not None:
            reaching = [r for r in rows if r["gflops"] >= canvit["gflops"]]
            (reaching[0] if reaching else rows[-1])["note"].append("FLOP-matched")
    return canvit, rows


def _settings_lines(settings: dict) -> list[str]:
    return [f"- {key}: {value}" for key, value in settings.items()]


def write_report(
    out_dir: str | Path,
    *,
    curves: Sequence[Curve],
    passive: Sequence[PassivePoint] = (),
    settings: dict | None = None,
    title: str = "CanViT evaluation",
    plot: bool = True,
) -> dict[str, Path]:
    """Write results.csv, results.md and one PNG per (task, metric) into out_dir; returns the paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "markdown": out / "results.md"}
    _write_csv(paths["csv"], curves, passive)
    settings = dict(settings or {})
    glimpse_px = int(settings.get("glimpse_px", 0))
    lines = [f"# {title}", "", *_settings_lines(settings), ""]
    groups = sorted({(c.task, c.metric) for c in curves} | {(p.task, p.metric) for p in passive})
    for task, metric in groups:
        group = [c for c in curves if c.task == task and c.metric == metric]
        if group:
            num_glimpses = group[0].mean.shape[0]
            columns = _columns(num_glimpses)
            header = ["policy", "runs", *[f"t={t}" for t in columns], "best (t)"]
            rows = [
                [
                    c.policy,
                    str(c.num_runs),
                    *[_cell(c, t) for t in columns],
                    f"{_pct(float(c.mean.max()))} ({c.best_t})",
                ]
                for c in group
            ]
            lines += [f"## {task}: {metric} (%) per glimpse", "", *_markdown_table(header, rows), ""]
            if plot:
                name = f"{task}_{metric.replace(' ', '_').replace('-', '')}"
                paths[name] = plot_curves(out / f"{name}.png", group, passive, title=f"{task}: {metric}")
        canvit, rows = passive_rows(curves, passive, task=task, metric=metric, glimpse_px=glimpse_px)
        if rows:
            table = []
            if canvit is not None:
                first = f"CanViT, t=0 ({canvit['policy']}, full scene)"
                table.append([first, f"{glimpse_px} (glimpse)", f"{canvit['gflops']:.3f}", _pct(canvit["value"]), ""])
            table += [
                ["teacher", str(r["input_px"]), f"{r['gflops']:.3f}", _pct(r["value"]), ", ".join(r["note"])]
                for r in rows
            ]
            header = ["model", "input px", "GFLOPs", f"{metric} (%)", "match"]
            lines += [f"## {task}: passive comparison ({metric})", "", *_markdown_table(header, table), ""]
    lines += [
        "GFLOPs: per glimpse for CanViT (glimpse step + probe), per image for the teacher (forward + probe); "
        "2 FLOPs per multiply-accumulate, matmuls and convolutions only. ± is the half-width of the 95% "
        "bootstrap interval over runs of a stochastic policy.",
        "",
    ]
    paths["markdown"].write_text("\n".join(lines))
    return paths


def _write_csv(path: Path, curves: Sequence[Curve], passive: Sequence[PassivePoint]) -> None:
    fields = ["task", "model", "policy", "t", "input_px", "metric", "mean", "ci_half_width", "num_runs", "gflops"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for curve in curves:
            for t in range(curve.mean.shape[0]):
                half = float(curve.ci_half_width[t])
                writer.writerow(
                    {
                        "task": curve.task,
                        "model": "canvit",
                        "policy": curve.policy,
                        "t": t,
                        "input_px": "",
                        "metric": curve.metric,
                        "mean": f"{float(curve.mean[t]):.6f}",
                        "ci_half_width": "" if math.isnan(half) else f"{half:.6f}",
                        "num_runs": curve.num_runs,
                        "gflops": f"{curve.gflops_per_glimpse * (t + 1):.6f}",
                    }
                )
        for point in passive:
            writer.writerow(
                {
                    "task": point.task,
                    "model": "teacher",
                    "policy": "passive",
                    "t": "",
                    "input_px": point.input_px,
                    "metric": point.metric,
                    "mean": f"{point.value:.6f}",
                    "ci_half_width": "",
                    "num_runs": 1,
                    "gflops": f"{point.gflops:.6f}",
                }
            )


def _px(point: PassivePoint) -> int:
    return point.input_px


def plot_curves(
    path: str | Path, curves: Sequence[Curve], passive: Sequence[PassivePoint] = (), *, title: str = ""
) -> Path:
    """Metric (%) versus glimpse index, one curve per policy (95% band when run several times), teachers dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for curve in curves:
        steps = list(range(curve.mean.shape[0]))
        mean = (100 * curve.mean).tolist()
        (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=curve.policy)
        if curve.num_runs > 1:
            half = (100 * curve.ci_half_width).tolist()
            low = [m - h for m, h in zip(mean, half, strict=True)]
            high = [m + h for m, h in zip(mean, half, strict=True)]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    metric = curves[0].metric if curves else ""
    teachers = sorted((p for p in passive if curves and p.task == curves[0].task and p.metric == metric), key=_px)
    styles = ("--", ":", "-.")
    for index, point in enumerate(teachers):
        label = f"teacher {point.input_px} px ({point.gflops:.2g} GF)"
        ax.axhline(100 * point.value, linestyle=styles[index % 3], linewidth=1.2, color="0.35", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("glimpse t")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
