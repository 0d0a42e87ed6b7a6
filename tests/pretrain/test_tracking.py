"""Trackers (pretrain/tracking.py): the chosen one receives the scalars of metrics.jsonl, step by step."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import ClassVar

import pytest
from tests.pretrain.run_synthetic import config as synthetic_config

from saccade.pretrain import tracking
from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.tracking import make_tracker, scalars_of
from saccade.pretrain.trainer import pretrain


class _FakeTracker:
    runs: ClassVar[list[_FakeTracker]] = []

    def __init__(self, output_dir, run_config) -> None:
        self.output_dir, self.run_config = output_dir, run_config
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.closed = False
        _FakeTracker.runs.append(self)

    def log(self, scalars, step) -> None:
        self.logged.append((step, scalars))

    def close(self) -> None:
        self.closed = True


def _run(tmp_path, tracker: str, steps: int = 2):
    config = dataclasses.replace(synthetic_config(str(tmp_path), steps), tracker=tracker)
    return pretrain(config, synthetic_dataset(64, scene_px=64, grid=4, dim=16, seed=0), progress=False)


def test_the_tracker_gets_the_scalars_of_metrics_jsonl(tmp_path, monkeypatch):
    monkeypatch.setitem(tracking.TRACKER_FACTORIES, "wandb", _FakeTracker)
    _FakeTracker.runs = []
    _run(tmp_path, "wandb")
    (run,) = _FakeTracker.runs
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert run.logged == [(record["step"], scalars_of(record)) for record in records]
    assert {"loss", "grad_norm", "lr", "patch_cos/random", "cls_cos/full_then_random"} <= run.logged[0][1].keys()
    assert run.closed and run.run_config["tracker"] == "wandb"


def test_scalars_of_flattens_dicts_and_leaves_out_lists_strings_and_the_step():
    record = {"step": 3, "loss": 0.5, "patch_cos": {"random": 0.1}, "validation": {"c2f": [0.1]}, "flag": True}
    assert scalars_of(record) == {"loss": 0.5, "patch_cos/random": 0.1}


def test_tracker_none_writes_metrics_jsonl_only(tmp_path):
    _run(tmp_path, "none", steps=1)
    assert (tmp_path / "metrics.jsonl").is_file() and not (tmp_path / "tensorboard").exists()


@pytest.mark.parametrize("kind", ["wandb", "mlflow"])
def test_a_missing_tracker_package_names_the_extra(tmp_path, monkeypatch, kind):
    monkeypatch.setitem(sys.modules, kind, None)  # import fails as when it is not installed
    expected = rf"tracker='{kind}' needs the {kind} package: pip install 'saccade\[{kind}\]'"
    with pytest.raises(ImportError, match=expected):
        make_tracker(kind, tmp_path, run_config={})


def test_wandb_offline_without_an_account(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    _run(tmp_path, "wandb")
    assert (tmp_path / "wandb_run_id").is_file() and any((tmp_path / "wandb").glob("offline-run-*"))


def test_mlflow_writes_a_local_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _run(tmp_path, "mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = client.get_metric_history((tmp_path / "mlflow_run_id").read_text(), "loss")
    assert [metric.step for metric in history] == [1, 2]
