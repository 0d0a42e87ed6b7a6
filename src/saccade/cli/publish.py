"""`saccade publish`: a pretraining model in the authors' Hub layout with its model card; pushed only with --push."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from saccade.cli._checks import checkpoint_folder, output_folder
from saccade.config_files import read_json_object

HUB_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True, kw_only=True)
class PublishCommand:
    """Write a pretraining model in the layout of the authors' canvit-pytorch 0.2, which their
    `CanViTForPretraining.from_pretrained` and saccade both load: config.json (their constructor arguments),
    model.safetensors (float32), README.md (a model card: the training record, read from the run's config.json and
    summary.json one folder up, and the --evaluation numbers) and saccade.json (backbone spec, episode, record).
    Reloads the folder with saccade and exits 1 unless every tensor is identical. Nothing leaves the machine
    without --push."""

    model: str
    """A pretraining model folder: a `saccade pretrain` output's model/ (e.g. runs/pretrain/model), or an authors'
    CanViTForPretraining folder."""
    output_dir: str = "publish"
    """The folder to write (new, empty, or a previous publication, which is replaced)."""
    evaluation: str | None = None
    """A results.json whose numbers go into the card; copied as evaluation.json."""
    data: str | None = None
    """The training data, named in the card (a run does not record it)."""
    teacher: str | None = None
    """The teacher, named in the card (a run does not record it)."""
    push: str | None = None
    """Upload the checked folder to this Hugging Face Hub model repository (org/name), created if needed."""
    revision: str | None = None
    """The branch --push uploads to (default main), created if needed."""
    private: bool = False
    """Create the --push repository private."""


def run_publish(command: PublishCommand) -> int:
    from saccade.model.checkpoint import load_pretrained
    from saccade.model.pretraining import CanViTForPretraining
    from saccade.publish import PublishError, TrainingRecord, publish, push_to_hub
    from saccade.publish_card import AUTHORS_BACKBONES

    source = checkpoint_folder(command.model, flag="--model")
    evaluation = _evaluation(command.evaluation)
    if command.push is not None and not HUB_REPO_ID.match(command.push):
        raise ValueError(f"--push {command.push}: expected a Hub model repository id, org/name")
    if command.revision is not None and command.push is None:
        raise ValueError("--revision names the branch of --push; add --push ORG/NAME")
    model = load_pretrained(source)
    if not isinstance(model, CanViTForPretraining):
        raise ValueError(
            f"--model {command.model}: holds a bare CanViT; the authors' package publishes pretraining models "
            "(CanViTForPretraining: CanViT, teacher readouts and standardizers) and has no layout for a bare CanViT"
        )
    record = TrainingRecord.from_run(source, data=command.data, teacher=command.teacher)
    folder = output_folder(command.output_dir, flag="--output-dir")
    try:
        publish(model, folder, record=record, evaluation=evaluation, repo_id=command.push)
    except PublishError as error:
        print(f"saccade publish: error: reload check failed: {error}", file=sys.stderr)
        return 1
    files = ", ".join(sorted(path.name for path in folder.iterdir() if path.is_file()))
    print(f"wrote {folder}: {files}")
    print(f"reloaded with saccade: all {len(model.state_dict())} tensors identical (float32)")
    name = model.config.backbone_name
    if name not in AUTHORS_BACKBONES:
        print(f"note: canvit-pytorch 0.2.1 knows the backbones {', '.join(AUTHORS_BACKBONES)}, not {name!r}: "
              "its users register it first (the card shows how)")  # fmt: skip
    if command.push is None:
        print("not pushed: --push ORG/NAME uploads the folder to the Hugging Face Hub")
        return 0
    url = push_to_hub(folder, command.push, revision=command.revision, private=command.private)
    print(f"pushed to https://huggingface.co/{command.push}: {url}")
    return 0


def _evaluation(path: str | None) -> dict | None:
    """The JSON object of --evaluation (a results.json), or None."""
    if path is None:
        return None
    try:
        return read_json_object(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"--evaluation {error}") from None
