"""The main job: unlabeled scenes -> teacher features -> pretraining -> probes -> every policy -> report.

Each stage writes into its own subfolder of the report folder and is skipped when its output exists, so
an interrupted job restarts where it stopped (pretraining itself resumes from its checkpoint). A finished stage of
other settings is refused by name rather than reused: its results would be another configuration's. A skipped
stage keeps the time it took when it ran (stage_seconds.json), and results.json and the report name it as reused.

Every stage's budget is in steps. Pretraining alone has a wall-clock guard (DemoConfig.pretrain_minutes); when it
stops the stage early, results.json's "budget_cuts" and a red banner at the top of the report say so. Probe
training and evaluation have no time limit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saccade._io import atomic_write
from saccade.config_files import changed_settings
from saccade.demo.config import DemoConfig
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.report import CSV_DIGITS
from saccade.provenance import provenance
from saccade.threads import ThreadChoice, use_threads

if TYPE_CHECKING:
    from saccade.evaluate.curves import Curve
    from saccade.evaluate.report import Results
    from saccade.evaluate.runner import PassivePoint

__all__ = ["make_start_file", "run_demo"]


STAGE_TIMES_FILE = "stage_seconds.json"


class _StageClock:
    """Times each stage; a stage reused from an earlier run of the folder keeps the time it took then."""

    def __init__(self, out: Path) -> None:
        self.path = out / STAGE_TIMES_FILE
        self.earlier: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.seconds: dict[str, float | None] = {}
        self.reused: list[str] = []

    def run(self, name: str, work: Callable[[], Any], *, reused: bool = False) -> Any:
        started = time.perf_counter()
        print(f"[saccade demo] {name} ...", flush=True)
        result = work()
        if reused:  # None: the folder predates stage_seconds.json
            self.seconds[name] = self.earlier.get(name)
            self.reused.append(name)
            took = "" if self.seconds[name] is None else f" (it took {self.seconds[name]:.0f} s when it ran)"
            print(f"[saccade demo] {name}: reused from an earlier run{took}", flush=True)
        else:
            self.seconds[name] = time.perf_counter() - started
            print(f"[saccade demo] {name} done in {self.seconds[name]:.0f} s", flush=True)
        recorded = {key: value for key, value in self.seconds.items() if value is not None}
        text = json.dumps({**self.earlier, **recorded}, indent=2)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        return result


def _distillation_data(config: DemoConfig):
    """(train, held-out) scene sets with the bundled teacher's features (cached): `DemoConfig.data`."""
    from saccade.data.distill_sets import distillation_crops
    from saccade.data.scene_sets import benchmark_scene_sets

    grid = config.pretrain.episode.canvas_grid
    if config.data == "scenes":
        sizes = {"num_train": config.num_train_crops, "num_heldout": config.num_heldout_crops}
        return benchmark_scene_sets(
            "fashion-seg", canvas_grid=grid, seed=config.data_seed, train_sources=config.scene_photo_sources, **sizes
        )
    train = distillation_crops("bundled", canvas_grid=grid, seed=config.data_seed, num_crops=config.num_train_crops)
    heldout = distillation_crops("bundled-heldout", canvas_grid=grid, num_crops=config.num_heldout_crops)
    return train, heldout


def _pretrained(out: Path) -> bool:
    """Whether an earlier run finished pretraining (an interrupted one resumes from its checkpoint instead)."""
    summary = out / "pretrain" / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") != "interrupted"


def _evaluated(out: Path) -> bool:
    """Whether an earlier run finished the probes and the evaluation."""
    return (out / "evaluation" / "results.csv").is_file()


def _refuse_other_settings(recorded_file: Path, now: Any, holds: str, compared: Callable[[str], bool]) -> None:
    """Refuse a folder whose settings recorded in `recorded_file` (read back through the config class of `now`, so
    older layouts and missing keys read as today's defaults) differ from this run's `now` in a field that
    `compared` keeps: what it `holds` would be another configuration's. A folder that recorded none passes."""
    if not recorded_file.is_file():
        return
    changes = changed_settings(json.loads(recorded_file.read_text()), now)
    differing = [f"{name} {old!r} there, {new!r} now" for name, (old, new) in changes.items() if compared(name)]
    if differing:
        raise ValueError(
            f"{recorded_file.parent} holds {holds} ({'; '.join(differing)}): rerun with its settings "
            f"(--config {recorded_file.parent.parent / 'config.json'}) or use another --output-dir"
        )


