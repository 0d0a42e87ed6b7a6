"""Pretraining: bad configs are refused early, training learns, resume is exact, data parallelism is exact."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.pretrain.run_synthetic import config as synthetic_config

import saccade.pretrain.step as step_module
from saccade import CanViTForPretraining, load_pretrained
from saccade.cli import main
from saccade.episode_config import EpisodeConfig
from saccade.policies.quadtree import quadtree_level
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import global_batch_indices, synthetic_dataset
from saccade.pretrain.schedule import learning_rate
from saccade.pretrain.state import build_model
from saccade.pretrain.step import draw_num_glimpses
from saccade.pretrain.trainer import check_data, pretrain

SCRIPT = Path(__file__).parent / "run_synthetic.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", -1e-4, "lr must be > 0"),
        ("chunk_size", 0, "chunk_size must be a positive int"),
        ("chunk_size", 200, "chunk_size must be at most 64, got 200"),
        ("lr", float("inf"), "lr must be > 0 and finite, got inf"),
        ("continue_prob", 1.0, r"continue_prob must be in \[0, 1\)"),
        ("continue_prob", -0.1, r"continue_prob must be in \[0, 1\)"),
        ("min_scale", 0.0, r"min_scale must be in \(0, 1\]"),
        ("drop_path", 1.0, r"drop_path must be in \[0, 1\)"),
        ("schedule", "step", "schedule must be"),
        ("rollouts", ("fine_to_coarse",), "rollouts: 'fine_to_coarse' is not a pretraining rollout"),
        ("backbone_init", "dinov3", "backbone_init must be one of"),
        ("backbone_lr_scale", 2.0, r"backbone_lr_scale must be in \[0, 1\]"),
    ],
)
def test_bad_values_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**{field: value})


def test_teacher_grid_must_match_canvas_grid():
    data = synthetic_dataset(16, scene_px=64, grid=4, dim=8)
    with pytest.raises(ValueError, match="teacher patch grid 4 x 4 cannot match canvas_grid=8"):
        check_data(PretrainConfig(episode=EpisodeConfig(canvas_grid=8), batch_size=4), data, None)


def test_cli_refuses_before_work(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "no-shards"), "--output-dir", str(tmp_path / "run")]) == 2
    assert "no such shard folder" in capsys.readouterr().err
    assert main(["pretrain", "--data", "synthetic", "--lr", "-1"]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_schedule_and_rollout_lengths():
    config = PretrainConfig(lr=1e-3, start_lr=1e-7, warmup_steps=10, steps=20, schedule="cosine")
    assert learning_rate(0, config) == pytest.approx(1e-7)
    assert learning_rate(10, config) == pytest.approx(1e-3)
    assert learning_rate(20, config) == pytest.approx(0.0, abs=1e-12)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([draw_num_glimpses(PretrainConfig(), generator) for _ in range(4000)], dtype=torch.float)
    assert set(lengths.unique().tolist()) <= {2.0 * k for k in range(1, 33)}
    assert lengths.mean().item() == pytest.approx(4.0, abs=0.15)  # E[T] = K / (1 - p)


def test_coarse_to_fine_rollouts_visit_the_quadtree_level_by_level(tmp_path, monkeypatch):
    seen = []
    sample = step_module.sample_glimpse

    def recording_sample(scenes, viewpoint, glimpse_px):
        seen.append(viewpoint)
        return sample(scenes, viewpoint, glimpse_px)

    monkeypatch.setattr(step_module, "sample_glimpse", recording_sample)
    config = synthetic_config(str(tmp_path), 1)
    config = dataclasses.replace(config, rollouts=("coarse_to_fine",), continue_prob=0.99)
    pretrain(config, synthetic_dataset(16, scene_px=64, grid=4, dim=16, seed=0), progress=False)
    assert len(seen) > 21  # into the fourth level (scale 1/8), which the evaluation's 21-step C2F never reaches
    start = 0
    for level in range(4):
        tiles = quadtree_level(level)  # [4^l, 3] (y, x, scale)
        for item in range(config.batch_size):
            visited = [seen[t] for t in range(start, min(start + 4**level, len(seen)))]
            scales = torch.stack([v.scales[item] for v in visited])
            assert torch.allclose(scales, torch.full_like(scales, 2.0**-level))
            centers = {tuple(v.centers[item].tolist()) for v in visited}
            assert centers <= {tuple(tile[:2].tolist()) for tile in tiles}
            assert len(centers) == len(visited)  # no tile twice within a level
        start += 4**level


def test_batch_order_is_a_function_of_step():
    first = [global_batch_indices(s, dataset_size=20, batch_size=8, seed=3) for s in range(4)]
    again = [global_batch_indices(s, dataset_size=20, batch_size=8, seed=3) for s in range(4)]
    assert first == again
    assert len(set(first[0]) | set(first[1])) == 16  # one epoch (2 batches of 8) has no repeats


def test_tiny_run_writes_everything(tmp_path):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    held_out = synthetic_dataset(8, scene_px=64, grid=4, dim=16, seed=1)
    base = synthetic_config(str(tmp_path), 4)
    config = dataclasses.replace(base, val_every=2, episode=dataclasses.replace(base.episode, num_glimpses=3))
    result = pretrain(config, train, held_out, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in records if "validation" in r] == [2, 4]
    assert set(result.summary["validation"]) == {"coarse_to_fine", "fine_to_coarse", "random"}
    assert isinstance(load_pretrained(tmp_path / "model"), CanViTForPretraining)
    for name in ("checkpoint.pt", "config.json", "summary.json", "canvas_pca.png"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.slow
def test_short_run_learns_and_writes_everything(tmp_path):
    train = synthetic_dataset(128, scene_px=64, grid=4, dim=16, seed=0)
    held_out = synthetic_dataset(16, scene_px=64, grid=4, dim=16, seed=1)
    config = dataclasses.replace(synthetic_config(str(tmp_path), 80), lr=2e-3, val_every=40, threads=2)
    result = pretrain(config, train, held_out, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.2, losses
    assert [r["step"] for r in records if "validation" in r] == [40, 80]
    c2f = result.summary["validation"]["coarse_to_fine"]["patch"]
    assert len(c2f) == 10 and c2f[4] > 0.1  # far above the trivial predictor (0)
    assert isinstance(load_pretrained(tmp_path / "model"), CanViTForPretraining)
    for name in ("checkpoint.pt", "config.json", "summary.json", "canvas_pca.png"):
        assert (tmp_path / name).is_file(), name


def _run(output_dir: Path, steps: int, checkpoint_every: int) -> subprocess.Popen:
    command = [sys.executable, str(SCRIPT), str(output_dir), str(steps), str(checkpoint_every)]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _logged_steps(output_dir: Path) -> int:
    path = output_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    steps = 8
    reference = _run(tmp_path / "straight", steps, 1000)
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()

    interrupted = _run(tmp_path / "killed", steps, 2)
    deadline = time.monotonic() + 240
    while _logged_steps(tmp_path / "killed") < 3:  # past the step-2 checkpoint, before the step-4 one
        assert interrupted.poll() is None, interrupted.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    checkpoint_step = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["step"]
    assert 2 <= checkpoint_step < steps

    resumed = _run(tmp_path / "killed", steps, 2)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    after_kill = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert straight.keys() == after_kill.keys()
    different = [key for key in straight if not torch.equal(straight[key], after_kill[key])]
    assert not different, different


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_two_process_data_parallel_matches_single_process(tmp_path):
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    steps = 3
    command = [torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tmp_path / "ddp"), str(steps)]
    ddp = subprocess.run(command, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr.decode()[-3000:]
    single = _run(tmp_path / "single", steps, 1000)
    assert single.wait(timeout=300) == 0, single.stderr.read().decode()

    def losses(folder):
        lines = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    assert losses("ddp") == pytest.approx(losses("single"), rel=1e-5)
    ddp_weights = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    single_weights = load_file(tmp_path / "single" / "model" / "model.safetensors")
    for key, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[key], value, atol=1e-5, rtol=1e-4)


def test_standardizers_can_come_from_other_data(tmp_path):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    domain = synthetic_dataset(16, scene_px=64, grid=4, dim=16, seed=5)
    pretrain(synthetic_config(str(tmp_path), 1), train, progress=False, statistics_set=domain)
    model = load_pretrained(tmp_path / "model")
    patches = torch.stack([torch.as_tensor(domain[i][1]) for i in range(16)]).flatten(1, 2).double()
    torch.testing.assert_close(model.teacher_patch_standardizer.mean.double(), patches.mean(0))


def test_stochastic_depth_reaches_the_training_model():
    model = build_model(
        PretrainConfig(model="canvit-tiny", episode=EpisodeConfig(canvas_grid=4), drop_path=0.2), teacher_dim=16
    )
    rates = [block.drop_path for block in model.canvit.backbone.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.2)
