"""The demo's report page is self-contained, says loudly when a wall-clock guard cut a stage, and its settings are
validated."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from saccade.demo import DEMO_PRESETS, DemoConfig
from saccade.demo.report import screenshot, write_html_report
from saccade.evaluate.benchmark import BENCHMARKS


def fake_results() -> dict:
    curves = {"segmentation": {"mIoU": {"C2F": [0.1, 0.2], "R-IID": [0.05, 0.15]}}}
    teacher = [{"task": "segmentation", "metric": "mIoU", "input_px": 28, "value": 0.12, "gflops": 0.2}]
    return {
        "budget_cuts": [],
        "config": DemoConfig().to_dict(),
        "curves": curves,
        "teacher": teacher,
        "validation_cosine": {"coarse_to_fine": {"patch": [0.1, 0.2], "cls": [0.3, 0.4]}},
        "costs": {"gflops_per_glimpse": 0.065, "parameters": 3221504},
        "stage_seconds": {"pretraining": 12.0},
        "total_seconds": 60.0,
        "benchmarks": {"fashion-seg": {**BENCHMARKS["fashion-seg"].to_dict(), "object_px": [40, 50]}},
    }


def test_report_inlines_every_picture(tmp_path):
    picture = tmp_path / "pictures" / "glimpse_path_C2F.png"
    picture.parent.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(picture)
    (tmp_path / "evaluation").mkdir()
    Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8)).save(tmp_path / "evaluation" / "segmentation_mIoU.png")
    page = write_html_report(tmp_path, fake_results(), pictures={"C2F": picture}, evaluation=tmp_path / "evaluation")
    text = page.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2
    assert not re.search(r'(src|href)="(https?:)?//', text), "the report must not load external assets"
    assert "C2F" in text and "R-IID" in text and "teacher @ 28 px" in text
    assert "missing picture: canvas_pca.png" in text
    assert "segmentation objects of 40-50 px" in text  # what this run's probes were judged on, not today's default
    older = {key: value for key, value in fake_results().items() if key != "benchmarks"}
    text = write_html_report(tmp_path, older, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "probed on the bundled Fashion-MNIST benchmark:" in text  # no sizes it did not record


PRETRAINING_CUT = {"stage": "pretraining", "steps_done": 580, "steps_planned": 1300, "minutes": 60.0}


def test_a_budget_cut_shows_a_red_banner_at_the_top(tmp_path):
    (tmp_path / "evaluation").mkdir()
    uncut = write_html_report(tmp_path, fake_results(), pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "budget-cut" not in uncut.split("</style>")[1] and "Stopped early" not in uncut
    results = {**fake_results(), "budget_cuts": [PRETRAINING_CUT]}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    body = text.split("<body>")[1]
    assert body.lstrip().startswith('<div class="budget-cut">'), "the banner opens the page"
    assert "pretraining: stopped by its 60-minute wall-clock guard after 580 of 1,300 steps" in body
    assert re.search(r"\.budget-cut \{[^}]*color: #b00", text), "the banner is red"


def test_results_json_records_which_stage_a_guard_cut(tmp_path, monkeypatch):
    """run_demo with every stage faked: a time-limited pretraining summary becomes a budget cut, else none."""
    from saccade.demo import report, run
    from saccade.evaluate.curves import over_runs
    from saccade.evaluate.report import Results
    from saccade.threads import ThreadChoice

    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    curve = over_runs(torch.tensor([[0.1]]), policy="C2F", metric="mIoU", task="segmentation", gflops_per_glimpse=0.06)
    evaluated = Results(curves=[curve], passive=[], differences=[])
    monkeypatch.setattr(run, "use_threads", lambda requested: ThreadChoice(1, "test"))
    monkeypatch.setattr(run, "_distillation_data", lambda config: (None, None))
    monkeypatch.setattr(run, "_evaluate", lambda config, out: (evaluation, evaluated))
    monkeypatch.setattr(run, "_glimpse_paths", lambda out, heldout_set, num_glimpses: {})
    monkeypatch.setattr(run, "_claims", lambda config, out, evaluation, heldout_set, teacher, gflops: {})
    monkeypatch.setattr(run, "_cost_figures", lambda config, out, summary: {"gflops_per_glimpse": 0.06})
    monkeypatch.setattr(report, "screenshot", lambda page, target: None)
    for status, cuts in (("time_limit", [PRETRAINING_CUT]), ("complete", [])):
        steps = 580 if status == "time_limit" else 1300
        summary = {"status": status, "steps": steps, "total_steps": 1300, "train_seconds": 3600.0}
        monkeypatch.setattr(run, "_pretrain", lambda config, out, train_set, heldout_set, s=summary: s)
        out = tmp_path / status
        run.run_demo(DemoConfig(output_dir=str(out), pretrain_minutes=60.0))
        results = json.loads((out / "results.json").read_text())
        assert results["budget_cuts"] == cuts
        assert results["provenance"]["seeds"] == {"seed": 0, "data_seed": 0} and results["provenance"]["threads"] == 1
        assert ("Stopped early" in (out / "report.html").read_text()) == bool(cuts)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    (tmp_path / "evaluation").mkdir()
    page = write_html_report(tmp_path, fake_results(), pictures={}, evaluation=tmp_path / "evaluation")
    shot = screenshot(page, tmp_path / "shot.png", height=800)
    assert shot is not None and Image.open(shot).size == (1200, 800)


def test_demo_settings_are_validated():
    quick, full = DEMO_PRESETS["quick"], DEMO_PRESETS["full"]
    assert quick.pretrain_minutes < full.pretrain_minutes and quick.pretrain.steps < full.pretrain.steps
    with pytest.raises(ValueError, match="num_train_crops"):
        DemoConfig(num_train_crops=8)
    with pytest.raises(ValueError, match="backbone_init must be one of"):
        DemoConfig.from_dict({"pretrain": {"backbone_init": "dinov3"}})
    with pytest.raises(ValueError, match="'fine_to_coarse' is not a pretraining rollout"):
        DemoConfig.from_dict({"pretrain": {"rollouts": ["fine_to_coarse"]}})
    assert DemoConfig.from_dict(full.to_dict()) == full
    with pytest.raises(ValueError, match=r"pretrain: unknown PretrainConfig settings \['stepz'\]"):
        DemoConfig.from_dict({"pretrain": {"stepz": 3}})
    with pytest.raises(ValueError, match="threads must be a non-negative int"):
        DemoConfig(threads=-1)
    with pytest.raises(ValueError, match=r"DemoConfig\.data_seed must be a non-negative int, got -1"):
        DemoConfig(data_seed=-1)
    with pytest.raises(ValueError, match=r"DemoConfig\.data must be one of \('scenes', 'photos'\), got 'video'"):
        DemoConfig(data="video")
    with pytest.raises(ValueError, match=r"scene_photo_sources: unknown sources \['flickr'\]"):
        DemoConfig(scene_photo_sources=("flickr",))
    assert DemoConfig.from_dict({"scene_photo_sources": []}).scene_photo_sources == ()  # the benchmark's photos only
    with pytest.raises(ValueError, match="unknown policy 'spiral'"):
        DemoConfig.from_dict({"evaluate": {"probe_policy": "spiral"}})
    assert full.evaluate_run().probe_policy == "C2F"
    assert DemoConfig.from_dict({"evaluate": {"num_runs": 5}}).evaluate.num_runs == 5  # a partial table updates
    for section, name, instead in [
        ("pretrain", "seed", "--seed"),
        ("evaluate", "output_dir", "--output-dir"),
        ("evaluate", "model", "the demo evaluates the model it pretrains"),
        ("evaluate", "episode", "--pretrain.episode"),
    ]:  # what the demo fills in itself is refused, not ignored
        value = "cpu" if name == "episode" else 3 if name == "seed" else "x"
        with pytest.raises(ValueError, match=rf"DemoConfig\.{section}\.{name} is set by the demo itself \({instead}"):
            DemoConfig.from_dict({section: {name: value}})


def test_pretraining_begins_from_scratch_the_bundled_start_or_a_saved_model(tmp_path):
    from saccade.demo.config import BUNDLED_START_FILE
    from saccade.demo.run import _start_record

    scratch = DemoConfig(start="scratch").pretrain_run()
    assert scratch.init_from is None
    assert (scratch.backbone_init, scratch.canvas_start) == ("dinov2-s14-imgfocus", "local-position")
    assert _start_record(DemoConfig(start="scratch")) == {
        "start": "scratch", "backbone_init": "dinov2-s14-imgfocus", "canvas_start": "local-position"
    }  # fmt: skip
    bundled = DemoConfig().pretrain_run()  # the full and quick jobs continue from the shipped start file
    assert DEMO_PRESETS["quick"].pretrain_run().init_from == bundled.init_from == str(BUNDLED_START_FILE)
    assert (bundled.backbone_init, bundled.canvas_start) == ("dinov2-s14-imgfocus", "default")  # the file's selection
    record = _start_record(DemoConfig())
    assert record["start"] == "bundled" and record["file"] == str(BUNDLED_START_FILE)
    assert record["made"]["backbone_init"] == "dinov2-s14-imgfocus" and record["made"]["steps"] == 1000
    recipe = DEMO_PRESETS["start"]  # what made it: from scratch, the backbone frozen
    assert recipe.start == "scratch" and recipe.pretrain.freeze_backbone and recipe.pretrain.steps == 1000
    continuation = {"steps": 320, "batch_size": 16, "warmup_steps": 80, "chunk_size": 10, "continue_prob": 0.0}
    assert dataclasses.replace(recipe.pretrain, freeze_backbone=False, backbone_lr_scale=0.1, **continuation) == (
        DEMO_PRESETS["full"].pretrain
    )  # otherwise the full job's pretraining, on whole episodes
    continued = DemoConfig(start=str(tmp_path)).pretrain_run()
    assert continued.init_from == str(tmp_path)
    assert (continued.backbone_init, continued.canvas_start) == ("random", "default")  # the model sets every weight
    assert _start_record(DemoConfig(start=str(tmp_path))) == {"start": str(tmp_path)}
    with pytest.raises(ValueError, match=r"DemoConfig\.pretrain\.init_from is set by the demo itself \(--start"):
        DemoConfig.from_dict({"pretrain": {"init_from": "x", "backbone_init": "random", "canvas_start": "default"}})
    with pytest.raises(ValueError, match=r"DemoConfig\.start must be 'scratch' or name"):
        DemoConfig(start="")


def test_the_report_says_where_pretraining_started_and_its_training_seed(tmp_path):
    (tmp_path / "evaluation").mkdir()
    results = {**fake_results(), "pretraining": {"steps": 1300}, "start": {"start": "runs/long/model"}}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "Pretraining continued for 1300 steps from <code>runs/long/model</code> (training seed 0)." in text
    results |= {"start": {"start": "scratch"}, "config": DemoConfig(seed=2).to_dict()}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "Pretrained from scratch for 1300 steps (training seed 2)." in text
    made = {"steps": 1000, "seed": 0, "pretraining_seconds": 1620.0, "threads": 2}
    results |= {"start": {"start": "bundled", "file": "start.safetensors", "made": made}}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert (
        "Pretraining continued for 1300 steps (training seed 2) from the bundled start (1,000 steps with the backbone "
        "frozen at the teacher's weights, seed 0, 27 min on 2 CPU thread(s): <code>make demo-start</code>)."
    ) in text


def test_demo_runs_its_stages_with_its_own_folders_seed_and_episode():
    config = dataclasses.replace(DEMO_PRESETS["quick"], output_dir="out", seed=3, threads=2)
    pretrain, evaluate = config.pretrain_run(), config.evaluate_run()
    assert pretrain.output_dir == "out/pretrain" and evaluate.output_dir == "out/evaluation"
    assert evaluate.model == "out/pretrain/model" and evaluate.episode == pretrain.episode
    assert (pretrain.seed, evaluate.seed, evaluate.probe.seed) == (3, 3, 3)
    assert (pretrain.threads, evaluate.threads) == (2, 2)
    assert pretrain.standardizer_samples == config.num_train_crops == 512  # fewer crops than the 1,024 asked
    assert evaluate.train_glimpses == config.num_glimpses == 5


@pytest.mark.parametrize(("status", "trains"), [("interrupted", True), ("complete", False), ("time_limit", False)])
def test_an_interrupted_pretraining_stage_resumes_instead_of_being_skipped(tmp_path, monkeypatch, status, trains):
    import saccade.pretrain.trainer as trainer
    from saccade.demo import run

    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "summary.json").write_text(json.dumps({"status": status, "steps": 3}))
    calls = []
    result = SimpleNamespace(summary={"status": "complete", "steps": 5})
    monkeypatch.setattr(trainer, "pretrain", lambda *args, **kwargs: calls.append(args) or result)
    summary = run._pretrain(DemoConfig(), tmp_path, train_set=list(range(8)), heldout_set=None)
    assert bool(calls) == trains
    assert summary["steps"] == (5 if trains else 3)
    assert (tmp_path / "pretrain" / run.SCENES_RECORD).is_file() == trains  # what a resume or reuse is checked on


def test_a_pretraining_on_other_scenes_is_refused_by_name(tmp_path):
    """PretrainConfig does not hold the scenes' settings: a demo folder records them, and a rerun of other scenes
    (another --data-seed, other photos) must not resume or reuse its pretraining."""
    from saccade.demo import run

    config = DemoConfig(output_dir=str(tmp_path))
    run._check_scenes(config, tmp_path)  # nothing recorded: a new folder, or one from before the record
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / run.SCENES_RECORD).write_text(json.dumps(run._scene_settings(config)))
    run._check_scenes(dataclasses.replace(config, seed=4), tmp_path)  # the training seed builds no scenes
    with pytest.raises(ValueError, match=r"pretraining on other scenes \(data_seed 0 there, 1 now\)"):
        run._check_scenes(dataclasses.replace(config, data_seed=1), tmp_path)
    with pytest.raises(ValueError, match=r"scene_photo_sources \['scikit-image', .*\] there, \[\] now"):
        run._check_scenes(dataclasses.replace(config, scene_photo_sources=()), tmp_path)


def test_the_report_opens_with_the_claims_and_their_verdicts(tmp_path):
    plot = tmp_path / "pictures" / "claim_1.png"
    plot.parent.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(plot)
    claims = [
        {"claim": "Accumulation: rises", "holds": False, "checks": [{"text": "rise 0.01 >= 0.1", "holds": False}],
         "plot": str(plot)},
        {"claim": "Order matters: C2F first", "holds": True, "checks": [{"text": "gap 0.2", "holds": True}],
         "plot": ""},
    ]  # fmt: skip
    benchmark = {
        "claim": "Benchmark: can show",
        "holds": True,
        "checks": [{"text": "teacher 23.5 >= 14.8", "holds": True}],
    }
    results = {**fake_results(), "claims": claims, "benchmark_check": benchmark, "majority_class_miou": 0.074}
    (tmp_path / "evaluation").mkdir()
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    body = text.split("<body>")[1]
    assert body.index("three claims") < body.index("Metrics per glimpse"), "the claims come first"
    assert '<span class="not-shown">Accumulation: rises: NOT shown.</span>' in body
    assert '<span class="shown">Order matters: C2F first: shown.</span>' in body
    assert "rise 0.01 &gt;= 0.1" in body and "majority class everywhere" in body and "7.4" in body
    assert body.count('src="data:image/png;base64,') == 1


def test_a_cached_evaluation_gives_the_demo_the_same_numbers_as_one_in_memory(tmp_path):
    """The demo records the evaluation's curves as results.csv holds them, whether it ran now or was read back."""
    from saccade.demo import run
    from saccade.evaluate.curves import over_runs
    from saccade.evaluate.report import read_curves, write_report
    from saccade.evaluate.runner import PassivePoint

    runs = torch.tensor([[0.1234567891, 0.2], [0.1334567891, 0.25]], dtype=torch.float64)  # [R, T]
    curves = [
        over_runs(runs, policy=policy, metric="mIoU", task="segmentation", gflops_per_glimpse=0.0612345678)
        for policy in ("C2F", "R-IID")
    ]
    passive = [PassivePoint("segmentation", "mIoU", 56, 0.123456789, 0.31415926)]
    cached = read_curves(write_report(tmp_path, curves, passive=passive, plot=False)["csv"])
    assert run._curve_means(curves) == run._curve_means(cached.curves)
    assert run._curve_means(curves)["segmentation"]["mIoU"]["C2F"] == [0.128457, 0.225]
    assert run._teacher_rows(passive) == run._teacher_rows(cached.passive)
    assert run._segmentation_gflops(curves) == run._segmentation_gflops(cached.curves) == 0.061235