def _check_reused(stage: str, recorded_file: Path, now: Any, free: tuple[str, ...]) -> None:
    """Refuse to reuse a finished stage recorded with other settings than `now`, outside the fields in `free`."""
    _refuse_other_settings(recorded_file, now, f"a finished {stage} of other settings", lambda name: name not in free)


SCENES_RECORD = "scenes.json"
"""In a demo's pretrain/ folder: the settings of the scenes it trains on (SCENE_FIELDS)."""

SCENE_FIELDS = ("data", "data_seed", "scene_photo_sources", "num_train_crops", "num_heldout_crops")
"""The DemoConfig fields the pretraining and held-out scenes are built from; PretrainConfig holds none of them."""


def _scene_settings(config: DemoConfig) -> dict[str, Any]:
    """The SCENE_FIELDS of `config`, as its config.json holds them."""
    settings = config.to_dict()
    return {name: settings[name] for name in SCENE_FIELDS}


def _check_scenes(config: DemoConfig, out: Path) -> None:
    """Refuse to reuse or resume a pretraining stage of `out` made on other scenes than `config` builds (its
    scenes.json); a folder that recorded none (before the record) passes."""
    record = out / "pretrain" / SCENES_RECORD
    _refuse_other_settings(record, config, "a pretraining on other scenes", lambda name: name in SCENE_FIELDS)


def _check_folder(config: DemoConfig, out: Path) -> None:
    """Refuse a folder whose scenes or finished stages are another configuration's, before this run builds anything
    or writes its config.json over the one they were made with (which the error names)."""
    from saccade.pretrain.config import RESUME_FREE_FIELDS

    _check_scenes(config, out)
    if _pretrained(out):
        _check_reused("pretraining", out / "pretrain" / "config.json", config.pretrain_run(), RESUME_FREE_FIELDS)
    if _evaluated(out):
        free = ("threads", "output_dir", "model", "cache")  # the folder's own paths and the cache: same results
        _check_reused("evaluation", out / "evaluation" / "config.json", config.evaluate_run(), free)


def _pretrain(config: DemoConfig, out: Path, train_set, heldout_set) -> dict:
    from saccade.pretrain.trainer import pretrain

    if _pretrained(out):  # of this run's settings: _check_folder
        return json.loads((out / "pretrain" / "summary.json").read_text())
    (out / "pretrain").mkdir(parents=True, exist_ok=True)
    text = json.dumps(_scene_settings(config), indent=2)
    atomic_write(out / "pretrain" / SCENES_RECORD, lambda tmp: tmp.write_text(text))
    return pretrain(config.pretrain_run(), train_set, heldout_set, max_seconds=60 * config.pretrain_minutes).summary


def _start_record(config: DemoConfig) -> dict[str, Any]:
    """Where pretraining started, for results.json and the report: from scratch (and how), the start file (and how
    it was made) or the saved model."""
    from saccade.pretrain.start_file import is_start_file, start_file_info

    start = config.start_model
    if start is None:
        pretrain = config.pretrain
        return {"start": "scratch", "backbone_init": pretrain.backbone_init, "canvas_start": pretrain.canvas_start}
    if is_start_file(start):
        return {"start": config.start, "file": start, "made": start_file_info(start)}
    return {"start": start}


def _budget_cuts(config: DemoConfig, pretrain_summary: dict) -> list[dict[str, Any]]:
    """The stages that a wall-clock guard stopped before their planned steps (pretraining is the only guarded one)."""
    if pretrain_summary.get("status") != "time_limit":
        return []
    steps_done, steps_planned = pretrain_summary["steps"], pretrain_summary["total_steps"]
    print(
        f"[saccade demo] WARNING: the {config.pretrain_minutes:g}-minute guard stopped pretraining after {steps_done} "
        f"of {steps_planned} steps; the results are not those of this configuration",
        flush=True,
    )
    return [
        {
            "stage": "pretraining",
            "steps_done": steps_done,
            "steps_planned": steps_planned,
            "minutes": config.pretrain_minutes,
        }
    ]


