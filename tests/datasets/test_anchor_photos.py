"""The anchor experiment's photo set: 48 photos, the anchor's exact 38 / 10 split, clear errors when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from saccade.data.anchor_photos import ANCHOR_PHOTOS, anchor_files
from saccade.data.distill_sets import distillation_crops

HELDOUT = {  # ../shared/docs/anchor-tiny-official.md, "Split by photo"
    "ihc",
    "flower",
    "Picture_1A_by_freespace",
    "aitzgorri_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi",
    "FreshFlower",
    "Wood",
    "YellowFlower",
    "ColdRipple",
    "FallenLeaf",
}


def _stem(relpath: str) -> str:
    parts = Path(relpath).parts
    return parts[0] if parts[-1] == "2560x1600.jpg" and len(parts) == 4 else Path(relpath).stem


def test_split_is_the_anchors():
    assert len(ANCHOR_PHOTOS) == 48 and len({p.name for p in ANCHOR_PHOTOS}) == 48
    heldout = {_stem(p.relpath) for p in ANCHOR_PHOTOS if p.split == "heldout"}
    assert heldout == HELDOUT
    sources = {p.source for p in ANCHOR_PHOTOS}
    counts = {s: sum(p.source == s for p in ANCHOR_PHOTOS) for s in sources}
    assert counts["mate-backgrounds"] == 12 and counts["plasma-workspace-wallpapers"] == 11
    assert counts["lomiri-wallpapers-16.04"] + counts["lomiri-wallpapers-20.04"] == 14
    assert counts["scikit-image"] + counts["scikit-learn"] + counts["matplotlib"] == 11


def test_missing_debian_packages_name_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"apt-get install lomiri-wallpapers-16\.04"):
        anchor_files("heldout", debian_root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        anchor_files("all")  # type: ignore[arg-type]


def test_unknown_set_is_refused():
    with pytest.raises(ValueError, match="known: bundled"):
        distillation_crops("imagenet", canvas_grid=8)


def test_files_exist_when_the_packages_are_installed():
    try:
        train, heldout = anchor_files("train"), anchor_files("heldout")
    except (FileNotFoundError, ModuleNotFoundError) as missing:
        pytest.skip(str(missing))
    assert len(train) == 38 and len(heldout) == 10 and not set(train) & set(heldout)
