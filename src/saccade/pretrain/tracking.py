"""Experiment trackers: where training metrics go besides metrics.jsonl (TensorBoard, Weights & Biases, MLflow).

metrics.jsonl stays the record of a run; a tracker receives the same numbers, each logged record's scalars
(nested dicts flattened to 'patch_cos/random'; lists and strings left out). PretrainConfig.tracker picks one;
W&B and MLflow are extras (`pip install 'saccade[wandb]'` / `'saccade[mlflow]'`), imported only when chosen,
and both work offline without an account: W&B runs offline unless WANDB_MODE says otherwise (`wandb sync`
uploads later), MLflow writes to output_dir/mlflow.db (SQLite) unless MLFLOW_TRACKING_URI names a server.
A resumed run continues the same tracker run (its id is kept in output_dir).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["TRACKER_FACTORIES", "Tracker", "make_tracker", "scalars_of"]


class Tracker(Protocol):
    def log(self, scalars: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def scalars_of(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{name: number} of a metrics record, nested dicts flattened with '/'; 'step' itself is the x axis."""
    scalars: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            scalars |= scalars_of(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool) and (prefix or key != "step"):
            scalars[prefix + key] = value
    return scalars


class _TensorBoard:
    def __init__(self, output_dir: Path, run_config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(output_dir / "tensorboard"))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, output_dir: Path, run_config: dict[str, Any]) -> None:
        wandb = _import("wandb", "wandb")
        run_id = _run_id(output_dir / "wandb_run_id", lambda: secrets.token_hex(4))
        mode = os.environ.get("WANDB_MODE", "offline")  # no account or network needed unless asked for
        self.run = wandb.init(
            id=run_id, resume="allow", dir=str(output_dir), name=output_dir.name, config=run_config, mode=mode
        )

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, output_dir: Path, run_config: dict[str, Any]) -> None:
        _import("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        # a SQLite store in the run folder: MLflow 3 refuses new plain-file stores
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        id_file = output_dir / "mlflow_run_id"
        if id_file.is_file():
            self.run_id = id_file.read_text().strip()
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "saccade")
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            self.run_id = self.client.create_run(experiment_id, run_name=output_dir.name).info.run_id
            for key, value in {**scalars_of(run_config), **_text_params(run_config)}.items():
                self.client.log_param(self.run_id, key, value)
            id_file.write_text(self.run_id)

    def log(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now_ms, step) for name, value in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


TRACKER_FACTORIES: dict[str, Callable[[Path, dict[str, Any]], Tracker]] = {
    "tensorboard": _TensorBoard,
    "wandb": _Wandb,
    "mlflow": _MLflow,
}


def make_tracker(kind: str, output_dir: str | Path, *, run_config: dict[str, Any]) -> Tracker | None:
    """The tracker `kind` names (None for 'none', and for 'tensorboard' when tensorboard is not installed)."""
    if kind == "none":
        return None
    if kind not in TRACKER_FACTORIES:
        raise ValueError(f"tracker must be one of {['none', *TRACKER_FACTORIES]}, got {kind!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        return TRACKER_FACTORIES[kind](output_dir, run_config)
    except ImportError:
        if kind == "tensorboard":  # optional, as before: metrics.jsonl alone
            return None
        raise


def _import(module: str, extra: str):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"PretrainConfig.tracker={extra!r} needs the {module} package: pip install 'saccade[{extra}]' "
            "(or choose tracker 'tensorboard' or 'none')"
        ) from error


def _run_id(path: Path, new_id: Callable[[], str]) -> str:
    """The tracker run id kept in `path` (a resumed run continues it), or a new one written there."""
    if path.is_file():
        return path.read_text().strip()
    run_id = new_id()
    path.write_text(run_id)
    return run_id


def _text_params(run_config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Non-numeric settings as strings (MLflow params), nested dicts flattened with '/'."""
    params: dict[str, str] = {}
    for key, value in run_config.items():
        if isinstance(value, dict):
            params |= _text_params(value, f"{prefix}{key}/")
        elif not isinstance(value, int | float) or isinstance(value, bool):
            params[prefix + key] = str(value)[:500]
    return params
