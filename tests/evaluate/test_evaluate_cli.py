"""`saccade evaluate` end to end on a tiny setting: probes trained, every policy evaluated, teacher, files written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import saccade
from saccade.cli import main
from saccade.evaluate.benchmark import FASHION_MNIST_DIR
from saccade.evaluate.metrics import mean_iou_of
from saccade.evaluate.pipeline import SCENE_CONFUSIONS_FILE
from saccade.probes import load_probe
from tests.evaluate.fakes import default_backgrounds_installed, write_background_folder, write_fake_fashion


@pytest.fixture()
def sources(tmp_path):
    return {
        "fashion_root": str(write_fake_fashion(tmp_path / "fashion")),
        "backgrounds": str(write_background_folder(tmp_path / "photos")),
        "cache": str(tmp_path / "cache"),
    }


def test_evaluate_end_to_end(tmp_path, sources, capsys):
    config = tmp_path / "evaluate.json"
    settings = {**sources, "num_train": 8, "num_test": 8, "probe_steps": 3, "probe_warmup_steps": 1}
    config.write_text(json.dumps({**settings, "num_glimpses": 99, "policies": ["C2F"]}))
    out = tmp_path / "out"
    argv = ["evaluate", "--config", str(config), "--model", "canvit-tiny", "--benchmark", "fashion"]
    argv += ["--output-dir", str(out), "--episode.num-glimpses", "3", "--episode.canvas-grid", "4"]
    argv += ["--episode.glimpse-px", "32", "--num-runs", "2", "--batch-size", "8", "--probe.batch-size", "8"]
    argv += ["--policies", "C2F", "F2C", "R-IID", "F-IID", "RFS", "EG-C2F", "--train-glimpses", "2", "--quiet"]
    argv += ["--teacher", "tests.evaluate.fakes:tiny_teacher", "--teacher-px", "16", "32"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "## segmentation: mIoU (%) per glimpse" in printed and "## classification: top-1 (%) per glimpse" in printed
    assert "FLOP-matched" in printed
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    canvit = [r for r in rows if r["model"] == "canvit"]
    # 2 tasks x 6 policies x 2 metrics x T = 3 timesteps (flags override the config file's T = 99, a flat key of
    # the configs written before the episode was nested)
    assert len(canvit) == 2 * 6 * 2 * 3
    assert {r["num_runs"] for r in canvit if r["policy"] == "R-IID"} == {"2"}
    assert len([r for r in rows if r["model"] == "teacher"]) == 2 * 2 * 2
    for name in ("segmentation_mIoU.png", "classification_top1.png", "results.md", "config.json"):
        assert (out / name).is_file()
    assert json.loads((out / "provenance.json").read_text())["seeds"] == {"seed": 0, "model_seed": 0, "probe_seed": 0}
    assert load_probe(out / "probes" / "canvit_segmentation.safetensors").config.num_classes == 11
    assert load_probe(out / "probes" / "teacher_32px_classification.safetensors").config.in_dim == 16
    scenes = load_file(str(out / SCENE_CONFUSIONS_FILE))  # segmentation only: {policy: [runs, scenes, T, C, C]}
    assert {name: tuple(counts.shape) for name, counts in scenes.items()} == {
        policy: (runs, 8, 3, 11, 11) for policy, runs in (("C2F", 2), ("F2C", 2), ("R-IID", 2), ("F-IID", 2),
                                                          ("RFS", 1), ("EG-C2F", 1))
    }  # fmt: skip
    c2f_t0 = next(
        r for r in canvit if (r["task"], r["metric"], r["policy"], r["t"]) == ("segmentation", "mIoU", "C2F", "0")
    )
    assert float(mean_iou_of(scenes["C2F"][:, :, 0].sum(1)).mean()) == pytest.approx(float(c2f_t0["mean"]), abs=1e-6)
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["episode"]["num_glimpses"] == 3 and recorded["probe"]["steps"] == 3
    assert recorded["threads"] == torch.get_num_threads() >= 1  # the run's automatic choice, recorded


def test_evaluate_reuses_saved_probes(tmp_path, sources):
    out = tmp_path / "first"
    common = ["--model", "canvit-tiny", "--benchmark", "fashion-seg", "--num-train", "8", "--num-test", "4"]
    common += ["--episode.num-glimpses", "2", "--episode.canvas-grid", "4", "--episode.glimpse-px", "32"]
    common += ["--batch-size", "4", "--probe.batch-size", "4", "--policies", "C2F", "--quiet"]
    common += ["--train-glimpses", "2"]
    common += [f"--{key.replace('_', '-')}={value}" for key, value in sources.items()]
    assert main(["evaluate", *common, "--probe.steps", "2", "--output-dir", str(out)]) == 0
    probe = out / "probes" / "canvit_segmentation.safetensors"
    assert main(["evaluate", *common, "--seg-probe", str(probe), "--output-dir", str(tmp_path / "second")]) == 0
    assert not (tmp_path / "second" / "probes" / "canvit_segmentation.safetensors").exists()
    first = (out / "results.csv").read_text()
    assert first == (tmp_path / "second" / "results.csv").read_text()


def test_evaluate_results_do_not_depend_on_the_global_random_state(tmp_path, sources):
    """Probe initialisation and dropout draw from the probe seed: what earlier work left in torch's RNG is ignored.

    A saved model, as in the demo: loading a preset would reseed the global RNG and hide the dependence."""
    saccade.save_pretrained(saccade.CanViT(saccade.preset("canvit-tiny")), tmp_path / "model")
    common = ["--model", str(tmp_path / "model"), "--benchmark", "fashion-seg", "--num-train", "8", "--num-test", "4"]
    common += ["--episode.num-glimpses", "2", "--episode.canvas-grid", "4", "--episode.glimpse-px", "32"]
    common += ["--batch-size", "4", "--probe.batch-size", "4", "--policies", "C2F", "--quiet", "--probe.steps", "3"]
    common += ["--train-glimpses", "2", "--teacher", "tests.evaluate.fakes:tiny_teacher", "--teacher-px", "16"]
    common += [f"--{key.replace('_', '-')}={value}" for key, value in sources.items()]
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        out = tmp_path / f"global-{global_seed}"
        assert main(["evaluate", *common, "--output-dir", str(out)]) == 0
        probes = {path.name: load_file(str(path)) for path in sorted((out / "probes").glob("*.safetensors"))}
        results.append(((out / "results.csv").read_text(), probes))
    (first_csv, first_probes), (second_csv, second_probes) = results
    assert first_csv == second_csv
    assert set(first_probes) == {"canvit_segmentation.safetensors", "teacher_16px_segmentation.safetensors"}
    for name, weights in first_probes.items():
        for key, value in weights.items():
            assert torch.equal(value, second_probes[name][key]), (name, key)


def test_evaluate_bad_settings(capsys):
    assert main(["evaluate", "--quiet"]) == 2
    assert "--model" in capsys.readouterr().err  # required
    assert main(["evaluate", "--model", "canvit-tiny", "--benchmark", "ade20k"]) == 2
    assert "needs data (the dataset folder)" in capsys.readouterr().err
    assert main(["evaluate", "--model", "canvit-tiny", "--policies", "zigzag"]) == 2
    assert "unknown policy 'zigzag'" in capsys.readouterr().err


@pytest.mark.skipif(
    not (Path(FASHION_MNIST_DIR).is_dir() and default_backgrounds_installed()),
    reason="needs the Debian packages dataset-fashion-mnist and lomiri-wallpapers-16.04",
)
def test_evaluate_on_the_real_bundled_benchmark(tmp_path):
    """The real offline sources (Debian Fashion-MNIST and wallpapers), a tiny random CanViT, small sizes."""
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "canvit-tiny", "--benchmark", "fashion", "--num-train", "16", "--num-test", "8"]
    argv += ["--probe.steps", "3", "--probe.batch-size", "8", "--episode", "cpu", "--episode.num-glimpses", "2"]
    argv += ["--batch-size", "8", "--num-runs", "2", "--train-glimpses", "2", "--cache", str(tmp_path / "cache")]
    argv += ["--output-dir", str(out), "--quiet"]
    assert main(argv) == 0
    text = (out / "results.md").read_text()
    assert "| EG-C2F | 1 |" in text and "| R-IID | 2 |" in text and "classification: top-1" in text
