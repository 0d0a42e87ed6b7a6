"""saccade.provenance: what produced a results file, and the commands' results files record it."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import saccade
import saccade.provenance as provenance_module
from saccade.cli import main
from saccade.provenance import provenance

REPOSITORY = Path(saccade.__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_the_fields_name_versions_device_threads_and_seeds():
    record = provenance(seeds={"seed": 3, "probe_seed": 4}, device="cpu", threads=2)
    assert set(record) == {"git_commit", "git_dirty", "versions", "device", "threads", "seeds"}
    assert record["versions"] == {
        "saccade": saccade.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    assert (record["device"], record["threads"], record["seeds"]) == ("cpu", 2, {"seed": 3, "probe_seed": 4})
    assert provenance(seeds={})["threads"] == torch.get_num_threads()
    json.dumps(record)  # a results file takes it as it is


@needs_git
def test_a_checkout_records_its_commit_and_whether_it_is_dirty():
    if not (REPOSITORY / ".git").exists():
        pytest.skip("saccade is not imported from a git checkout")
    record = provenance(seeds={})
    assert record["git_commit"] == _git("rev-parse", "HEAD", cwd=REPOSITORY)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=REPOSITORY)
    assert record["git_dirty"] is bool(status)


@needs_git
def test_outside_a_checkout_holding_the_package_only_the_version_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance_module, "_PACKAGE", tmp_path)  # not a repository
    assert (provenance(seeds={})["git_commit"], provenance(seeds={})["git_dirty"]) == (None, None)
    _git("init", "-q", cwd=tmp_path)  # a repository that does not track the package (a venv inside a project)
    (tmp_path / "other.txt").write_text("x")
    _git("add", "other.txt", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x", cwd=tmp_path)
    record = provenance(seeds={})
    assert (record["git_commit"], record["git_dirty"]) == (None, None)
    assert record["versions"]["saccade"] == saccade.__version__


def test_bench_json_records_provenance(tmp_path):
    assert main(["bench", "--quick", "--no-measure-memory", "--grids", "2", "--output-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "bench.json").read_text())["provenance"]
    assert record["seeds"] == {"seed": 0} and record["device"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__


def test_the_pretraining_summary_records_provenance(tmp_path):
    argv = ["pretrain", "--data", "synthetic", "--model", "canvit-tiny", "--episode.canvas-grid", "4"]
    argv += ["--episode.glimpse-px", "32", "--episode.scene-px", "64", "--batch-size", "2"]
    argv += ["--standardizer-samples", "64", "--device", "cpu", "--quiet", "--threads", "1", "--seed", "5"]
    assert main([*argv, "--steps", "1", "--output-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "summary.json").read_text())["provenance"]
    assert (record["seeds"], record["device"], record["threads"]) == ({"seed": 5}, "cpu", 1)
    assert record["versions"]["saccade"] == saccade.__version__