def test_a_rerun_keeps_the_time_each_reused_stage_took_when_it_ran(tmp_path, monkeypatch):
    """A second run of a finished folder reuses pretraining and evaluation: results.json and the report give the
    times of the run that did them and name them as reused, instead of the rerun's near-zero times."""
    from saccade.demo import run

    clock = run._StageClock(tmp_path)
    ticks = iter([0.0, 700.0, 700.0, 900.0])
    monkeypatch.setattr(run.time, "perf_counter", lambda: next(ticks))
    clock.run("pretraining", lambda: None)
    clock.run("probes and evaluation", lambda: None)
    assert clock.seconds == {"pretraining": 700.0, "probes and evaluation": 200.0} and clock.reused == []

    rerun = run._StageClock(tmp_path)
    ticks = iter([0.0, 1.0, 3.0])  # a reused stage reads the clock once
    rerun.run("pretraining", lambda: None, reused=True)
    rerun.run("claims", lambda: None)
    assert rerun.seconds == {"pretraining": 700.0, "claims": 2.0} and rerun.reused == ["pretraining"]
    assert run._StageClock(tmp_path).earlier == {"pretraining": 700.0, "probes and evaluation": 200.0, "claims": 2.0}

    (tmp_path / "evaluation").mkdir()
    results = {**fake_results(), "stage_seconds": rerun.seconds, "reused_stages": rerun.reused, "total_seconds": 30}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "This run took 0.5 min; it reused pretraining from an earlier run of this folder" in text
    assert "<td>700 (reused)</td>" in text


