"""report.html: one self-contained page (images inlined, no external assets) and its headless screenshot."""

from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["screenshot", "write_html_report"]

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 4px 0; }
.row img { max-width: 32%; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
.shown { color: #080; font-weight: bold; }
.not-shown { color: #b00; font-weight: bold; }
.budget-cut { background: #fde8e8; border: 3px solid #c00; color: #b00; padding: 0.5em 1em; font-size: 1.1em; }
"""


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p><em>missing picture: {html.escape(path.name)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _budget_cut_banner(results: dict) -> str:
    """A red banner naming every stage that a wall-clock guard stopped early; empty when none was."""
    cuts = results["budget_cuts"]
    if not cuts:
        return ""
    items = "".join(
        f"<li>{html.escape(cut['stage'])}: stopped by its {cut['minutes']:g}-minute wall-clock guard after "
        f"{cut['steps_done']:,} of {cut['steps_planned']:,} steps</li>"
        for cut in cuts
    )
    return (
        f'<div class="budget-cut"><strong>Stopped early: these results are not those of the configuration.</strong>'
        f"<ul>{items}</ul>The machine was slower or busier than the guard allows. For the configured run, run "
        f"again into an empty report folder on an idle machine, or with a larger guard in the configuration.</div>"
    )


def _data_words(results: dict) -> str:
    """What pretraining distilled on (the config's "data"; reports of before it was a setting used photos)."""
    config = results.get("config", {})
    if config.get("data", "photos") == "photos":
        return "crops of the bundled photos"
    sources = config.get("scene_photo_sources", [])
    photos = "the benchmark's training photos" + (f" and those of {', '.join(sources)}" if sources else "")
    data_seed = config.get("data_seed", config.get("seed", 0))  # before data_seed, the training seed seeded them
    return f"unlabeled scenes of the benchmark's kind (a build of data seed {data_seed}, training objects on {photos})"


def _benchmark_words(results: dict) -> str:
    """The segmentation benchmark's object sides as this run recorded them (results.json "benchmarks")."""
    segmentation = results.get("benchmarks", {}).get("fashion-seg")
    if segmentation is None:  # a run from before results.json recorded its benchmarks
        return "the bundled Fashion-MNIST benchmark"
    low, high = segmentation["object_px"]
    return f"the bundled Fashion-MNIST benchmark (segmentation objects of {low}-{high} px)"


def _start_sentence(results: dict) -> str:
    """Where pretraining started (results.json "start") and its training seed, in one sentence."""
    start, steps = results.get("start", {"start": "scratch"}), results.get("pretraining", {}).get("steps")
    seed = f"training seed {results.get('config', {}).get('seed', 0)}"
    if start["start"] == "scratch":
        return f"Pretrained from scratch for {steps} steps ({seed})."
    made = start.get("made")
    if made is None:  # a saved model
        return f"Pretraining continued for {steps} steps from <code>{html.escape(start['start'])}</code> ({seed})."
    bundled = start["start"] == "bundled"
    name = "the bundled start" if bundled else f"the start file <code>{html.escape(start['start'])}</code>"
    how = (
        f"{made['steps']:,} steps with the backbone frozen at the teacher's weights, seed {made['seed']}, "
        f"{made['pretraining_seconds'] / 60:.0f} min on {made['threads']} CPU thread(s)"
    ) + (": <code>make demo-start</code>" if bundled else "")
    return f"Pretraining continued for {steps} steps ({seed}) from {name} ({how})."


def _verdict(verdict: dict) -> str:
    """A claim's one-line verdict, green when it holds, red when not, then its checks."""
    css, word = ("shown", "shown") if verdict["holds"] else ("not-shown", "NOT shown")
    checks = "".join(
        f"<li>{'&#10003;' if check['holds'] else '&#10007;'} {html.escape(check['text'])}</li>"
        for check in verdict["checks"]
    )
    return f'<p><span class="{css}">{html.escape(verdict["claim"])}: {word}.</span></p><ul>{checks}</ul>'


def _claims_section(results: dict) -> str:
    """The three claims, each as its verdict and its plot, then the benchmark check."""
    if "claims" not in results:
        return ""
    parts = []
    for number, verdict in enumerate(results["claims"], start=1):
        plot = _image(Path(verdict["plot"]), verdict["claim"]) if verdict.get("plot") else ""
        parts.append(f"<h3>{number}.</h3>{_verdict(verdict)}{plot}")
        if number == 1 and results.get("canvas_rise_picture"):
            parts.append(
                "<p>The canvas's predicted teacher features (PCA colours) after each C2F glimpse, beside the "
                "teacher's, for the held-out crop whose cosine rose most and the one whose cosine rose least:</p>"
                + _image(Path(results["canvas_rise_picture"]), "canvas after each C2F glimpse")
            )
    benchmark = results["benchmark_check"]
    rows = [
        [f"{row['task']} {row['metric']}", f"{row['input_px']} px", f"{100 * row['value']:.1f}"]
        for row in sorted(results["teacher"], key=lambda r: (r["task"], r["metric"], r["input_px"]))
    ]
    rows.append(["segmentation mIoU", "majority class everywhere", f"{100 * results['majority_class_miou']:.1f}"])
    return (
        "<h2>The paper's three claims, on held-out scenes</h2>"
        "<p>95 % bootstrap intervals over test scenes and policy runs, in brackets.</p>"
        + "".join(parts)
        + "<h2>Benchmark check: can the task show anything?</h2>"
        + _verdict(benchmark)
        + _table(["metric", "passive teacher input", "value (%)"], rows)
    )


def _curve_tables(results: dict) -> str:
    parts = []
    for task, metrics in results["curves"].items():
        for metric, policies in metrics.items():
            num_glimpses = max(len(v) for v in policies.values())
            header = ["policy", *[f"t={t}" for t in range(num_glimpses)]]
            rows = [[policy, *[f"{100 * v:.1f}" for v in values]] for policy, values in policies.items()]
            parts.append(f"<h3>{html.escape(task)}: {html.escape(metric)} (%) per glimpse</h3>" + _table(header, rows))
    return "".join(parts)


def _passive_table(results: dict) -> str:
    rows = []
    gflops = results["costs"]["gflops_per_glimpse"]
    for row in results["teacher"]:
        canvit_t0 = results["curves"].get(row["task"], {}).get(row["metric"], {}).get("C2F", [float("nan")])[0]
        rows.append(
            [
                f"{row['task']} {row['metric']}",
                f"teacher @ {row['input_px']} px",
                f"{row['gflops']:.3f}",
                f"{100 * row['value']:.1f}",
                f"{100 * canvit_t0:.1f} ({gflops:.3f} GFLOPs)",
            ]
        )
    header = ["metric", "passive model", "GFLOPs / image", "value (%)", "CanViT t=0 (GFLOPs / glimpse)"]
    return _table(header, rows)


def _validation_table(results: dict) -> str:
    rows = []
    for policy, series in results.get("validation_cosine", {}).items():
        for target in ("patch", "cls"):
            rows.append([f"{policy} {target}", *[f"{v:.3f}" for v in series[target]]])
    if not rows:
        return "<p>no validation</p>"
    num = max(len(r) for r in rows) - 1
    return _table(["policy / target", *[f"t={t}" for t in range(num)]], rows)


def write_html_report(out: Path, results: dict[str, Any], *, pictures: dict[str, Path], evaluation: Path) -> Path:
    """Write out/report.html from results.json content and the pictures of the run."""
    costs = results["costs"]
    cost_rows = [
        [key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value)]
        for key, value in costs.items()
    ]
    reused = set(results.get("reused_stages", []))
    stage_rows = [
        [name, ("not recorded" if seconds is None else f"{seconds:.0f}") + (" (reused)" if name in reused else "")]
        for name, seconds in results["stage_seconds"].items()
    ]
    plots = "".join(_image(p, p.stem) for p in sorted(evaluation.glob("*.png")))
    paths = "".join(_image(p, f"glimpse path {name}") for name, p in pictures.items())
    pca = _image(out / "pretrain" / "canvas_pca.png", "canvas PCA")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>saccade demo report</title><style>{STYLE}</style></head><body>
{_budget_cut_banner(results)}<h1>saccade: a CanViT, pretrained and judged on a CPU</h1>
<p>Pretrained by dense latent distillation from the bundled DINOv2-S/14 teacher on {_data_words(results)},
then probed on {_benchmark_words(results)}: a scaled-down offline proxy of the paper's ADE20K / ImageNet
protocols, whose numbers are not comparable to the paper's.
{_start_sentence(results)}
{_time_sentence(results)}</p>
{_claims_section(results)}<h2>Metrics per glimpse, by policy</h2>{_curve_tables(results)}<div class="row">{plots}</div>
<h2>Passive teacher baselines</h2>{_passive_table(results)}
<h2>Pretraining: standardized cosine to the teacher on held-out scenes</h2>{_validation_table(results)}
<h3>Canvas PCA after each C2F glimpse, beside the teacher's PCA</h3>{pca}
<h2>Glimpse paths</h2><div class="row">{paths}</div>
<h2>FLOPs and throughput</h2>{_table(["figure", "value"], cost_rows)}
<h2>Stage times (s)</h2>{_table(["stage", "seconds"], stage_rows)}
<h2>Configuration</h2><pre>{html.escape(json.dumps(results["config"], indent=2))}</pre>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _time_sentence(results: dict[str, Any]) -> str:
    """How long this run took, and which stages it reused from an earlier run of the folder."""
    sentence = f"This run took {results['total_seconds'] / 60:.1f} min"
    reused = results.get("reused_stages", [])
    if not reused:
        return sentence + "."
    return sentence + (
        f"; it reused {' and '.join(reused)} from an earlier run of this folder (the stage times below are that run's)."
    )


def screenshot(page: Path, target: Path, *, width: int = 1200, height: int = 4000) -> Path | None:
    """Render `page` in headless Chromium (Debian's chromium) to a PNG; None when Chromium is absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    profile = target.parent / ".chromium-profile"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={target}",
        page.resolve().as_uri(),
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError):
        return None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return target if target.is_file() else None
