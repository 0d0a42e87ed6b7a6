"""The Write sink (CanViTConfig.canvas_write_sink): a null token of value zero in every Write's softmax."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.testing import assert_close

from saccade import CanViT, Viewpoint, preset
from saccade.glimpse import sample_glimpse
from saccade.model.rope import apply_rope, rope_table
from saccade.pretrain.canvas_start import local_canvas_start

TINY = preset("canvit-tiny")
SINK = dataclasses.replace(TINY, canvas_write_sink=True)
GRID = 8


def _twins(seed: int = 0) -> tuple[CanViT, CanViT]:
    """A model without and one with the sink, every shared weight equal."""
    torch.manual_seed(seed)
    plain = CanViT(TINY).eval()
    sink = CanViT(SINK).eval()
    missing, unexpected = sink.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".sink_" in name for name in missing), missing
    return plain, sink


def _after_full_then_tile(canvit: CanViT, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvas patch grids [B, G, G, D_cv] after the full scene, and after a top-left 1/16 tile that follows it."""
    B = scenes.shape[0]
    full = Viewpoint(centers=torch.zeros(B, 2), scales=torch.ones(B))
    tile = Viewpoint(centers=torch.full((B, 2), -0.75), scales=torch.full((B,), 0.25))
    with torch.no_grad():
        state = canvit(sample_glimpse(scenes, full, 32), canvit.init_state(batch_size=B, canvas_grid=GRID), full).state
        after_tile = canvit(sample_glimpse(scenes, tile, 32), state, tile).state
    return state.canvas_patch_grid(), after_tile.canvas_patch_grid()


def test_a_new_sink_changes_nothing_and_a_silent_one_matches_the_paper_write():
    plain, sink = _twins()
    scenes = torch.randn(2, 3, 128, 128)
    expected = _after_full_then_tile(plain, scenes)
    assert_close(_after_full_then_tile(sink, scenes), expected, atol=1e-5, rtol=0)
    for write in sink.canvas_writes:
        write.sink_logit.data.fill_(-1e4)
        write.sink_zoom.data.fill_(5.0)
    assert_close(_after_full_then_tile(sink, scenes), expected, atol=1e-5, rtol=0)


