"""The photo set and split of the anchor experiment (the authors' code trained tiny on 2 CPU cores).

48 colour photographs from package files, each brought to a short side of 320 px, split by photo into
38 training and 10 held-out photos. The held-out photos are the anchor's test set: they are never used
for training, model selection or early stopping. Crops of them make the "held-out" split; fresh crops
of the training photos make the "seen" split, which measures the generalisation gap.

Install the Debian sources with
`apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers`
and the Python ones with `pip install scikit-image scikit-learn matplotlib` (the `scenes` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from saccade.data.bundled import SOURCES, source_root

__all__ = ["ANCHOR_PHOTOS", "AnchorPhoto", "anchor_files"]


@dataclass(frozen=True)
class AnchorPhoto:
    source: str  # key of saccade.data.bundled.SOURCES
    relpath: str  # path below the source's folder
    split: Literal["train", "heldout"]

    @property
    def name(self) -> str:
        return f"{self.source}/{self.relpath}"


_PLASMA = "{}/contents/images/2560x1600.jpg"
_ROWS = {  # source -> (training photos, held-out photos)
    "scikit-image": (
        [
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "hubble_deep_field.jpg",
            "motorcycle_left.png",
            "retina.jpg",
            "rocket.jpg",
        ],
        ["ihc.png"],
    ),
    "scikit-learn": (["china.jpg"], ["flower.jpg"]),
    "matplotlib": (["grace_hopper.jpg"], []),
    "lomiri-wallpapers-16.04": (
        [
            "Bridge_by_Sander_Klootwijk.jpg",
            "Dragonfly_by_Bolly.jpg",
            "Picture_0B_by_freespace.jpg",
            "Wine_by_Jakkub_Mede.jpg",
            "free_by_Peter_Nerlich.jpg",
            "friends_by_Aitzol_Berasategi.jpg",
            "greentock_by_Peter_Nerlich.jpg",
            "life_by_Aitzol_Berasategi.jpg",
            "seeding_by_Clements_Engelhardt.jpg",
            "sunset_by_Aitzol_Berasategi.jpg",
        ],
        ["Picture_1A_by_freespace.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg"],
    ),
    "lomiri-wallpapers-20.04": (["Kleiber_by_Lukas_Baubkus.jpg"], []),
    "mate-backgrounds": (
        [f"nature/{n}.jpg" for n in ("Aqua", "Blinds", "Dune", "Garden", "GreenMeadow", "LadyBird", "RainDrops")]
        + ["nature/Storm.jpg", "nature/TwoWings.jpg"],
        ["nature/FreshFlower.jpg", "nature/Wood.jpg", "nature/YellowFlower.jpg"],
    ),
    "plasma-workspace-wallpapers": (
        [_PLASMA.format(n) for n in ("BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "Grey", "Kite")]
        + [_PLASMA.format(n) for n in ("OneStandsOut", "Path", "summer_1am")],
        [_PLASMA.format("ColdRipple"), _PLASMA.format("FallenLeaf")],
    ),
}
_PYPI_FOLDERS = {"scikit-image": "data", "scikit-learn": "datasets/images", "matplotlib": "mpl-data/sample_data"}

ANCHOR_PHOTOS: tuple[AnchorPhoto, ...] = tuple(
    AnchorPhoto(source, f"{_PYPI_FOLDERS[source]}/{name}" if source in _PYPI_FOLDERS else name, split)
    for source, (train, heldout) in _ROWS.items()
    for split, names in (("train", train), ("heldout", heldout))
    for name in names
)


def anchor_files(split: Literal["train", "heldout"], *, debian_root: str | os.PathLike = "/") -> list[Path]:
    """Paths of the anchor's training (38) or held-out (10) photos, in a fixed order."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    paths = []
    for photo in ANCHOR_PHOTOS:
        if photo.split == split:
            path = source_root(photo.source, debian_root) / photo.relpath
            if not path.is_file():
                install = SOURCES[photo.source].install
                raise FileNotFoundError(f"anchor photo {photo.name} is missing: {path}; {install}")
            paths.append(path)
    return paths
