"""The `saccade` command line: smoke tests of each subcommand through `main(argv)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saccade.cli import main

FLOPS = json.loads((Path(__file__).parent / "data" / "reference" / "flops.json").read_text())


def _table_rows(text: str) -> dict[str, list[str]]:
    """Rows of a printed table keyed by their first cell (lines that start with a number)."""
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[cells[0]] = cells
    return rows


def test_flops_prints_the_paper_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "canvit-b16"]) == 0
    out = capsys.readouterr().out
    assert "95,157,248 parameters" in out
    rows = _table_rows(out)
    # Columns: G, canvas tokens, glimpse GFLOPs, + probe GFLOPs, read GFLOPs, write GFLOPs.
    assert {grid: rows[grid][3] for grid in ("8", "16", "32", "64")} == {
        "8": "13.8",
        "16": "14.2",
        "32": "15.8",
        "64": "22.1",
    }
    assert [rows[grid][2] for grid in ("8", "16", "32", "64")] == ["13.8", "14.1", "15.5", "20.8"]
    assert rows["32"][1] == "1040"
    assert rows["32"][4] == rows["32"][5] == "0.526"


def test_flops_defaults_to_the_flagship(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--grids", "32"]) == 0
    assert capsys.readouterr().out.startswith("canvit-b16: 95,157,248 parameters")


def test_flops_json_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "canvit-s16", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["canvit"]
    assert table["parameters"] == FLOPS["parameter_counts"]["canvit-s16"]["parameters"]
    official = {row["canvas_grid"]: row for row in FLOPS["canvit"] if row["config"].startswith("canvit-s16")}
    for row in table["rows"]:
        expected = official[row["canvas_grid"]]
        assert row["total"] == expected["glimpse_flops"]
        assert row["total_plus_probe"] == expected["glimpse_plus_probe_flops"]
        assert row["read_flops"] == expected["read_flops"]


def test_flops_teacher_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--teacher", "dinov3-vitb16", "--input-px", "128", "256", "512"]) == 0
    out = capsys.readouterr().out
    assert "canvit" not in out
    rows = _table_rows(out)
    assert {px: rows[px][1:3] for px in rows} == {
        "128": ["69", "12.0"],
        "256": ["261", "47.1"],
        "512": ["1029", "215.0"],
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flops", "--glimpse-px", "100"], "glimpse_px must be a positive multiple of the patch size 16, got 100"),
        (["flops", "--grids", "8", "0"], "canvas_grid must be a positive int, got 0"),
        (["flops", "--num-classes", "0"], "num_classes must be a positive int, got 0"),
        (["flops", "--teacher", "dinov3-vits16", "--input-px", "130"], "input_px must be a positive multiple"),
    ],
)
def test_flops_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"saccade flops: error: {message}" in captured.err


def test_unknown_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "canvit-x99"]) == 2
    assert (
        "saccade flops: error: --model canvit-x99: no such checkpoint folder, and not a preset"
        in capsys.readouterr().err
    )


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--teacher", "dinov3-vitx"]) == 2  # a Literal: tyro refuses it before any work
    assert "dinov3-vitx" in capsys.readouterr().err


def test_overview_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from saccade.cli import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_flops_reads_a_checkpoint_folder_too(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import saccade

    saccade.save_pretrained(saccade.CanViT(saccade.preset("canvit-tiny")), tmp_path / "tiny")
    assert main(["flops", "--model", str(tmp_path / "tiny"), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)["canvit"]
    assert main(["flops", "--model", "canvit-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["canvit"]["rows"] == from_folder["rows"]


def test_the_overview_does_not_import_torch():
    """`saccade --help` answers without importing torch (the package's names load on first use)."""
    import subprocess
    import sys

    code = "import sys; from saccade.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
