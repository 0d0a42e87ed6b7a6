"""User errors on the command line: one line `saccade <command>: error: ...` on stderr, no traceback (issue 18).

Every case fails before any heavy work (no training); exit 2 for bad input, 1 for a failure at run time.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from saccade.cli import main
from saccade.episode_config import EpisodeConfig
from saccade.model.checkpoint import save_pretrained
from tests.datasets.test_cli_data import needs_default_sources
from tests.envs.fixtures import tiny_model
from tests.evaluate.fakes import write_background_folder, write_fake_fashion

UNWRITABLE = "/sys/saccade-cli-test"  # sysfs refuses new entries, even to root (chmod does not stop root)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 78643200000 bytes. Error code 12 (Cannot allocate memory)"
)


def _sysfs_refuses_writes() -> bool:
    try:
        Path(UNWRITABLE).mkdir()
    except OSError:
        return True
    Path(UNWRITABLE).rmdir()
    return False


NEEDS_UNWRITABLE = pytest.mark.skipif(not _sysfs_refuses_writes(), reason="needs a read-only /sys")

HEAVY_WORK = (  # where each command starts its real work (data, models, training, writing)
    "saccade.data.specs.open_distillation",
    "saccade.pretrain.trainer.pretrain",
    "saccade.evaluate.pipeline.run_evaluation",
    "saccade.evaluate.distillation.evaluate_distillation",
    "saccade.data.bundled.bundled_scenes",
    "saccade.teachers.load_teacher",
    "saccade.policy_training.run.run_train_policy",
    "saccade.policy_training.run.run_evaluate_policy",
    "saccade.export.export_glimpse_step",
    "saccade.bench.run_bench",
    "saccade.demo.run_demo",
    "saccade.demo.make_start_file",
)


@pytest.fixture()
def up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting the real work fails the test: the error must come from the checks before it."""

    def started(*args, **kwargs):
        raise AssertionError("the command started its work: the error was not caught up front")

    for target in HEAVY_WORK:
        monkeypatch.setattr(target, started)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Placeholders of the argv templates: a checkpoint, broken checkpoints, a plain file, broken settings files."""
    root = tmp_path_factory.mktemp("cli-errors")
    save_pretrained(tiny_model(), root / "model")
    (root / "empty").mkdir()
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_text((root / "model" / "config.json").read_text())
    (root / "file").write_text("not a folder")
    (root / "bad.toml").write_text("steps = 3\nlr = \n")
    (root / "bad.json").write_text('{"num_glimpses": 3,\n "seed": }')
    (root / "list.json").write_text("[1, 2]")
    return {name: str(root / name) for name in ("model", "empty", "no-weights", "file")} | {
        "tmp": str(root),
        "bad_toml": str(root / "bad.toml"),
        "bad_json": str(root / "bad.json"),
        "list_json": str(root / "list.json"),
    }


def _error_line(argv: list[str], capsys: pytest.CaptureFixture[str], *, code: int) -> str:
    """Run `saccade argv`; check the exit code and that stderr is one error line; return that line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"saccade {argv[0]}: error: ")
    return lines[0]


MISSING_INPUTS = [
    (
        "export --model {tmp}/missing --output-dir {tmp}/x",
        "--model {tmp}/missing: no such checkpoint folder, and not a preset",
    ),
    (
        "export --model {empty} --output-dir {tmp}/x",
        "--model {empty}: the folder lacks config.json and model.safetensors",
    ),
    ("export --model {no-weights} --output-dir {tmp}/x", "--model {no-weights}: the folder lacks model.safetensors"),
    ("export --model {file} --output-dir {tmp}/x", "--model {file}: is a file, expected a checkpoint folder"),
    ("pretrain --data synthetic --val-data {tmp}/missing", "--val-data {tmp}/missing: no such shard folder"),
    ("evaluate --model {tmp}/missing --quiet", "--model {tmp}/missing: no such checkpoint folder, and not a preset"),
    ("evaluate --model {no-weights} --quiet", "--model {no-weights}: the folder lacks model.safetensors"),
    ("evaluate --model canvit-tiny --seg-probe {tmp}/p.safetensors", "--seg-probe {tmp}/p.safetensors: no such file"),
    ("evaluate --model canvit-tiny --cls-probe {tmp}", "--cls-probe {tmp}: the folder lacks config.json and model"),
    ("evaluate-distillation --model {model} {tmp}/missing", "--model {tmp}/missing: no such checkpoint folder"),
    ("train-policy --model {tmp}/missing --data synthetic", "--model {tmp}/missing: no such checkpoint folder"),
    ("train-policy --model {empty} --data synthetic", "--model {empty}: the folder lacks config.json"),
    ("evaluate-policy --model {tmp}/missing --policy {file}", "--model {tmp}/missing: no such checkpoint folder"),
    ("evaluate-policy --model {model} --policy {tmp}/p.safetensors", "--policy {tmp}/p.safetensors: no such file"),
]