def test_a_folder_from_before_stage_times_were_kept_says_its_reused_time_is_not_recorded(tmp_path):
    from saccade.demo import run

    clock = run._StageClock(tmp_path)
    clock.run("pretraining", lambda: None, reused=True)
    assert clock.seconds == {"pretraining": None} and clock.reused == ["pretraining"]
    (tmp_path / "evaluation").mkdir()
    results = {**fake_results(), "stage_seconds": clock.seconds, "reused_stages": clock.reused}
    text = write_html_report(tmp_path, results, pictures={}, evaluation=tmp_path / "evaluation").read_text()
    assert "<td>not recorded (reused)</td>" in text


def test_demo_scenes_lie_on_the_configured_photo_sources_and_data_seed(monkeypatch):
    """`scene_photo_sources` and `data_seed` (not the training seed) reach the scene build, and the report says
    which photos and which build pretraining saw."""
    from saccade.data import scene_sets
    from saccade.demo import run
    from saccade.demo.report import _data_words

    calls = []
    monkeypatch.setattr(scene_sets, "benchmark_scene_sets", lambda *args, **kwargs: calls.append(kwargs))
    run._distillation_data(DemoConfig(scene_photo_sources=("scikit-image",), seed=5, data_seed=3))
    assert calls == [
        {"canvas_grid": 8, "seed": 3, "train_sources": ("scikit-image",), "num_train": 10_000, "num_heldout": 64}
    ]
    words = _data_words({"config": DemoConfig(scene_photo_sources=("scikit-image",), seed=5, data_seed=3).to_dict()})
    assert words.endswith(
        "(a build of data seed 3, training objects on the benchmark's training photos and those of scikit-image)"
    )
    older = {k: v for k, v in DemoConfig(seed=2).to_dict().items() if k != "data_seed"}  # before data_seed
    assert "(a build of data seed 2," in _data_words({"config": older})
    assert _data_words({"config": DemoConfig(data="photos").to_dict()}) == "crops of the bundled photos"


