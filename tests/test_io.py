"""saccade._io: atomic writes never leave a half-written target or a temporary file; the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from saccade._io import CACHE_ENV, atomic_write, cache_dir


def test_atomic_write_replaces_the_target(tmp_path):
    target = tmp_path / "file.json"
    target.write_text("old")
    assert atomic_write(target, lambda tmp: tmp.write_text("new")) == target
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_atomic_write_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    seen = []

    def half_then_fail(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".file.bin.") and seen[0].suffix == ".tmp"


def test_atomic_write_interrupted_without_a_previous_file_leaves_nothing(tmp_path):
    def interrupted(tmp: Path) -> None:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.pt", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_the_umask_mode_even_when_the_writer_narrows_it(tmp_path):
    def owner_only(tmp: Path) -> None:  # as safetensors does
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)

    old_umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a", owner_only)
    finally:
        os.umask(old_umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


def test_cache_dir_argument_then_environment_then_home(tmp_path, monkeypatch):
    assert cache_dir(tmp_path) == tmp_path
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "saccade"