OUTPUT_IS_A_FILE = [
    ("pretrain --data synthetic --output-dir {file}", "--output-dir {file}: is an existing file, expected a folder"),
    ("export-features --output-dir {file}", "--output-dir {file}: is an existing file, expected a folder"),
    ("export --model canvit-tiny --output-dir {file}/x", "--output-dir {file}/x: {file} is a file, so no folder"),
    ("export --model canvit-tiny --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("evaluate --model canvit-tiny --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("evaluate-distillation --model {model} --output-dir {file}/r", "--output-dir {file}/r: {file} is a file"),
    ("train-policy --model {model} --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("evaluate-policy --model {model} --policy {file} --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("bench --quick --output-dir {file}/sub", "--output-dir {file}/sub: {file} is a file, so no folder"),
    ("demo --quick --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("demo --make-start --output-dir {file}", "--output-dir {file}: is an existing file"),
    ("scenes --preview {file}/sheet.png", "--preview {file}/sheet.png: {file} is a file, so no folder"),
]

BAD_SETTINGS_FILES = [
    ("pretrain --data synthetic --config {tmp}/nope.toml", "--config {tmp}/nope.toml: no such file"),
    ("demo --config {tmp}/nope.toml", "--config {tmp}/nope.toml: no such file"),
    ("evaluate --model canvit-tiny --config {tmp}/nope.json", "--config {tmp}/nope.json: no such file"),
    ("pretrain --data synthetic --config {tmp}", "--config {tmp}: is a folder, expected a file"),
    ("pretrain --data synthetic --config {bad_toml}", "--config {bad_toml}: not valid TOML: Invalid value (at line 2"),
    (
        "evaluate --model canvit-tiny --config {bad_json}",
        "--config {bad_json}: not valid JSON: Expecting value: line 2",
    ),
    ("demo --config {list_json}", "--config {list_json}: expected a table of settings, got a list"),
    ("demo --quick --make-start", "--quick and --make-start pick different presets: give one"),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    MISSING_INPUTS + OUTPUT_IS_A_FILE + BAD_SETTINGS_FILES,
    ids=[argv for argv, _ in MISSING_INPUTS + OUTPUT_IS_A_FILE + BAD_SETTINGS_FILES],
)
def test_bad_paths_are_one_line(argv: str, message: str, files: dict[str, str], up_front, capsys) -> None:
    line = _error_line(argv.format_map(files).split(), capsys, code=2)
    assert message.format_map(files) in line


@NEEDS_UNWRITABLE
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (f"pretrain --data synthetic --output-dir {UNWRITABLE}", f"--output-dir {UNWRITABLE}: cannot write into"),
        (f"export-features --output-dir {UNWRITABLE}", f"--output-dir {UNWRITABLE}: cannot write into"),
        (f"export --model canvit-tiny --output-dir {UNWRITABLE}", f"--output-dir {UNWRITABLE}: cannot write into"),
    ],
    ids=["pretrain", "export-features", "export"],
)
def test_unwritable_output_is_one_line(argv: str, message: str, up_front, capsys) -> None:
    assert message in _error_line(argv.split(), capsys, code=2)


@pytest.mark.parametrize(
    "command",
    [
        "pretrain --data synthetic --output-dir {tmp}/out",
        "evaluate --model canvit-tiny --output-dir {tmp}/out",
        "export-features --output-dir {tmp}/out",
    ],
    ids=["pretrain", "evaluate", "export-features"],
)
@pytest.mark.parametrize(
    ("device", "message"),
    [
        pytest.param("cuda", "--device cuda: CUDA is not available on this machine (torch ", marks=NO_CUDA),
        pytest.param("cuda:1", "--device cuda:1: CUDA is not available", marks=NO_CUDA),
        ("tpu9", "--device tpu9: not a device; expected cpu, cuda, cuda:N (N a GPU index), mps or xpu"),
        ("meta", "--device meta: saccade does not run on 'meta' devices"),
    ],
    ids=["cuda", "cuda:1", "tpu9", "meta"],
)
def test_unavailable_device_is_one_line(command: str, device: str, message: str, files, up_front, capsys) -> None:
    argv = [*command.format_map(files).split(), "--device", device, "--quiet"]
    assert message in _error_line(argv, capsys, code=2)


@pytest.mark.parametrize(
    ("spec", "available", "message"),
    [
        ("cuda", False, "--device cuda: CUDA is not available on this machine (no GPU found); use --device cpu"),
        ("cuda:3", True, "--device cuda:3: this machine has 1 GPU(s), numbered 0 to 0"),
    ],
)
def test_device_on_a_cuda_build(spec: str, available: bool, message: str, monkeypatch) -> None:
    """The CUDA branches of the check, on a machine that may have no GPU: torch says what it has."""
    from saccade.cli._checks import checked_device

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError) as error:
        checked_device(spec)
    assert str(error.value) == message
    if available:
        assert checked_device("cuda:0") == "cuda:0"