def _evaluate(config: DemoConfig, out: Path) -> tuple[Path, Results]:
    """(the evaluation folder, its curves and teacher points): run now, or read back from the folder's results.csv
    when an earlier run finished this stage."""
    from saccade.evaluate.pipeline import run_evaluation
    from saccade.evaluate.report import Results, read_curves

    folder = out / "evaluation"
    if _evaluated(out):  # of this run's settings: _check_folder
        return folder, read_curves(folder / "results.csv")
    summary = run_evaluation(config.evaluate_run())
    return folder, Results(curves=summary.curves, passive=summary.passive, differences=[])


def _held_out_cosines(config: DemoConfig, model, heldout_set) -> dict[str, torch.Tensor]:
    """{policy: [R, N, T]} patch cosine of each held-out crop after each glimpse of C2F, F2C (R runs, random order)
    and RFS (1 run, deterministic), seeded as in saccade evaluate (seed + run)."""
    from saccade.pretrain.data import collate
    from saccade.pretrain.validate import COSINE_METRICS, cosine_curves

    episode = dataclasses.replace(config.pretrain.episode, num_glimpses=config.num_glimpses)
    seeds = [config.seed + run for run in range(config.evaluate.num_runs)]
    batch = collate(heldout_set, list(range(len(heldout_set))))
    policies = ("C2F", "F2C", "RFS")  # the policies the claims compare (saccade.demo.claims)
    curves = cosine_curves(model, batch, policies=policies, episode=episode, seeds=seeds)
    return {curve.policy: curve.scenes for curve in curves if curve.metric == COSINE_METRICS["patch"]}


def _claims(
    config: DemoConfig, out: Path, evaluation: Path, heldout_set, teacher: list[dict], gflops: float
) -> dict[str, Any]:
    """Judge the three claims and the benchmark on held-out scenes (saccade.demo.claims); pictures under pictures/.

    The mIoU samples are the evaluation's per-scene confusions; the cosines are measured here on the held-out crops
    of the pretraining data. `gflops`: CanViT's cost per glimpse with the segmentation probe.
    """
    from safetensors.torch import load_file

    from saccade import load_pretrained
    from saccade.demo import claims
    from saccade.evaluate.benchmark import BENCHMARKS
    from saccade.evaluate.pipeline import SCENE_CONFUSIONS_FILE
    from saccade.pretrain.data import collate
    from saccade.pretrain.validate import draw_canvas_pca

    confusion = {policy: counts.long() for policy, counts in load_file(str(evaluation / SCENE_CONFUSIONS_FILE)).items()}
    model = load_pretrained(out / "pretrain" / "model")
    cosine = _held_out_cosines(config, model, heldout_set)
    verdicts = [
        claims.judge_accumulation(cosine, confusion),
        claims.judge_order(cosine, confusion),
        claims.judge_efficiency(confusion, gflops, teacher),
    ]
    majority = claims.majority_class_miou(next(iter(confusion.values())))
    benchmark = claims.judge_benchmark(
        teacher, majority_miou=majority, num_classification_classes=BENCHMARKS["fashion-cls"].num_classes
    )
    for verdict in (*verdicts, benchmark):
        print(f"[saccade demo] {verdict.line()}", flush=True)
    plots = claims.plot_claims(verdicts, teacher, gflops, out / "pictures")
    rise = (cosine["C2F"][:, :, -1] - cosine["C2F"][:, :, 0]).mean(0)  # [N] per held-out crop
    most, least = int(rise.argmax()), int(rise.argmin())
    canvas_picture = draw_canvas_pca(
        model,
        collate(heldout_set, [most, least]),
        out / "pictures" / "canvas_rise.png",
        num_glimpses=config.num_glimpses,
        glimpse_px=config.pretrain.episode.glimpse_px,
        canvas_grid=config.pretrain.episode.canvas_grid,
        num_scenes=2,
        row_labels=[f"largest rise {float(rise[most]):+.2f}", f"smallest rise {float(rise[least]):+.2f}"],
    )
    return {
        "claims": [verdict.to_dict() | {"plot": str(plots.get(verdict.claim, ""))} for verdict in verdicts],
        "benchmark_check": benchmark.to_dict(),
        "benchmarks": {name: BENCHMARKS[name].to_dict() for name in ("fashion-seg", "fashion-cls")},
        "majority_class_miou": majority,
        "canvas_rise_picture": str(canvas_picture),
    }


