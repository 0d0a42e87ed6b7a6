"""Raw images for pretraining with the teacher in the loop: what `--data` names when `--teacher` is set.

An image folder (every jpg / png / webp under it, as `saccade export-features` reads it) becomes scenes decoded
and resized exactly as the export does (`saccade.data.scenes.preprocess`), at the teacher's input side
`patch_size * canvas_grid` px, so targets computed in the loop equal the exported ones.
"""

from __future__ import annotations

from pathlib import Path

from saccade.data.scenes import FileScenes, ImageFolderScenes
from saccade.data.shards import INDEX_FILE
from saccade.data.specs import NAMED_SPECS

__all__ = ["open_images"]


def open_images(spec: str, *, size_px: int) -> FileScenes:
    """The image folder `spec` as scenes [3, size_px, size_px]; refuses named sets and feature exports."""
    if spec in NAMED_SPECS:
        raise ValueError(
            f"{spec}: a named set carries its own teacher features; with --teacher the data must be an image "
            "folder (or drop --teacher to train on the named set)"
        )
    root = Path(spec)
    if (root / INDEX_FILE).is_file():
        raise ValueError(
            f"{spec} is a teacher-feature export: drop --teacher to train on its stored targets, "
            "or give the image folder it was exported from"
        )
    if not root.is_dir():
        raise ValueError(f"{spec}: no such image folder")
    return ImageFolderScenes(root, size_px=size_px)