@needs_default_sources
def test_preview_into_a_missing_folder_creates_it(tmp_path: Path, capsys) -> None:
    preview = tmp_path / "new" / "folders" / "sheet.png"
    assert main(["scenes", "--split", "heldout", "--preview", str(preview), "--size-px", "16"]) == 0
    assert preview.is_file()
    assert f"preview: {preview}" in capsys.readouterr().out


def test_eg_c2f_on_a_canvas_it_cannot_tile_fails_before_training(files, up_front, capsys) -> None:
    from saccade.evaluate.pipeline import EvaluateRunConfig

    argv = ["evaluate", "--model", "canvit-tiny", "--episode.canvas-grid", "7", "--episode.num-glimpses", "5"]
    argv += ["--output-dir", f"{files['tmp']}/eval"]
    line = _error_line(argv, capsys, code=2)
    assert "EG-C2F over 5 glimpses reaches quadtree level 1" in line
    assert "power-of-two canvas grid G >= 2^level = 2, got G x G = 7 x 7" in line
    # A classification-only run has no segmentation probe: EG-C2F is skipped, so the grid is fine.
    episode = EpisodeConfig(canvas_grid=7, num_glimpses=5)
    config = EvaluateRunConfig(model="canvit-tiny", benchmark="fashion-cls", episode=episode)
    assert "entropy_coarse_to_fine" not in config.eval_config.policies
    assert config.policy_notes == (
        "EG-C2F skipped: it needs a decoder of per-cell class scores from the canvas (e.g. a segmentation probe), "
        "which was not given",
    )


@pytest.mark.parametrize(
    ("metadata", "what"),
    [
        ({"config": "{not json", "format_version": "1"}, "config"),
        ({"config": "{}", "format_version": "one"}, "version"),
    ],
    ids=["metadata-not-json", "version-not-int"],
)
def test_broken_probe_file_is_one_line(metadata: dict, what: str, tmp_path: Path, capsys) -> None:
    probe = tmp_path / f"{what}.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(probe), metadata={"format": "saccade-probe", "info": "{}", **metadata})
    argv = ["evaluate", "--model", "canvit-tiny", "--benchmark", "fashion-seg", "--seg-probe", str(probe)]
    argv += ["--fashion-root", str(write_fake_fashion(tmp_path / "fashion", num_train=4, num_test=4))]
    argv += ["--backgrounds", str(write_background_folder(tmp_path / "photos", 1)), "--cache", str(tmp_path / "c")]
    argv += ["--num-train", "4", "--num-test", "4", "--episode.canvas-grid", "4", "--episode.glimpse-px", "32"]
    argv += ["--episode.num-glimpses", "2", "--quiet", "--output-dir", str(tmp_path / "out")]
    assert str(probe) in _error_line(argv, capsys, code=2)