def test_a_finished_stage_of_other_settings_is_refused_by_name(tmp_path):
    """Rerunning a folder with other pretraining or probe settings must not reuse the old stage as this one's."""
    from saccade.demo import run

    config = DemoConfig(output_dir=str(tmp_path))
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "summary.json").write_text(json.dumps({"status": "complete", "steps": 3}))
    recorded = config.pretrain_run().to_dict() | {"steps": 50, "threads": 7}  # threads do not change the model
    (tmp_path / "pretrain" / "config.json").write_text(json.dumps(recorded))
    steps = config.pretrain.steps
    (tmp_path / "config.json").write_text("the earlier run's settings")
    with pytest.raises(ValueError, match=rf"finished pretraining of other settings \(steps 50 there, {steps} now\)"):
        run.run_demo(config)
    assert (tmp_path / "config.json").read_text() == "the earlier run's settings"  # what the error tells to rerun
    (tmp_path / "pretrain" / "config.json").write_text(json.dumps(recorded | {"steps": steps}))
    run._check_folder(config, tmp_path)
    assert run._pretrain(config, tmp_path, train_set=None, heldout_set=None)["steps"] == 3  # same settings: reused

    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "results.csv").write_text("")
    evaluated = config.evaluate_run().to_dict()
    evaluated["probe"] = evaluated["probe"] | {"batch_size": 8}
    (tmp_path / "evaluation" / "config.json").write_text(json.dumps(evaluated | {"output_dir": "/moved/evaluation"}))
    batch = config.evaluate.probe.batch_size
    with pytest.raises(ValueError, match=rf"evaluation of other settings \(probe.batch_size 8 there, {batch} now\)"):
        run._check_folder(config, tmp_path)
    moved = config.evaluate_run().to_dict() | {"output_dir": "/moved/evaluation"}
    (tmp_path / "evaluation" / "config.json").write_text(json.dumps(moved))
    run._check_folder(config, tmp_path)  # a moved folder of the same settings is reused


