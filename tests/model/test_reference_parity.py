"""Parity with the authors' implementation: replay the reference episode and match every tensor to 1e-5."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from saccade import CanViTForPretraining, Viewpoint, load_pretrained, sample_glimpse
from saccade.geometry import crop_box_px, glimpse_patch_positions, grid_coords
from saccade.model.rope import RopeTable, apply_rope, rope_periods, rope_table
from saccade.model.schedule import rw_schedule
from tests.conftest import REFERENCE, reference_backbone_specs

pytestmark = pytest.mark.reference
ATOL = 1e-5
LAYOUTS = ("checkpoint_v0.2", "checkpoint_v0.1")


def close(actual, expected, atol=ATOL):
    assert_close(actual, expected, atol=atol, rtol=0)


def load_reference_model(layout: str = "checkpoint_v0.2") -> CanViTForPretraining:
    model = load_pretrained(REFERENCE / layout, backbone_specs=reference_backbone_specs())
    assert isinstance(model, CanViTForPretraining)
    return model


def viewpoint_at(inputs, t: int) -> Viewpoint:
    return Viewpoint(centers=inputs["viewpoint_centers"][t], scales=inputs["viewpoint_scales"][t])


def replay(model: CanViTForPretraining, inputs) -> dict[str, torch.Tensor]:
    """Run the reference episode; returns the recorded quantities stacked over steps."""
    canvit = model.canvit
    state = canvit.init_state(batch_size=2, canvas_grid=8)
    record = {"init_canvas": state.canvas, "init_recurrent_cls": state.recurrent_cls}
    steps: dict[str, list[torch.Tensor]] = {}
    targets_patches = model.teacher_patch_standardizer(inputs["targets_raw_patches"])
    targets_cls = model.teacher_cls_standardizer(inputs["targets_raw_cls"])
    with torch.no_grad():
        for t in range(inputs["viewpoint_scales"].shape[0]):
            viewpoint = viewpoint_at(inputs, t)
            glimpse = sample_glimpse(inputs["scenes"], viewpoint, 32)
            out = canvit(glimpse, state, viewpoint)
            state = out.state
            patches = model.predict_teacher_patches(state)
            cls = model.predict_teacher_cls(state)
            for name, value in {
                "glimpses": glimpse,
                "canvas": state.canvas,
                "recurrent_cls": state.recurrent_cls,
                "glimpse_patches": out.glimpse_patches,
                "vpe_out": out.vpe,
                "vpe_encoding": canvit.vpe(viewpoint),
                "pred_teacher_patches": patches,
                "pred_teacher_cls": cls,
                "pred_teacher_cls_destandardized": model.teacher_cls_standardizer.destandardize(cls),
                "loss_patch_mse": F.mse_loss(patches, targets_patches),
                "loss_cls_mse": F.mse_loss(cls, targets_cls),
                "crop_box_px": crop_box_px(viewpoint, 128),
                "glimpse_patch_positions": glimpse_patch_positions(viewpoint, 2),
            }.items():
                steps.setdefault(name, []).append(value)
    record |= {name: torch.stack(values) for name, values in steps.items()}
    record["pred_teacher_patches_destandardized_last"] = model.teacher_patch_standardizer.destandardize(patches)
    record["targets_patches_standardized"] = targets_patches
    record["targets_cls_standardized"] = targets_cls
    return record


@pytest.mark.parametrize("layout", LAYOUTS)
def test_episode_matches_every_recorded_output(reference, layout):
    record = replay(load_reference_model(layout), reference["inputs"])
    expected = reference["outputs"]
    assert set(expected) == set(record), set(expected) ^ set(record)
    for name, value in expected.items():
        close(record[name], value)


def test_both_layouts_hold_identical_weights():
    new, old = load_reference_model("checkpoint_v0.2"), load_reference_model("checkpoint_v0.1")
    old_state = old.state_dict()
    for key, value in new.state_dict().items():
        assert torch.equal(value, old_state[key]), key


def test_trace_per_block(reference):
    """Block outputs, Read/Write deltas and RoPE tables inside steps 0, 1 and 3."""
    model = load_reference_model()
    canvit, traces, inputs = model.canvit, reference["traces"], reference["inputs"]
    config = canvit.config
    for t in (0, 1, 3):
        prefix = f"trace.step{t}."
        viewpoint = viewpoint_at(inputs, t)
        positions = glimpse_patch_positions(viewpoint, 2)
        for name, head_dim in (("backbone", 32), ("canvas", 48)):
            table = rope_table(positions, head_dim, 100.0)
            close(table.cos, traces[prefix + f"glimpse_rope_{name}.cos"])
            close(table.sin, traces[prefix + f"glimpse_rope_{name}.sin"])
        glimpse = sample_glimpse(inputs["scenes"], viewpoint, 32)
        cls = canvit.init_state(batch_size=2, canvas_grid=8).recurrent_cls if t == 0 else None
        x = traces[prefix + "tokens_in"]
        if cls is not None:
            close(canvit._glimpse_stream(glimpse, cls, viewpoint), x)
        canvas = traces[prefix + "canvas_in"]
        backbone_rope = rope_table(positions, 32, 100.0)
        glimpse_rope = rope_table(positions, 48, 100.0)
        canvas_rope = canvit._canvas_rope(8, torch.device("cpu"))
        with torch.no_grad():
            for index, block in enumerate(canvit.backbone.blocks):
                x = block(x, backbone_rope)
                close(x, traces[prefix + f"block{index}.out"])
                if index in config.read_after_blocks:
                    j = config.read_after_blocks.index(index)
                    delta = canvit.canvas_reads[j](x, canvas, q_rope=glimpse_rope, k_rope=canvas_rope)
                    close(delta, traces[prefix + f"read{j}.delta"])
                    x = x + delta
                if index in config.write_after_blocks:
                    j = config.write_after_blocks.index(index)
                    updated = canvit.canvas_writes[j](canvas, x, canvas_rope=canvas_rope, glimpse_rope=glimpse_rope)
                    close(updated - canvas, traces[prefix + f"write{j}.delta"])
                    canvas = updated


def test_canvas_tables(reference):
    traces = reference["traces"]
    positions = grid_coords(8).reshape(-1, 2)
    close(positions, traces["canvas_patch_positions"])
    table = rope_table(positions[None], 48, 100.0)
    close(table.cos[0], traces["canvas_rope.cos"])
    close(table.sin[0], traces["canvas_rope.sin"])


def test_grid_coords_and_rope(reference):
    common = reference["common"]
    for n in (1, 2, 3, 4, 5, 7, 8, 12, 16):
        close(grid_coords(n), common[f"grid_coords.{n}"])
    for head_dim in (4, 8, 16, 32, 64, 128):
        for base in (10, 50, 100):
            close(rope_periods(head_dim, float(base)), common[f"rope_periods.hd{head_dim}.base{base}"])
    table = rope_table(common["rope_example.positions"], 16, 100.0)
    close(table.cos, common["rope_example.hd16.cos"])
    close(table.sin, common["rope_example.hd16.sin"])
    x = common["rope_example.x"][None]  # [1, heads, 3 + 16, 16]
    rotated = apply_rope(x, RopeTable(cos=table.cos[None], sin=table.sin[None]))
    close(rotated[0], common["rope_example.x_rotated"])


def test_sample_glimpse_example(reference):
    common = reference["common"]
    viewpoint = Viewpoint(
        centers=common["sample_example.viewpoint_centers"], scales=common["sample_example.viewpoint_scales"]
    )
    image = common["sample_example.image"]
    for size in (4, 5, 8):
        close(sample_glimpse(image, viewpoint, size), common[f"sample_example.glimpse_{size}px"])
    close(glimpse_patch_positions(viewpoint, 4).reshape(2, 4, 4, 2), common["sample_example.grid_coords_4"])
    close(crop_box_px(viewpoint, 8), common["sample_example.crop_box_px_8"])


def test_standardizer_fit_reproduces_buffers(reference):
    model = load_reference_model()
    inputs = reference["inputs"]
    fresh = CanViTForPretraining(model.config, teacher_dim=48, teacher_patch_grid=8)
    fresh.teacher_patch_standardizer.fit(inputs["standardizer_fit_samples_patches"])
    fresh.teacher_cls_standardizer.fit(inputs["standardizer_fit_samples_cls"])
    for name in ("teacher_patch_standardizer", "teacher_cls_standardizer"):
        ours, theirs = getattr(fresh, name), getattr(model, name)
        close(ours.mean, theirs.mean)
        close(ours.var, theirs.var)


def test_vpe_frequencies_are_the_seed_42_draw():
    model = load_reference_model()
    fresh = CanViTForPretraining(model.config, teacher_dim=48, teacher_patch_grid=8)
    assert torch.equal(fresh.canvit.vpe.frequencies, model.canvit.vpe.frequencies)


def test_schedules_match_official():
    rows = json.loads((REFERENCE / "schedules.json").read_text())["rows"]
    for num_blocks, stride, reads_on, reads, writes in rows:
        assert rw_schedule(num_blocks, stride, reads_on) == (tuple(reads), tuple(writes))


def test_training_step_loss_and_gradients(reference):
    """One TBPTT step (chunks of 2 glimpses, state detached between): loss and every gradient."""
    model = load_reference_model()
    model.train()
    inputs, training = reference["inputs"], reference["training"]
    meta = json.loads((REFERENCE / "training.json").read_text())
    num_glimpses, chunk = meta["num_glimpses"], meta["tbptt_chunk_glimpses"]
    targets_patches = model.teacher_patch_standardizer(inputs["targets_raw_patches"])
    targets_cls = model.teacher_cls_standardizer(inputs["targets_raw_cls"])
    state = model.canvit.init_state(batch_size=2, canvas_grid=8)
    total = 0.0
    for start in range(0, num_glimpses, chunk):
        chunk_loss = torch.zeros(())
        for t in range(start, start + chunk):
            viewpoint = viewpoint_at(inputs, t)
            state = model(sample_glimpse(inputs["scenes"], viewpoint, 32), state, viewpoint).state
            chunk_loss = chunk_loss + F.mse_loss(model.predict_teacher_patches(state), targets_patches)
            chunk_loss = chunk_loss + F.mse_loss(model.predict_teacher_cls(state), targets_cls)
        (chunk_loss / num_glimpses).backward()
        total += chunk_loss.item() / num_glimpses
        state = state.detach()
    close(torch.tensor([total]), training["train.loss"], atol=1e-4)
    params = dict(model.named_parameters())
    norms = torch.stack([params[name].grad.norm() for name in meta["parameter_order"]])
    sums = torch.stack([params[name].grad.sum() for name in meta["parameter_order"]])
    assert_close(norms, training["train.grad_l2_norm"], rtol=1e-4, atol=1e-7)
    assert_close(sums, training["train.grad_sum"], rtol=1e-3, atol=1e-5)
    for key, value in training.items():
        if key.startswith("grad."):
            assert_close(params[key.removeprefix("grad.")].grad, value, rtol=1e-4, atol=1e-6)