@pytest.mark.parametrize("change", [["--episode.canvas-grid", "8"], ["--model", "canvit-t16d6"]], ids=["grid", "model"])
def test_resuming_with_another_model_is_one_line(change: list[str], tmp_path: Path, capsys) -> None:
    argv = ["pretrain", "--data", "synthetic", "--model", "canvit-tiny", "--episode.canvas-grid", "4"]
    argv += ["--episode.glimpse-px", "32", "--episode.scene-px", "64"]
    argv += ["--batch-size", "2", "--standardizer-samples", "64", "--device", "cpu", "--quiet"]
    argv += ["--output-dir", str(tmp_path / "run")]
    assert main([*argv, "--steps", "1"]) == 0
    capsys.readouterr()
    line = _error_line([*argv, *change, "--steps", "2"], capsys, code=2)
    assert "checkpoint" in line


@pytest.mark.parametrize(
    ("argv", "target", "error", "message"),
    [
        (
            "pretrain --data synthetic --model canvit-tiny --episode.canvas-grid 4 --batch-size 2 --output-dir {tmp}/o",
            "saccade.pretrain.trainer.pretrain",
            RuntimeError(CPU_OOM),
            "out of memory: a 78.6 GB allocation failed; the batch is too large for this machine, lower --batch-size",
        ),
        (
            "evaluate --model canvit-tiny --output-dir {tmp}/eval",
            "saccade.evaluate.pipeline.run_evaluation",
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of"),
            "out of memory: a 20.00 GiB allocation failed; the batch is too large for this machine, lower --batch-size",
        ),
        (
            "export --model canvit-tiny --output-dir {tmp}/x --episode.glimpse-px 32 --episode.canvas-grid 4",
            "saccade.export.export_glimpse_step",
            RuntimeError(CPU_OOM),
            "lower --batch-sizes",
        ),
        (
            "evaluate-distillation --model {model}",
            "saccade.evaluate.distillation.evaluate_distillation",
            MemoryError(),
            "out of memory: the run does not fit this machine at these sizes",
        ),
    ],
    ids=["pretrain-cpu", "evaluate-cuda", "export", "no-batch-flag"],
)
def test_out_of_memory_names_the_batch_flag(argv, target, error, message, files, monkeypatch, capsys) -> None:
    def run_out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, run_out_of_memory)
    assert message in _error_line(argv.format_map(files).split(), capsys, code=1)


def test_os_errors_at_run_time(files, monkeypatch, capsys) -> None:
    """A path error is the user's (exit 2); another OSError on a file is a failure at run time (exit 1)."""
    argv = ["evaluate", "--model", "canvit-tiny", "--output-dir", f"{files['tmp']}/eval"]
    for error, code, message in [
        (OSError(errno.ENOSPC, "No space left on device", "/data/run/x.pt"), 1, "/data/run/x.pt: No space left"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/run"), 2, "/data/run: Permission denied"),
        (FileNotFoundError("no learned policy file at /p.safetensors"), 2, "no learned policy file at /p.safetensors"),
    ]:
        monkeypatch.setattr("saccade.evaluate.pipeline.run_evaluation", lambda *args, error=error, **kw: _raise(error))
        assert message in _error_line(argv, capsys, code=code)


def _raise(error: Exception) -> None:
    raise error


def test_our_type_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys) -> None:
    from saccade.cli import _tables, flops
    from saccade.policies._common import check_generator

    monkeypatch.setattr(flops, "run_flops", lambda args: check_generator(0))
    assert "generator must be a torch.Generator or None, got int" in _error_line(["flops"], capsys, code=2)
    monkeypatch.setattr(flops, "run_flops", lambda args: _tables.print_table(["a"], [[1]]))  # len(1): a bug
    with pytest.raises(TypeError, match="has no len"):
        main(["flops"])
    monkeypatch.setattr(flops, "run_flops", lambda args: _raise(RuntimeError("shape mismatch in step")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["flops"])


def test_settings_file_fields_still_reach_the_config(tmp_path: Path, capsys) -> None:
    """--config TOML read by the shared reader: its fields are validated by the config (one line, exit 2)."""
    config = tmp_path / "pretrain.toml"
    config.write_text('model = "canvit-tiny"\nbatch_size = 0\n')
    line = _error_line(["pretrain", "--data", "synthetic", "--config", str(config)], capsys, code=2)
    assert "PretrainConfig.batch_size must be a positive int, got 0" in line
