"""The model card (README.md) of a published CanViT: YAML front matter, how to load it with saccade and with the
authors' canvit-pytorch, the training record, and the evaluation numbers when given (saccade.publish)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saccade.model.pretraining import CanViTForPretraining
    from saccade.publish import TrainingRecord

__all__ = ["AUTHORS_BACKBONES", "model_card"]

# The backbones canvit-pytorch 0.2.1's registry (canvit_core.backbone.BACKBONES) defines.
AUTHORS_BACKBONES = ("vits16", "vitb16")
TAGS = ("canvit", "active-vision", "vision-transformer", "saccade")
MAX_ROWS = 60  # numbers shown per table; the full file is in the folder


def model_card(
    model: CanViTForPretraining,
    record: TrainingRecord,
    evaluation: dict[str, Any] | None,
    *,
    published_with: dict[str, Any],
    repo_id: str | None = None,
) -> str:
    """README.md of a published folder."""
    spec = model.config.backbone
    title = f"CanViT ({model.config.backbone_name} backbone) pretrained with saccade"
    summary = (
        f"A CanViT (Canvas Vision Transformer) pretrained by dense latent distillation with saccade: a "
        f"{spec.num_blocks}-block ViT of width {spec.embed_dim} reads glimpses, a canvas of width "
        f"{model.config.canvas_dim} remembers the scene, and readouts predict the teacher's standardized patch "
        f"({model.teacher_patch_grid} x {model.teacher_patch_grid}) and CLS features (width {model.teacher_dim}). "
        "The files are in the layout of the authors' canvit-pytorch 0.2 (config.json + model.safetensors), so "
        "either package loads them."
    )
    parts = [
        _front_matter(),
        f"# {title}",
        summary,
        "## Usage",
        _usage(model, repo_id),
        "## Training",
        _table(_training_rows(model, record, published_with)),
    ]
    if record.validation:
        parts += ["### Validation at the end of pretraining", _table(_number_rows(record.validation))]
    if record.settings:
        settings = json.dumps(record.settings, indent=2, sort_keys=True)
        summary_line = "<details><summary>The run's settings (config.json)</summary>"
        parts += [summary_line, f"```json\n{settings}\n```", "</details>"]
    if evaluation is not None:
        parts += ["## Evaluation", "From `evaluation.json` in this repository:", _table(_number_rows(evaluation))]
    return "\n\n".join(parts) + "\n"


def _front_matter() -> str:
    lines = ["---", "library_name: saccade", "license: mit", "pipeline_tag: image-feature-extraction", "tags:"]
    lines += [f"- {tag}" for tag in TAGS]
    return "\n".join([*lines, "---"])


def _usage(model: CanViTForPretraining, repo_id: str | None) -> str:
    source = repo_id or "path/to/this/folder"
    name = model.config.backbone_name
    saccade_code = f'import saccade\n\nmodel = saccade.load_pretrained("{source}")  # a saccade CanViTForPretraining'
    authors_code = (
        f'from canvit_pytorch import CanViTForPretraining\n\nmodel = CanViTForPretraining.from_pretrained("{source}")'
    )
    lines = ["With saccade:", f"```python\n{saccade_code}\n```", "With the authors' canvit-pytorch (>= 0.2):"]
    lines.append(f"```python\n{authors_code}\n```")
    if name not in AUTHORS_BACKBONES:
        spec = model.config.backbone
        lines.append(
            f"canvit-pytorch 0.2.1 defines only the backbones {', '.join(AUTHORS_BACKBONES)}: register this one first "
            f"as `canvit_core.backbone.BACKBONES[{name!r}] = ViTSpec(embed_dim={spec.embed_dim}, "
            f"num_heads={spec.num_heads}, num_blocks={spec.num_blocks}, patch_size={spec.patch_size}, "
            f"ffn_ratio={spec.ffn_ratio}, rope_base={spec.rope_base}, layerscale_init={spec.layerscale_init})`. "
            "saccade reads the spec from `saccade.json`."
        )
    return "\n\n".join(lines)


def _training_rows(model: CanViTForPretraining, record: TrainingRecord, published_with: dict[str, Any]):
    config, spec = model.config, model.config.backbone
    parameters = sum(p.numel() for p in model.parameters())
    grid = model.teacher_patch_grid
    rows = [
        (
            "Architecture",
            f"backbone `{config.backbone_name}` ({spec.num_blocks} blocks, width {spec.embed_dim}, {spec.num_heads} "
            f"heads, {spec.patch_size} px patches); canvas {config.canvas_num_heads} x {config.canvas_head_dim}, "
            f"{config.num_canvas_registers} canvas registers, {config.num_backbone_registers} backbone registers, "
            f"rw_stride {config.rw_stride}, reads {_on(config.enable_reads)}, VPE {_on(config.enable_vpe)}, "
            f"projections {config.canvas_projections}",
        ),
        ("Parameters", f"{parameters:,}"),
        ("Teacher", f"{_or_unrecorded(record.teacher)} (width {model.teacher_dim}, {grid} x {grid} patch grid)"),
        ("Data", _or_unrecorded(record.data)),
        ("Steps", _steps(record)),
        ("Seed", _or_unrecorded(record.seed)),
        ("Episode", _episode(record.episode)),
        ("Trained at commit", _or_unrecorded(record.git_commit)),
        ("Trained with", ", ".join(f"{k} {v}" for k, v in sorted(record.versions.items())) or "not recorded"),
        ("Published with", _published(published_with)),
    ]
    return rows


def _steps(record: TrainingRecord) -> str:
    if record.steps is None:
        return "not recorded" if record.total_steps is None else f"{record.total_steps:,} planned"
    text = f"{record.steps:,}"
    if record.total_steps is not None:
        text += f" of {record.total_steps:,}"
    return text + (f" ({record.status})" if record.status else "")


def _episode(episode: dict[str, int] | None) -> str:
    if not episode:
        return "not recorded"
    grid = episode.get("canvas_grid", "?")
    return (
        f"{episode.get('scene_px', '?')} px scenes, {episode.get('glimpse_px', '?')} px glimpses, {grid} x {grid} "
        f"canvas, {episode.get('num_glimpses', '?')} glimpses"
    )


def _published(provenance: dict[str, Any]) -> str:
    """'saccade 0.1.0 (git abc... dirty), torch 2.13.0, Python 3.11.7' of a saccade.provenance record."""
    commit, versions = provenance.get("git_commit"), provenance.get("versions", {})
    source = f" (git {commit}{' dirty' if provenance.get('git_dirty') else ''})" if commit else ""
    return f"saccade {versions.get('saccade')}{source}, torch {versions.get('torch')}, Python {versions.get('python')}"


def _number_rows(tree: Any) -> list[tuple[str, str]]:
    """(dotted key, value) of every number, short string and list of numbers in a JSON tree, at most MAX_ROWS."""
    rows = list(_leaves(tree, ""))
    if len(rows) > MAX_ROWS:
        rows = [*rows[:MAX_ROWS], ("...", f"{len(rows) - MAX_ROWS} more")]
    return rows


def _leaves(tree: Any, prefix: str):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list) and tree and all(_is_number(v) for v in tree):
        first, last = _number(tree[0]), _number(tree[-1])
        yield prefix, first if len(tree) == 1 else f"{first} → {last} ({len(tree)} values, first → last)"
    elif _is_number(tree):
        yield prefix, _number(tree)
    elif isinstance(tree, str) and len(tree) <= 80:
        yield prefix, tree


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _table(rows: list[tuple[str, str]]) -> str:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {name} | {str(value).replace('|', '/')} |" for name, value in rows]
    return "\n".join(lines)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _or_unrecorded(value: Any) -> str:
    return "not recorded" if value is None else str(value)
