"""train-policy / evaluate-policy end to end on a tiny model and synthetic scenes (seconds)."""

from __future__ import annotations

import csv
import json

import pytest

from saccade.cli import main
from saccade.model.checkpoint import save_pretrained
from saccade.policies import load_gain_regressor
from saccade.policy_training.config import PolicyEvalConfig, PolicyTrainConfig
from saccade.policy_training.evaluate import POLICY_NAMES, evaluate_policy_curves, summarize
from saccade.policy_training.report import write_report
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

    eval_config = PolicyEvalConfig(episode=EPISODE, num_runs=2, batch_size=4, num_resamples=50)
    values = evaluate_policy_curves(model, result.regressor, tiny_scenes(6, seed=1), eval_config, progress=False)
    assert set(values) == set(POLICY_NAMES) and all(v.shape == (6, 3) for v in values.values())
    # the oracle is greedy on measured gains: its first glimpse is at least as good as any other policy's
    for name in POLICY_NAMES:
        assert bool((values["oracle"][:, 0] >= values[name][:, 0] - 1e-5).all()), name
    curves = [summarize(values[name], name, num_resamples=50) for name in values]
    paths = write_report(tmp_path / "eval", curves, [summarize(values["learned"] - values["C2F"], "d")], metric="cos")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == (len(POLICY_NAMES) + 1) * 3 and float(rows[0]["ci95_low"]) <= float(rows[0]["mean"]) <= float(
        rows[0]["ci95_high"]
    )
    assert "| t | learned | learned-C2F | C2F | EG-C2F | R-IID | oracle |" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 0


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
    assert "| t | learned | C2F |" in text and "learned − C2F" in text
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