def test_make_start_writes_the_pretrained_model_without_its_backbone(tmp_path, monkeypatch, small_teacher):
    """`saccade demo --make-start` with its stages faked: the pretrained model (backbone frozen at the selection)
    becomes a start file that records how it was made; a pretraining cut by the guard writes none."""
    from saccade.demo import run
    from saccade.model.checkpoint import save_pretrained
    from saccade.pretrain.start_file import start_file_info
    from saccade.pretrain.state import build_model
    from saccade.threads import ThreadChoice

    recipe = DEMO_PRESETS["start"]
    tiny = dataclasses.replace(recipe.pretrain, model="canvit-tiny", patch_readout_blocks=0)
    monkeypatch.setattr(run, "use_threads", lambda requested: ThreadChoice(1, "test"))
    monkeypatch.setattr(run, "_distillation_data", lambda config: (None, None))
    for status in ("complete", "time_limit"):
        out = tmp_path / status
        config = dataclasses.replace(recipe, output_dir=str(out), pretrain=tiny, seed=4)
        model = build_model(config.pretrain_run(), teacher_dim=16)
        save_pretrained(model, out / "pretrain" / "model")
        summary = {"status": status, "steps": 1000, "total_steps": 1000, "validation": {"coarse_to_fine": [0.3]}}
        monkeypatch.setattr(run, "_pretrain", lambda config, out, train_set, heldout_set, s=summary: s)
        if status == "time_limit":
            with pytest.raises(ValueError, match="120-minute wall-clock guard cut pretraining after 1000 of 1000"):
                run.make_start_file(config)
            assert not (out / run.START_FILE).exists()
            continue
        path = run.make_start_file(config)
        made = start_file_info(path)
        assert (made["steps"], made["seed"], made["data_seed"], made["threads"]) == (1000, 4, 0, 1)
        assert made["validation_cosine"] == {"coarse_to_fine": [0.3]} and made["backbone"] == "vit-tiny"
        continued = dataclasses.replace(config, start=str(path)).pretrain_run()
        restored = build_model(continued, teacher_dim=16).state_dict()  # the start file and the selection
        for name, value in model.state_dict().items():
            assert torch.equal(restored[name], value), name