def test_write_is_a_softmax_over_the_glimpse_and_a_zero_valued_null_token():
    """Against the formula written out: delta_c = sum_j e^l_cj v_j / (sum_j e^l_cj + e^s), s = a + b log2(1/scale)."""
    torch.manual_seed(1)
    write = CanViT(SINK).canvas_writes[0]
    heads, D_cv = write.num_heads, TINY.canvas_dim
    with torch.no_grad():
        write.sink_logit.copy_(torch.linspace(-1.0, 2.0, heads))
        write.sink_zoom.copy_(torch.linspace(0.5, 1.5, heads))
    B, N, M = 2, 6, 9
    glimpse = torch.randn(B, N, TINY.backbone.embed_dim)
    canvas = torch.randn(B, M, D_cv)
    scales = torch.tensor([1.0, 0.25])
    glimpse_rope = rope_table(torch.rand(B, N, 2) * 2 - 1, TINY.canvas_head_dim, TINY.backbone.rope_base)
    canvas_rope = rope_table(torch.rand(1, M, 2) * 2 - 1, TINY.canvas_head_dim, TINY.backbone.rope_base)
    with torch.no_grad():
        out = write(canvas, glimpse, canvas_rope=canvas_rope, glimpse_rope=glimpse_rope, zoom=-torch.log2(scales))
        kv = write.ln_kv(glimpse)
        k = apply_rope(write.k_map(kv).view(B, N, heads, -1).transpose(1, 2), glimpse_rope)  # [B, h, N, Dh]
        v = write.v_map(kv).view(B, N, heads, -1).transpose(1, 2)  # [B, h, N, Dh]
        q = apply_rope(write.ln_q(canvas).view(B, M, heads, -1).transpose(1, 2), canvas_rope)  # [B, h, M, Dh]
        logits = q @ k.transpose(-1, -2) / (D_cv // heads) ** 0.5  # [B, h, M, N]
        sink = write.sink_logit + torch.tensor([0.0, 2.0])[:, None] * write.sink_zoom  # [B, h]
        weights = logits.exp() / (logits.exp().sum(-1, keepdim=True) + sink.exp()[:, :, None, None])
        expected = canvas + (weights @ v).transpose(1, 2).reshape(B, M, D_cv)
    assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_with_the_local_start_a_zoomed_glimpse_leaves_far_cells_as_they_were():
    """After the full scene, a 1/16 tile changes the opposite corner's cells by a full step without the sink, and
    by almost nothing with it (measured on canvit-tiny: 0.3 x and 0.001 x the tile's own cells' change)."""
    plain, sink = _twins()
    local_canvas_start(plain)
    local_canvas_start(sink)
    scenes = torch.randn(4, 3, 128, 128)
    ratios = []
    for canvit in (plain, sink):
        before, after = _after_full_then_tile(canvit, scenes)
        change = (after - before).norm(dim=-1).mean(0)  # [G, G]
        ratios.append((change[-2:, -2:].mean() / change[:2, :2].mean()).item())
    assert ratios[0] > 0.1 and ratios[1] < 0.01, ratios


def test_the_full_scene_glimpse_still_writes_every_cell_with_the_local_start():
    _, sink = _twins()
    local_canvas_start(sink)
    scenes = torch.randn(4, 3, 128, 128)
    B = scenes.shape[0]
    full = Viewpoint(centers=torch.zeros(B, 2), scales=torch.ones(B))
    fresh = sink.init_state(batch_size=B, canvas_grid=GRID)
    with torch.no_grad():
        after = sink(sample_glimpse(scenes, full, 32), fresh, full).state
    change = (after.canvas_patch_grid() - fresh.canvas_patch_grid()).norm(dim=-1).mean(0)  # [G, G]
    assert change.min() > 0.5 * change.mean(), change


def test_sink_parameters_learn_and_are_part_of_the_checkpoint():
    model = CanViT(SINK)
    names = {name for name in model.state_dict() if ".sink_" in name}
    assert names == {f"canvas_writes.{i}.sink_{p}" for i in range(len(model.canvas_writes)) for p in ("logit", "zoom")}
    for write in model.canvas_writes:
        write.sink_logit.data.zero_()  # a live sink, so that its gradient is not e^-20 small
    scenes = torch.randn(2, 3, 64, 64)
    viewpoint = Viewpoint(centers=torch.zeros(2, 2), scales=torch.tensor([0.5, 0.25]))
    state = model(sample_glimpse(scenes, viewpoint, 32), model.init_state(batch_size=2, canvas_grid=4), viewpoint)
    state.state.canvas.square().mean().backward()
    for write in model.canvas_writes:
        assert write.sink_logit.grad.abs().min() > 0 and write.sink_zoom.grad.abs().min() > 0


def test_a_write_with_a_sink_needs_the_zoom():
    write = CanViT(SINK).canvas_writes[0]
    rope = rope_table(torch.zeros(1, 4, 2), TINY.canvas_head_dim, TINY.backbone.rope_base)
    with pytest.raises(ValueError, match="needs the glimpse's zoom"):
        write(torch.randn(1, 4, TINY.canvas_dim), torch.randn(1, 4, TINY.backbone.embed_dim), canvas_rope=rope,
              glimpse_rope=rope)  # fmt: skip


def test_a_model_with_a_sink_exports_and_matches_eager():
    from saccade.export import GlimpseStep, check_parity, export_program

    _, sink = _twins()
    local_canvas_start(sink)  # a live sink: logits 15 at a 1/16 tile
    step = GlimpseStep(sink, glimpse_px=32, canvas_grid=4)
    report = check_parity(
        step, export_program(step).module(), runtime="torch-export", tolerance=1e-5, batch_sizes=(1, 3)
    )
    assert report.ok, report.summary()


def test_a_model_with_a_sink_saves_and_loads_with_its_sink(tmp_path):
    from saccade.model.checkpoint import load_pretrained, save_pretrained

    _, sink = _twins()
    local_canvas_start(sink)
    save_pretrained(sink, tmp_path / "model")
    loaded = load_pretrained(tmp_path / "model")
    assert loaded.config.canvas_write_sink
    scenes = torch.randn(2, 3, 128, 128)
    assert_close(_after_full_then_tile(loaded.eval(), scenes), _after_full_then_tile(sink, scenes), rtol=0, atol=0)
