"""The extra training images of the data-scarce recipe: disjoint from the anchor's photos, clear errors when missing."""

from __future__ import annotations

import hashlib

import pytest

from saccade.data.anchor_photos import ANCHOR_PHOTOS, anchor_files
from saccade.data.extra_photos import EXTRA_PHOTOS, extra_files


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_images_are_new_and_listed_once():
    names = [image.name for image in EXTRA_PHOTOS]
    assert len(names) == len(set(names)) == 71
    assert sum(image.kind == "photo" for image in EXTRA_PHOTOS) == 20
    anchor_names = {photo.name for photo in ANCHOR_PHOTOS}
    assert not set(names) & anchor_names


def test_bad_kinds_and_missing_packages_are_named(tmp_path):
    with pytest.raises(ValueError, match="kinds"):
        extra_files(("video",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kinds"):
        extra_files(())
    with pytest.raises(FileNotFoundError, match="apt-get install"):
        extra_files(("art",), debian_root=tmp_path)


def test_no_file_is_a_heldout_photo():
    try:
        extra, heldout = extra_files(), anchor_files("heldout")
    except (FileNotFoundError, ModuleNotFoundError) as missing:
        pytest.skip(str(missing))
    assert len(extra) == 71 and not {p.resolve() for p in extra} & {p.resolve() for p in heldout}
    assert not {_digest(p) for p in extra} & {_digest(p) for p in heldout}