def _glimpse_paths(out: Path, heldout_set, episode: EpisodeConfig) -> dict[str, Path]:
    """One held-out scene's glimpse path under each deterministic-structure policy."""
    from saccade import load_pretrained
    from saccade.episode import rollout
    from saccade.policies import POLICIES, PolicyContext, resolve_policy
    from saccade.viz.trajectories import draw_glimpse_path

    model = load_pretrained(out / "pretrain" / "model")
    scenes = torch.stack([heldout_set[i][0] for i in range(2)])
    paths = {}
    for policy in ("C2F", "F2C", "R-IID"):
        context = PolicyContext(
            batch_size=2,
            num_glimpses=episode.num_glimpses,
            canvas_grid=episode.canvas_grid,
            generator=torch.Generator().manual_seed(0),
        )
        chosen = POLICIES[resolve_policy(policy)].build(context)
        steps = rollout(
            model,
            scenes,
            chosen,
            num_glimpses=episode.num_glimpses,
            glimpse_px=episode.glimpse_px,
            canvas_grid=episode.canvas_grid,
        )
        target = out / "pictures" / f"glimpse_path_{policy}.png"
        paths[policy] = draw_glimpse_path(scenes, [s.viewpoint for s in steps], target, title=policy)
    return paths


def _cost_figures(config: DemoConfig, out: Path, pretrain_summary: dict) -> dict[str, Any]:
    """Analytic FLOPs per glimpse and measured inference latency / training throughput."""
    from saccade import Viewpoint, load_pretrained
    from saccade.flops import glimpse_flops, parameter_count

    model = load_pretrained(out / "pretrain" / "model").canvit
    episode = config.pretrain.episode
    flops = glimpse_flops(model.config, glimpse_px=episode.glimpse_px, canvas_grid=episode.canvas_grid)
    glimpse = torch.randn(1, 3, episode.glimpse_px, episode.glimpse_px)
    viewpoint = Viewpoint.full_scene(1)
    latencies = []
    with torch.no_grad():
        for i in range(30):
            state = model.init_state(batch_size=1, canvas_grid=episode.canvas_grid)
            started = time.perf_counter()
            model(glimpse, state, viewpoint)
            if i >= 5:
                latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "model": config.pretrain.model,
        "parameters": parameter_count(model.config),
        "gflops_per_glimpse": flops.total / 1e9,
        "latency_ms_per_glimpse_batch1": 1e3 * latencies[len(latencies) // 2],
        "glimpses_per_second_per_core_pair": 1 / latencies[len(latencies) // 2],
        "training_glimpses_per_second": pretrain_summary.get("glimpses_per_second"),
        "pretrain_steps": pretrain_summary.get("steps"),
        "pretrain_seconds": pretrain_summary.get("train_seconds"),
    }


def _curve_means(curves: list[Curve]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{task: {metric: {policy: [mean per t]}}} at results.csv's precision, as results.json records them."""
    means: dict[str, dict[str, dict[str, list[float]]]] = {}
    for curve in curves:
        values = [round(value, CSV_DIGITS) for value in curve.mean.tolist()]
        means.setdefault(curve.task, {}).setdefault(curve.metric, {})[curve.policy] = values
    return means


def _teacher_rows(passive: list[PassivePoint]) -> list[dict[str, Any]]:
    """One row per passive teacher point at results.csv's precision, as results.json records them."""
    return [
        {
            "task": point.task,
            "metric": point.metric,
            "input_px": point.input_px,
            "value": round(point.value, CSV_DIGITS),
            "gflops": round(point.gflops, CSV_DIGITS),
        }
        for point in passive
    ]


def _segmentation_gflops(curves: list[Curve]) -> float:
    """CanViT's GFLOPs per glimpse with the segmentation probe."""
    return next(round(c.gflops_per_glimpse, CSV_DIGITS) for c in curves if c.task == "segmentation")


def _open_folder(config: DemoConfig) -> tuple[DemoConfig, Path, ThreadChoice, _StageClock]:
    """Choose the threads (config.json records the choice), check the folder's scenes and finished stages against
    `config`, then write its config.json; (config with its threads, folder, thread choice, stage clock)."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = use_threads(config.threads)  # pretraining batches are large work
    config = dataclasses.replace(config, threads=threads.num_threads)
    print(f"[saccade demo] {threads.num_threads} CPU thread(s): {threads.reason}")
    _check_folder(config, out)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return config, out, threads, _StageClock(out)


def _scenes_and_pretraining(config: DemoConfig, out: Path, clock: _StageClock) -> tuple[Any, dict]:
    """The first two stages: (held-out scenes, pretraining summary)."""
    train_set, heldout_set = clock.run("scenes and teacher features", lambda: _distillation_data(config))
    summary = clock.run("pretraining", lambda: _pretrain(config, out, train_set, heldout_set), reused=_pretrained(out))
    return heldout_set, summary


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage (skipping finished ones) and write report.html and results.json; returns the results."""
    from saccade.demo.report import screenshot, write_html_report

    started = time.perf_counter()
    config, out, threads, clock = _open_folder(config)
    heldout_set, summary = _scenes_and_pretraining(config, out, clock)
    evaluation, evaluated = clock.run("probes and evaluation", lambda: _evaluate(config, out), reused=_evaluated(out))
    pictures = clock.run("pictures", lambda: _glimpse_paths(out, heldout_set, config.pretrain.episode))
    curves, teacher = _curve_means(evaluated.curves), _teacher_rows(evaluated.passive)
    gflops = _segmentation_gflops(evaluated.curves)
    claims = clock.run("claims", lambda: _claims(config, out, evaluation, heldout_set, teacher, gflops))
    costs = clock.run("FLOPs and throughput", lambda: _cost_figures(config, out, summary))
    results = {
        "budget_cuts": _budget_cuts(config, summary),
        "start": _start_record(config),
        **claims,
        "config": config.to_dict(),
        "curves": curves,
        "teacher": teacher,
        "pretraining": {k: v for k, v in summary.items() if k not in ("validation", "provenance")},
        "validation_cosine": summary.get("validation", {}),
        "costs": costs,
        "stage_seconds": clock.seconds,
        "reused_stages": clock.reused,
        "provenance": provenance(
            seeds={"seed": config.seed, "data_seed": config.data_seed}, device="cpu", threads=threads.num_threads
        ),
    }
    results["total_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    html = write_html_report(out, results, pictures=pictures, evaluation=evaluation)
    shot = screenshot(html, out / "report_screenshot.png")
    print(f"[saccade demo] report: {html}" + (f" (screenshot {shot})" if shot else ""))
    print(f"[saccade demo] total time {results['total_seconds'] / 60:.1f} min")
    _check_finite(results)
    return results


START_FILE = "start.safetensors"
"""What `make_start_file` writes into its folder."""


def make_start_file(config: DemoConfig) -> Path:
    """Run `config`'s scenes and pretraining stages only (DEMO_PRESETS["start"]: the backbone frozen), then write
    its model without the backbone as `output_dir`/start.safetensors, recording how it was made; returns the path.
    `make demo-start` copies it to where the full job starts from (BUNDLED_START_FILE)."""
    from saccade.loading import load_pretrained
    from saccade.pretrain.start_file import save_start_file

    config, out, threads, clock = _open_folder(config)
    _, summary = _scenes_and_pretraining(config, out, clock)
    cuts = _budget_cuts(config, summary)
    if cuts:
        cut = cuts[0]
        raise ValueError(
            f"{out / 'pretrain'}: the {cut['minutes']:g}-minute wall-clock guard cut pretraining after "
            f"{cut['steps_done']} of {cut['steps_planned']} steps, so no start file was written: rerun with a larger "
            "--pretrain-minutes and another --output-dir"
        )
    info = {
        "recipe": "saccade demo --make-start (DEMO_PRESETS['start'], make demo-start)",
        "steps": summary["steps"],
        "pretraining_seconds": clock.seconds["pretraining"],
        "threads": threads.num_threads,
        "seed": config.seed,
        "data_seed": config.data_seed,
        "validation_cosine": summary.get("validation", {}),
    }
    model = load_pretrained(out / "pretrain" / "model")
    path = save_start_file(model, out / START_FILE, backbone_init=config.pretrain.backbone_init, info=info)
    print(f"[saccade demo] start file: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def _check_finite(results: dict) -> None:
    for task in results["curves"].values():
        for metric in task.values():
            for policy, values in metric.items():
                if not all(math.isfinite(v) for v in values):
                    raise RuntimeError(f"non-finite metric for policy {policy}: {values}")
