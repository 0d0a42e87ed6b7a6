"""train-policy / evaluate-policy end to end on a tiny model and synthetic scenes (seconds)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from saccade.cli import main
from saccade.evaluate import report
from saccade.evaluate.curves import paired_difference
from saccade.model.checkpoint import save_pretrained
from saccade.policies import load_gain_regressor
from saccade.policy_training.config import PolicyEvalConfig, PolicyTrainConfig
from saccade.policy_training.evaluate import POLICY_NAMES, evaluate_policy_curves
from saccade.policy_training.run import policy_episode
from saccade.policy_training.train import train_policy
from tests.envs.fixtures import EPISODE, tiny_model, tiny_scenes

TINY = {"episode": EPISODE, "round_scenes": (4, 4), "steps": 3, "batch_size": 4, "rollout_batch": 4, "hidden_dim": 16}


def test_train_then_evaluate_every_policy(tmp_path) -> None:
    model = tiny_model()
    config = PolicyTrainConfig(**TINY, output_dir=str(tmp_path / "policy"))
    result = train_policy(model, tiny_scenes(16), config, progress=False)
    assert result.policy_path.is_file() and (tmp_path / "policy" / "metrics.json").is_file()
    assert [r["round"] for r in result.metrics["rounds"]] == [0, 1]
    assert result.metrics["states"] == 8 * 3
    assert result.metrics["provenance"]["device"] == "cpu"

    eval_config = PolicyEvalConfig(episode=EPISODE, num_runs=2, batch_size=4, num_resamples=50)
    curves = evaluate_policy_curves(model, result.regressor, tiny_scenes(6, seed=1), eval_config, progress=False)
    assert [c.policy for c in curves] == list(POLICY_NAMES)
    values = {c.policy: c.scenes.mean(0) for c in curves}  # [N, T] per scene, mean over runs
    assert all(v.shape == (6, 3) for v in values.values())
    assert {c.policy: c.num_runs for c in curves} == {name: 2 if name in ("C2F", "R-IID") else 1 for name in values}
    # the oracle is greedy on measured gains: its first glimpse is at least as good as any other policy's
    for name in POLICY_NAMES:
        assert bool((values["oracle"][:, 0] >= values[name][:, 0] - 1e-5).all()), name
    by_name = {c.policy: c for c in curves}
    difference = paired_difference(by_name["learned"], by_name["C2F"], num_resamples=50)
    torch.testing.assert_close(difference.mean, by_name["learned"].mean - by_name["C2F"].mean)
    paths = report.write_report(tmp_path / "eval", curves, differences=[difference], plot_names={})
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == (len(POLICY_NAMES) + 1) * 3
    assert all(float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"]) for row in rows[:-3])
    assert rows[-1]["model"] == "difference" and rows[-1]["policy"] == "learned − C2F"
    assert "| policy | runs | t=0 | t=1 | t=2 | best (t) |" in paths["markdown"].read_text()


def test_policy_and_probe_evaluation_share_one_report_writer(tmp_path, monkeypatch) -> None:
    """evaluate-policy and saccade evaluate both write through saccade.evaluate.report.write_report."""
    from saccade.evaluate import pipeline
    from saccade.policy_training import run

    assert run.write_report is report.write_report is pipeline.write_report


def test_cli_train_policy_and_evaluate_policy(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pretrained(tiny_model(), tmp_path / "model")
    out = tmp_path / "policy"
    argv = ["train-policy", "--model", str(tmp_path / "model"), "--data", "synthetic", "--quiet"]
    argv += ["--episode.num-glimpses", "2", "--round-scenes", "4", "--steps", "2", "--batch-size", "4"]
    argv += ["--hidden-dim", "8"]
    assert main([*argv, "--rollout-batch", "4", "--output-dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["policy"] == str(out / "policy.safetensors")
    assert load_gain_regressor(out / "policy.safetensors").config.hidden_dim == 8
    episode = policy_episode(out / "policy.safetensors")  # a model without a recorded episode: its teacher grid
    assert (episode.num_glimpses, episode.canvas_grid) == (2, tiny_model().teacher_patch_grid)

    argv = ["evaluate-policy", "--model", str(tmp_path / "model"), "--policy", str(out / "policy.safetensors")]
    argv += ["--data", "synthetic", "--num-scenes", "4", "--num-runs", "1", "--num-resamples", "20", "--quiet"]
    assert main([*argv, "--policies", "learned", "C2F", "--output-dir", str(tmp_path / "eval")]) == 0
    text = capsys.readouterr().out
    assert "| learned | 1 |" in text and "| learned − C2F | 1 |" in text
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"results.md", "results.csv", "curves.png"}


def test_cli_reports_bad_settings(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pretrained(tiny_model(), tmp_path / "model")
    argv = ["train-policy", "--model", str(tmp_path / "model"), "--data", "synthetic", "--objective", "segmentation"]
    assert main(argv) == 2
    assert "the CLI trains on 'distillation'" in capsys.readouterr().err
    plain = tiny_model().canvit
    save_pretrained(plain, tmp_path / "plain")
    assert main(["train-policy", "--model", str(tmp_path / "plain"), "--data", "synthetic"]) == 2
    assert "needs a checkpoint with teacher readouts" in capsys.readouterr().err
