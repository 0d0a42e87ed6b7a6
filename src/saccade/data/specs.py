"""The one resolver of distillation data specs: what `--data` names for pretraining and the policy commands.

A spec is a named crop set of the bundled photos with the bundled teacher's features (saccade.data.distill_sets:
'bundled', 'anchor', 'bundled-heldout', ...), 'synthetic' (smooth random scenes with a fixed random teacher, for
smoke runs and tests), a teacher-feature shard folder written by `saccade export-features`, or, with a teacher,
an image folder whose targets are computed in the training loop; tar shards written by `saccade pack-shards` stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from saccade.data.distill_sets import DISTILLATION_SETS
from saccade.data.tar_shards import is_shard_spec

if TYPE_CHECKING:
    from saccade.pretrain.stream import StreamOptions
    from saccade.teachers.base import Teacher

__all__ = ["NAMED_SPECS", "check_distillation_spec", "open_distillation"]

NAMED_SPECS = (*DISTILLATION_SETS, "synthetic")
SYNTHETIC_SCENES = 256


def check_distillation_spec(spec: str, *, flag: str = "--data", shards: bool = True) -> None:
    """Refuse a spec that is neither a named set nor (when `shards`) an existing folder or tar shards, naming `flag`."""
    if spec in NAMED_SPECS or (shards and (Path(spec).is_dir() or is_shard_spec(spec))):
        return
    if shards:
        raise ValueError(
            f"{flag} {spec}: no such shard folder (export one with `saccade export-features`), "
            f"nor a named set ({', '.join(NAMED_SPECS)})"
        )
    raise ValueError(f"{flag} {spec}: unknown scene data; choose one of {', '.join(NAMED_SPECS)}")


def open_distillation(
    spec: str,
    *,
    canvas_grid: int,
    seed: int = 0,
    num_scenes: int | None = None,
    teacher: Teacher | None = None,
    stream: StreamOptions | None = None,
):
    """The dataset `spec` names; `num_scenes` caps a named set (its first crops) or sizes the synthetic one.

    Scenes of named and synthetic sets are 16 * canvas_grid px with a canvas_grid x canvas_grid teacher grid.
    With a `teacher`, `spec` is an image folder whose targets the teacher computes in the training loop
    (saccade.pretrain.teacher_targets), from scenes of teacher.patch_size * canvas_grid px. Tar shards (a folder
    of .tar files, a brace pattern or a `pipe:` command) open as a ShardStream read with `stream`'s options (with
    a `teacher`, shards of images alone).
    """
    check_distillation_spec(spec)
    if is_shard_spec(spec):
        if stream is None:
            raise ValueError(f"{spec} names tar shards, which only the training data of `saccade pretrain` streams")
        from saccade.pretrain.stream import ShardStream
        from saccade.pretrain.teacher_targets import TeacherTargets

        targets = None if teacher is None else TeacherTargets(teacher, canvas_grid=canvas_grid)
        return ShardStream.open(spec, stream, targets=targets)
    if teacher is not None:
        from saccade.data.images import open_images
        from saccade.pretrain.teacher_targets import TeacherInLoopDataset, TeacherTargets

        targets = TeacherTargets(teacher, canvas_grid=canvas_grid)
        return TeacherInLoopDataset(open_images(spec, size_px=targets.input_px), targets)
    if spec in DISTILLATION_SETS:
        from saccade.data.distill_sets import distillation_crops

        overrides = {"num_crops": num_scenes} if num_scenes else {}
        return distillation_crops(spec, canvas_grid=canvas_grid, seed=seed, **overrides)
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        count = num_scenes or SYNTHETIC_SCENES
        return synthetic_dataset(count, scene_px=canvas_grid * 16, grid=canvas_grid, dim=32, seed=seed)
    from saccade.data.export import PROGRESS_DIR
    from saccade.data.shards import INDEX_FILE, ShardDataset

    if not (Path(spec) / INDEX_FILE).is_file() and not (Path(spec) / PROGRESS_DIR).is_dir():
        raise ValueError(
            f"{spec} is not a teacher-feature export (no {INDEX_FILE}); to train on its images, name the "
            "teacher that computes their targets in the loop (--teacher)"
        )
    return ShardDataset(spec)
