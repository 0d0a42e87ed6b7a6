"""Publishing a pretrained CanViT in the authors' Hub layout, so that canvit-pytorch 0.2 and saccade both load it.

The authors publish checkpoints with huggingface_hub's PyTorchModelHubMixin: config.json holds the constructor
arguments of the class and nothing else, model.safetensors its tensors. A folder `publish` writes:

| file | content |
| --- | --- |
| `config.json` | their `CanViTForPretraining`'s arguments: canvit_config, teacher_dim, teacher_patch_grid |
| `model.safetensors` | every tensor under the 0.2 key names (saccade's own), floats as float32 |
| `README.md` | the model card: YAML front matter, how to load it, the training record, evaluation numbers |
| `saccade.json` | what their config has no room for: the backbone spec, the episode, the training record |
| `evaluation.json` | the evaluation results the card summarizes, when given |

Their loader reads only config.json and model.safetensors; their CanViT has no layout of its own (only
CanViTForPretraining and the task models are Hub classes), so only pretraining models are published.
`publish` reloads what it wrote with saccade and raises, removing the files, unless every tensor is identical.
Nothing leaves the machine unless `push_to_hub` is called.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from saccade._io import atomic_write
from saccade.config_files import config_to_dict, read_json_object
from saccade.loading import PUBLICATION_FILE, recorded_episode
from saccade.model.canvit import CanViT
from saccade.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_pretrained
from saccade.model.compat import PUBLISHED_BACKBONES
from saccade.model.config import CanViTConfig
from saccade.model.pretraining import CanViTForPretraining
from saccade.provenance import provenance
from saccade.publish_card import model_card

__all__ = [
    "AUTHORS_CONFIG_FIELDS",
    "PUBLICATION_FILE",
    "PublishError",
    "TrainingRecord",
    "authors_config",
    "publish",
    "push_to_hub",
    "read_publication",
    "verify_publication",
]

CARD_FILE = "README.md"
EVALUATION_FILE = "evaluation.json"
PUBLISHED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, PUBLICATION_FILE, EVALUATION_FILE)
PUBLICATION_FORMAT = "saccade-publication"
PUBLICATION_VERSION = 1
# The fields of canvit-pytorch 0.2's CanViTConfig; saccade's CanViTConfig has them under the same names.
AUTHORS_CONFIG_FIELDS = (
    "backbone_name",
    "canvas_head_dim",
    "canvas_num_heads",
    "canvas_projections",
    "enable_reads",
    "enable_vpe",
    "num_backbone_registers",
    "num_canvas_registers",
    "rw_stride",
)


class PublishError(RuntimeError):
    """The folder written does not reload into the same model: nothing is left of it."""


@dataclass(frozen=True, kw_only=True)
class TrainingRecord:
    """How a model was trained, as its model card tells it; None: not recorded."""

    data: str | None = None
    """Training data: a teacher-feature shard folder, a named crop set, ..."""
    teacher: str | None = None
    """The teacher whose features were distilled."""
    steps: int | None = None
    """Optimizer steps done."""
    total_steps: int | None = None
    """Optimizer steps planned."""
    status: str | None = None
    """How the run ended: complete, time_limit or interrupted (summary.json)."""
    seed: int | None = None
    """The run's seed."""
    git_commit: str | None = None
    """saccade's git commit the run was trained with."""
    versions: dict[str, str] = field(default_factory=dict)
    """Package versions the run was trained with (saccade, torch, ...)."""
    episode: dict[str, int] | None = None
    """The training episode (EpisodeConfig fields: scene_px, glimpse_px, canvas_grid, num_glimpses)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The run's whole config.json."""
    validation: dict[str, Any] | None = None
    """The run's final validation numbers (summary.json)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown TrainingRecord fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_run(cls, model_folder: str | os.PathLike, **given: Any) -> TrainingRecord:
        """What a `saccade pretrain` output folder records: the model's episode (`model_folder`/config.json), the
        run's config.json and summary.json one folder up when present; `given` fields override them."""
        folder = Path(model_folder)
        model_config = _json_object(folder / CONFIG_FILE)
        run_config, summary = {}, {}
        if model_config.get("format") == "saccade":  # a run's folder holds it: runs/x/model, runs/x/config.json
            run_config = _json_object(folder.parent / "config.json")
            run_config = run_config if {"model", "steps", "seed"} <= set(run_config) else {}
            summary = _json_object(folder.parent / "summary.json") if run_config else {}
        provenance = {**run_config.get("provenance", {}), **summary.get("provenance", {})}
        episode = recorded_episode(folder)
        recorded = {
            "data": run_config.get("data"),
            "teacher": run_config.get("teacher"),
            "steps": summary.get("steps"),
            "total_steps": run_config.get("steps"),
            "status": summary.get("status"),
            "seed": run_config.get("seed"),
            "git_commit": provenance.get("git_commit"),
            "versions": provenance.get("versions", {}),
            "episode": None if episode is None else config_to_dict(episode),
            "settings": run_config,
            "validation": summary.get("validation"),
        }
        return cls(**{**recorded, **{key: value for key, value in given.items() if value is not None}})


