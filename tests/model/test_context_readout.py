"""ContextReadout: starts as the token-wise readout, lets cells use each other, and round-trips through a save."""

from __future__ import annotations

import json

import pytest
import torch

from saccade import CanViTForPretraining, load_pretrained, preset, save_pretrained
from saccade.export import GlimpseStep, check_parity, export_program
from saccade.model.readout import ContextReadout

TINY = preset("canvit-tiny")


def test_at_the_start_it_is_the_linear_readout_of_the_shifted_tokens():
    torch.manual_seed(0)
    readout = ContextReadout(16, 8, num_tokens=5, num_blocks=2, num_heads=2)
    tokens = torch.randn(3, 5, 16)  # [B, N, D_in]
    expected = readout.linear(tokens + readout.position)
    torch.testing.assert_close(readout(tokens), expected, rtol=1e-6, atol=1e-6)


def test_a_cell_prediction_depends_on_the_other_cells_once_trained():
    torch.manual_seed(0)
    readout = ContextReadout(16, 8, num_tokens=5, num_blocks=1, num_heads=2)
    with torch.no_grad():
        for parameter in readout.blocks.parameters():
            parameter.normal_(std=0.2)  # the output maps leave zero, as training moves them
    tokens = torch.randn(1, 5, 16)
    changed = tokens.clone()
    changed[0, 4] = torch.randn(16)  # only the last token
    before, after = readout(tokens), readout(changed)
    assert not torch.allclose(before[0, 0], after[0, 0]), "the first cell must see the last one"
    linear = ContextReadout(16, 8, num_tokens=5, num_blocks=1, num_heads=2).linear
    torch.testing.assert_close(linear(tokens)[0, 0], linear(changed)[0, 0])  # token-wise: it does not


def test_bad_shapes_and_block_counts_are_named():
    with pytest.raises(ValueError, match="num_blocks >= 1"):
        ContextReadout(16, 8, num_tokens=5, num_blocks=0, num_heads=2)
    readout = ContextReadout(16, 8, num_tokens=5, num_blocks=1, num_heads=2)
    with pytest.raises(ValueError, match=r"reads \(5, 16\) tokens"):
        readout(torch.randn(2, 6, 16))
    with pytest.raises(ValueError, match="patch_readout_blocks must be >= 0"):
        CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4, patch_readout_blocks=-1)


def test_pretraining_model_with_context_readout_round_trips(tmp_path):
    torch.manual_seed(0)
    model = CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4, patch_readout_blocks=2)
    model.teacher_patch_standardizer.fit(torch.randn(5, 16, 24))
    model.teacher_cls_standardizer.fit(torch.randn(5, 24))
    with torch.no_grad():
        for parameter in model.teacher_patch_readout.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded.teacher_patch_readout, ContextReadout) and loaded.patch_readout_blocks == 2
    canvas = torch.randn(2, TINY.num_canvas_registers + 16, TINY.canvas_dim)  # [B, R + G*G, D_cv]
    torch.testing.assert_close(loaded.teacher_patch_readout(canvas), model.eval().teacher_patch_readout(canvas))


def test_a_save_without_the_field_loads_with_the_linear_readout(tmp_path):
    model = CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4)
    save_pretrained(model, tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    assert config.pop("patch_readout_blocks") == 0
    config_file.write_text(json.dumps(config))  # as saved before the field existed
    assert load_pretrained(tmp_path).patch_readout_blocks == 0


def test_a_glimpse_step_with_it_exports_and_matches_eager():
    torch.manual_seed(1)
    model = CanViTForPretraining(TINY, teacher_dim=24, teacher_patch_grid=4, patch_readout_blocks=1).eval()
    with torch.no_grad():
        for parameter in model.teacher_patch_readout.blocks.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    step = GlimpseStep(model, glimpse_px=32, canvas_grid=4)
    report = check_parity(
        step, export_program(step).module(), runtime="torch-export", tolerance=1e-5, batch_sizes=(1, 3)
    )
    assert report.ok, report.summary()
