"""Deployment: a glimpse step exported with torch.export and to ONNX matches the eager model, at two batch sizes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from saccade import CanViT, CanViTForPretraining, RecurrentState, Viewpoint, preset
from saccade.cli import main
from saccade.export import GlimpseStep, check_parity, export_glimpse_step, export_program, load_program, save_program
from saccade.export.pipeline import format_from_suffix, load_initial_state
from saccade.export.program import step_metadata

GLIMPSE_PX, CANVAS_GRID = 32, 4
BATCH_SIZES = (1, 3)
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def step() -> GlimpseStep:
    torch.manual_seed(0)
    model = CanViT(preset("canvit-tiny")).eval()
    return GlimpseStep(model, glimpse_px=GLIMPSE_PX, canvas_grid=CANVAS_GRID)


@pytest.fixture(scope="module")
def readout_step() -> GlimpseStep:
    torch.manual_seed(1)
    model = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=24, teacher_patch_grid=CANVAS_GRID).eval()
    return GlimpseStep(model, glimpse_px=GLIMPSE_PX, canvas_grid=CANVAS_GRID)


@pytest.fixture(scope="module")
def program(step):
    return export_program(step)


def test_step_matches_the_model(readout_step: GlimpseStep) -> None:
    inputs = readout_step.example_inputs(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        canvas, _, patches, teacher_cls = readout_step(*inputs)
        model = readout_step.model
        state = RecurrentState(canvas=inputs[3], recurrent_cls=inputs[4], num_canvas_registers=4)
        out = model(inputs[0], state, Viewpoint(centers=inputs[1], scales=inputs[2]))
    assert_close(canvas, out.state.canvas, rtol=0, atol=0)
    assert_close(patches, model.predict_teacher_patches(out.state), rtol=0, atol=0)
    assert patches.shape == (2, CANVAS_GRID**2, 24) and teacher_cls.shape == (2, 24)
    assert readout_step.output_names == ("new_canvas", "new_recurrent_cls", "teacher_patches", "teacher_cls")


def test_torch_export_matches_eager_at_two_batch_sizes(step: GlimpseStep, program, tmp_path) -> None:
    report = check_parity(step, program.module(), runtime="torch-export", tolerance=1e-5, batch_sizes=BATCH_SIZES)
    assert report.ok, report.summary()
    assert set(report.max_abs_diff) == set(BATCH_SIZES)
    # Round trip through a .pt2 archive, metadata included.
    path = save_program(program, tmp_path / "step.pt2", metadata=step_metadata(step))
    loaded, metadata = load_program(path)
    assert metadata["glimpse_px"] == GLIMPSE_PX and metadata["canvas_grid"] == CANVAS_GRID
    assert metadata["inputs"]["canvas"] == ["B", 4 + CANVAS_GRID**2, 96]
    inputs = step.example_inputs(5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = step(*inputs)
    for a, b in zip(expected, loaded.module()(*inputs), strict=True):
        assert_close(b, a, rtol=0, atol=1e-5)
    # Fixed sizes stay fixed: the program's input guards name the offending dimension.
    with pytest.raises(AssertionError, match=r"glimpse\.size\(\)\[2\] == 32"):
        loaded.module()(torch.zeros(5, 3, 64, 64), *inputs[1:])


def test_eager_model_still_runs_after_export(step: GlimpseStep, program) -> None:
    # Tracing must leave no traced tensors behind in the model (e.g. in its canvas RoPE cache).
    inputs = step.example_inputs(2)
    with torch.no_grad():
        first, second = step(*inputs), step(*inputs)
    assert_close(first[0], second[0], rtol=0, atol=0)


def test_export_after_evaluation_under_inference_mode(tmp_path) -> None:
    """Evaluate-then-export: a step run under inference_mode leaves nothing behind that torch.export refuses."""
    torch.manual_seed(0)
    step = GlimpseStep(CanViT(preset("canvit-tiny")).eval(), glimpse_px=GLIMPSE_PX, canvas_grid=CANVAS_GRID)
    inputs = step.example_inputs(2)
    with torch.inference_mode():
        expected = step(*inputs)
    program = export_program(step)
    for a, b in zip(expected, program.module()(*inputs), strict=True):
        assert_close(b, a, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def onnx_export(readout_step: GlimpseStep, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "step.onnx"
    return export_glimpse_step(readout_step, path, batch_sizes=BATCH_SIZES)


def test_onnx_matches_eager_at_two_batch_sizes(readout_step: GlimpseStep, onnx_export) -> None:
    from saccade.export.onnx import OnnxStep

    assert onnx_export.parity.ok, onnx_export.parity.summary()
    assert set(onnx_export.parity.max_abs_diff) == set(BATCH_SIZES)
    assert onnx_export.parity.worst <= 1e-4
    runner = OnnxStep(onnx_export.path)
    assert runner.input_names == readout_step.input_names
    assert runner.output_names == readout_step.output_names
    shapes = [node.shape for node in runner.session.get_inputs()]
    assert all(shape[0] == "batch" for shape in shapes), shapes
    assert runner.metadata["readouts"] is True
    # The initial state beside the model starts an episode: broadcast over the batch.
    initial = load_file(onnx_export.initial_state_path)
    canvas, _ = readout_step.initial_state(1)
    assert_close(initial["canvas"], canvas, rtol=0, atol=0)
    inputs = readout_step.example_inputs(2)
    first = (*inputs[:3], initial["canvas"].expand(2, -1, -1), initial["recurrent_cls"].expand(2, -1, -1))
    with torch.no_grad():
        expected = readout_step(*first)
    for a, b in zip(expected, runner(*first), strict=True):
        assert_close(b, a, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"glimpse must be \[B, 3, 32, 32\]"):
        runner(torch.zeros(2, 3, 16, 16), *inputs[1:])


def test_readme_deployment_examples_run(onnx_export, monkeypatch, capsys) -> None:
    text = README.read_text()
    section = text[text.index("## Deployment") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "the Deployment section has an onnxruntime and a streaming example"
    monkeypatch.chdir(onnx_export.path.parent)  # step.onnx and its step.onnx.init.safetensors, as the README writes
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert f"(1, {4 + CANVAS_GRID**2}, 96)" in printed
    assert "2 torch.Size([1, 68, 96])" in printed


def test_bad_step_inputs_are_named(step: GlimpseStep) -> None:
    glimpse, centers, scales, canvas, cls = step.example_inputs(2)
    with pytest.raises(ValueError, match=r"glimpse must be \[B, 3, 32, 32\].*got \(2, 3, 64, 64\)"):
        step(torch.zeros(2, 3, 64, 64), centers, scales, canvas, cls)
    with pytest.raises(ValueError, match=r"canvas must be \[B, 20, 96\].*got \(2, 68, 96\)"):
        step(glimpse, centers, scales, torch.zeros(2, 68, 96), cls)
    with pytest.raises(ValueError, match=r"recurrent_cls must be \[B, 1, 64\]"):
        step(glimpse, centers, scales, canvas, cls[:, 0])
    with pytest.raises(ValueError, match="centers has batch 1, glimpse has batch 2"):
        step(glimpse, centers[:1], scales, canvas, cls)
    with pytest.raises(TypeError, match="canvas must be float32"):
        step(glimpse, centers, scales, canvas.double(), cls)


BAD_VIEWPOINTS = {
    "scale 0": (0.0, 0.0, r"Viewpoint\.scales must lie in \(0, 1\]"),
    "scale -1": (0.0, -1.0, r"Viewpoint\.scales must lie in \(0, 1\]"),
    "scale NaN": (0.0, float("nan"), r"Viewpoint\.scales must lie in \(0, 1\]"),
    "scale 2": (0.0, 2.0, r"Viewpoint\.scales must lie in \(0, 1\]"),
    "centre NaN": (float("nan"), 0.5, r"Viewpoint\.centers must be finite"),
    "centre inf": (float("inf"), 0.5, r"Viewpoint\.centers must be finite"),
}


def _with_bad_viewpoint(inputs: tuple[torch.Tensor, ...], case: str) -> tuple[torch.Tensor, ...]:
    glimpse, centers, scales, canvas, cls = inputs
    center, scale, _ = BAD_VIEWPOINTS[case]
    centers, scales = centers.clone(), scales.clone()
    centers[1, 0], scales[1] = center, scale
    return glimpse, centers, scales, canvas, cls


@pytest.mark.parametrize("case", sorted(BAD_VIEWPOINTS))
def test_exported_program_rejects_what_the_eager_step_rejects(step: GlimpseStep, program, case) -> None:
    bad = _with_bad_viewpoint(step.example_inputs(2), case)
    message = BAD_VIEWPOINTS[case][2]
    with pytest.raises(ValueError, match=message):
        step(*bad)
    with pytest.raises(RuntimeError, match=message):  # a runtime assert in the graph: no Python at run time
        program.module()(*bad)


@pytest.mark.parametrize("case", sorted(BAD_VIEWPOINTS))
def test_onnx_runner_rejects_what_the_eager_step_rejects(readout_step: GlimpseStep, onnx_export, case) -> None:
    from saccade.export.onnx import OnnxStep

    bad = _with_bad_viewpoint(readout_step.example_inputs(2), case)
    with pytest.raises(ValueError, match=BAD_VIEWPOINTS[case][2]):
        OnnxStep(onnx_export.path)(*bad)


def test_each_export_has_its_own_initial_state(step: GlimpseStep, readout_step: GlimpseStep, onnx_export) -> None:
    """step.onnx and step.pt2 in one folder: each keeps its own fresh state, and a swapped file is refused."""
    from saccade.export.onnx import OnnxStep

    folder = onnx_export.path.parent
    pt2 = export_glimpse_step(step, folder / "step.pt2", batch_sizes=(1,))
    assert {onnx_export.initial_state_path.name, pt2.initial_state_path.name} == {
        "step.onnx.init.safetensors",
        "step.pt2.init.safetensors",
    }
    runner = OnnxStep(onnx_export.path)
    for (canvas, recurrent_cls), expected in (
        (runner.initial_state(), readout_step.initial_state(1)),
        (load_initial_state(pt2.path, load_program(pt2.path)[1]), step.initial_state(1)),
    ):
        assert_close(canvas, expected[0], rtol=0, atol=0)
        assert_close(recurrent_cls, expected[1], rtol=0, atol=0)
    swapped = folder / "swapped"
    swapped.mkdir()
    shutil.copy(onnx_export.path, swapped / "step.onnx")
    shutil.copy(pt2.initial_state_path, swapped / "step.onnx.init.safetensors")
    with pytest.raises(ValueError, match=r"step\.onnx\.init\.safetensors does not belong to .*step\.onnx"):
        OnnxStep(swapped / "step.onnx").initial_state()


def test_bad_step_construction() -> None:
    model = CanViT(preset("canvit-tiny"))
    with pytest.raises(ValueError, match="readouts=True needs a CanViTForPretraining"):
        GlimpseStep(model, glimpse_px=32, canvas_grid=4, readouts=True)
    with pytest.raises(ValueError, match="multiple of the 16 px patch, got 30"):
        GlimpseStep(model, glimpse_px=30, canvas_grid=4)
    with pytest.raises(TypeError, match="CanViT or CanViTForPretraining"):
        GlimpseStep(torch.nn.Linear(2, 2), glimpse_px=32, canvas_grid=4)


def test_formats(step: GlimpseStep, tmp_path) -> None:
    assert format_from_suffix("a/step.onnx") == "onnx"
    assert format_from_suffix("step.pt2") == "torch-export"
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_from_suffix("step.bin")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_glimpse_step(step, tmp_path / "step.bin", format="tflite")


def test_cli_export(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "glimpse_step.pt2"
    argv = ["export", "--model", "canvit-tiny", "--format", "torch-export", "--episode.glimpse-px", "32"]
    assert main([*argv, "--episode.canvas-grid", "4", "--output-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "ok" in printed
    _, metadata = load_program(out)
    assert metadata["canvas_grid"] == 4 and (tmp_path / "glimpse_step.pt2.init.safetensors").is_file()
    assert metadata["canvit_config"]["backbone_name"] == "vit-tiny"


def test_cli_export_errors(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", "no-such-model", "--output-dir", str(tmp_path)]) == 2
    assert "no such checkpoint folder, and not a preset" in capsys.readouterr().err
    argv = ["export", "--model", "canvit-tiny", "--episode.glimpse-px", "30", "--output-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "multiple of the 16 px patch" in capsys.readouterr().err
    assert main(["export", "--model", "canvit-tiny", "--format", "tflite", "--output-dir", str(tmp_path)]) == 2
    assert "tflite" in capsys.readouterr().err  # a Literal: a usage error before any work
