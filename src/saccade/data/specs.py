"""The one resolver of distillation data specs: what `--data` names for pretraining and the policy commands.

A spec is a named crop set of the bundled photos with the bundled teacher's features (saccade.data.distill_sets:
'bundled', 'anchor', 'bundled-heldout', ...), 'synthetic' (smooth random scenes with a fixed random teacher, for
smoke runs and tests), or a teacher-feature shard folder written by `saccade export-features`.
"""

from __future__ import annotations

from pathlib import Path

from saccade.data.distill_sets import DISTILLATION_SETS

__all__ = ["NAMED_SPECS", "check_distillation_spec", "open_distillation"]

NAMED_SPECS = (*DISTILLATION_SETS, "synthetic")
SYNTHETIC_SCENES = 256


def check_distillation_spec(spec: str, *, flag: str = "--data", shards: bool = True) -> None:
    """Refuse a spec that is neither a named set nor (when `shards`) an existing folder, naming `flag`."""
    if spec in NAMED_SPECS or (shards and Path(spec).is_dir()):
        return
    if shards:
        raise ValueError(
            f"{flag} {spec}: no such shard folder (export one with `saccade export-features`), "
            f"nor a named set ({', '.join(NAMED_SPECS)})"
        )
    raise ValueError(f"{flag} {spec}: unknown scene data; choose one of {', '.join(NAMED_SPECS)}")


def open_distillation(spec: str, *, canvas_grid: int, seed: int = 0, num_scenes: int | None = None):
    """The dataset `spec` names; `num_scenes` caps a named set (its first crops) or sizes the synthetic one.

    Scenes of named and synthetic sets are 16 * canvas_grid px with a canvas_grid x canvas_grid teacher grid.
    """
    check_distillation_spec(spec)
    if spec in DISTILLATION_SETS:
        from saccade.data.distill_sets import distillation_crops

        overrides = {"num_crops": num_scenes} if num_scenes else {}
        return distillation_crops(spec, canvas_grid=canvas_grid, seed=seed, **overrides)
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        count = num_scenes or SYNTHETIC_SCENES
        return synthetic_dataset(count, scene_px=canvas_grid * 16, grid=canvas_grid, dim=32, seed=seed)
    from saccade.data.shards import ShardDataset

    return ShardDataset(spec)