def authors_config(model: CanViTForPretraining) -> dict[str, Any]:
    """config.json of the authors' CanViTForPretraining: exactly its constructor arguments."""
    fields = model.config.to_dict()
    return {
        "canvit_config": {name: fields[name] for name in AUTHORS_CONFIG_FIELDS},
        "teacher_dim": model.teacher_dim,
        "teacher_patch_grid": model.teacher_patch_grid,
    }


def publish(
    model: CanViTForPretraining,
    folder: str | os.PathLike,
    *,
    record: TrainingRecord | dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write `folder` in the authors' layout (see module), reload it with saccade and check that every tensor is
    identical; returns the folder. `repo_id` only names the Hub repository in the card's code.

    Raises TypeError for a model other than a CanViTForPretraining, ValueError for unfitted standardizers,
    non-finite weights or a folder holding other files, PublishError when the reload differs.
    """
    record = record if isinstance(record, TrainingRecord) else TrainingRecord.from_dict(record)
    tensors = _published_tensors(_pretraining_model(model))
    folder = _publication_folder(folder)
    written: list[Path] = []
    try:
        _write_folder(model, folder, tensors, record, evaluation, repo_id, written)
        verify_publication(folder, model)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return folder


def verify_publication(folder: str | os.PathLike, model: CanViTForPretraining) -> int:
    """Reload `folder` with saccade; PublishError unless it is `model` (config, and every tensor bit for bit as
    float32). Returns the number of tensors compared."""
    tensors = _published_tensors(model)
    backbone_name = model.config.backbone_name
    specs = None if backbone_name in PUBLISHED_BACKBONES else {backbone_name: read_publication(folder)["backbone"]}
    reloaded = load_pretrained(folder, backbone_specs=specs)
    if not isinstance(reloaded, CanViTForPretraining):
        raise PublishError(f"{folder} reloads as a {type(reloaded).__name__}, not a CanViTForPretraining")
    shape = (reloaded.config, reloaded.teacher_dim, reloaded.teacher_patch_grid)
    if shape != (model.config, model.teacher_dim, model.teacher_patch_grid):
        raise PublishError(f"{folder} reloads with another config: {shape}")
    state = reloaded.state_dict()
    if set(state) != set(tensors):
        raise PublishError(f"{folder} reloads with other tensors: {sorted(set(state) ^ set(tensors))}")
    differ = [key for key, tensor in tensors.items() if not _identical(state[key], tensor)]
    if differ:
        raise PublishError(f"{folder} reloads with {len(differ)} different tensor(s): {', '.join(differ[:8])}")
    return len(tensors)


def read_publication(folder: str | os.PathLike) -> dict[str, Any]:
    """saccade.json of a published folder: backbone spec, episode, training record and how it was published."""
    path = Path(folder) / PUBLICATION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {folder} was not published by saccade")
    publication = json.loads(path.read_text())
    if publication.get("format") != PUBLICATION_FORMAT or publication.get("format_version") != PUBLICATION_VERSION:
        raise ValueError(
            f"{path}: expected format {PUBLICATION_FORMAT!r} version {PUBLICATION_VERSION}, got "
            f"{publication.get('format')!r} version {publication.get('format_version')!r}"
        )
    return publication


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Upload a published `folder` to the Hub model repository `repo_id` (created if needed; `revision`: a branch,
    created from main if needed); returns the commit's URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ImportError("pushing to the Hub needs huggingface_hub: pip install huggingface_hub") from None

    folder = Path(folder)
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a published folder: it lacks {', '.join(missing)}")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=revision,
        allow_patterns=list(PUBLISHED_FILES),
        commit_message="Publish a CanViT pretrained with saccade",
    )
    return str(getattr(commit, "commit_url", commit))


def _check_authors_config_holds(config: CanViTConfig) -> None:
    """ValueError when a field the authors' config.json lacks (AUTHORS_CONFIG_FIELDS) is off its default: the
    folder would reload as another model."""
    defaults = {f.name: f.default for f in dataclasses.fields(CanViTConfig)}
    extra = {
        name: getattr(config, name)
        for name in defaults.keys() - {*AUTHORS_CONFIG_FIELDS, "backbone"}  # backbone: the name, or publication.json
        if getattr(config, name) != defaults[name]
    }
    if extra:
        settings = ", ".join(f"{name}={value!r}" for name, value in sorted(extra.items()))
        raise ValueError(
            f"publish writes the authors' layout, whose config has no {settings}: share this model as the model/ "
            "folder its pretraining run saved, which saccade.load reads whole"
        )


def _pretraining_model(model: object) -> CanViTForPretraining:
    if isinstance(model, CanViTForPretraining):
        _check_authors_config_holds(model.config)
        return model
    if isinstance(model, CanViT):
        raise TypeError(
            "publish takes a CanViTForPretraining (CanViT + teacher readouts + standardizers), got a bare CanViT: "
            "the authors' package has no Hub layout for a bare CanViT; publish the pretraining model"
        )
    raise TypeError(f"publish takes a CanViTForPretraining, got {type(model).__name__}")


def _published_tensors(model: CanViTForPretraining) -> dict[str, Tensor]:
    """The state dict on the CPU, floats as float32 (exact from float32, bfloat16 and float16)."""
    for name in ("teacher_patch_standardizer", "teacher_cls_standardizer"):
        if not bool(getattr(model, name).fitted):
            raise ValueError(f"the model's {name} was never fitted: a published model must carry its statistics")
    tensors = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            if tensor.dtype == torch.float64:
                raise ValueError(f"{key} is float64: publishing casts to float32, which would round it")
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{key} holds NaN or inf")
            tensor = tensor.float()
        tensors[key] = tensor.contiguous()
    return tensors


def _publication_folder(path: str | os.PathLike) -> Path:
    """The output folder, created; ValueError unless it is new, empty or a previous publication."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, expected a folder to publish into")
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    others = [name for name in names if name not in PUBLISHED_FILES]
    if others or (names and PUBLICATION_FILE not in names):  # e.g. a checkpoint folder: never overwritten
        raise ValueError(
            f"{folder} holds files that are not a previous publication's ({', '.join((others or names)[:5])}): "
            "publish into a new or empty folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_folder(model, folder, tensors, record, evaluation, repo_id, written: list[Path]) -> None:
    """Write every file of the publication, appending each to `written` before writing it."""
    publication = {
        "format": PUBLICATION_FORMAT,
        "format_version": PUBLICATION_VERSION,
        "architecture": "CanViTForPretraining",
        "backbone": dataclasses.asdict(model.config.backbone),
        "episode": record.episode,
        "training": record.to_dict(),
        "published_with": provenance(seeds={}),
    }
    card = model_card(model, record, evaluation, published_with=publication["published_with"], repo_id=repo_id)
    files: dict[str, Any] = {
        CONFIG_FILE: _json_text(authors_config(model)),
        PUBLICATION_FILE: _json_text(publication),
        CARD_FILE: card,
        EVALUATION_FILE: None if evaluation is None else _json_text(evaluation),
    }
    written.append(folder / WEIGHTS_FILE)
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    for name, text in files.items():
        written.append(folder / name)
        if text is None:
            (folder / name).unlink(missing_ok=True)  # a previous publication's evaluation
        else:
            atomic_write(folder / name, lambda tmp, text=text: tmp.write_text(text))


def _identical(reloaded: Tensor, published: Tensor) -> bool:
    return reloaded.dtype == published.dtype and torch.equal(reloaded.cpu(), published)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`, {} when there is no such file."""
    return read_json_object(path) if path.is_file() else {}
