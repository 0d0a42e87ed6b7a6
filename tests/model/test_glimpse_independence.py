"""The two switches that keep a frozen teacher backbone's glimpse evidence: no CLS recurrence into the backbone
(CanViTConfig.cls_recurrence) and Writes keyed on the patch tokens only (CanViTConfig.write_patches_only)."""

from __future__ import annotations

import dataclasses

import torch
from torch.testing import assert_close

from saccade import CanViT, Viewpoint, preset
from saccade.glimpse import sample_glimpse

NO_READS = dataclasses.replace(preset("canvit-tiny"), enable_reads=False)
GRID = 8


def _twins(**switches) -> tuple[CanViT, CanViT]:
    """The paper's model and one with `switches`, every weight equal."""
    torch.manual_seed(0)
    paper = CanViT(NO_READS).eval()
    with torch.no_grad():
        for name, parameter in paper.backbone.named_parameters():
            if name.endswith(".gamma"):  # trained-like LayerScale, so that tokens mix as in a trained backbone
                parameter.fill_(1.0)
    switched = CanViT(dataclasses.replace(NO_READS, **switches)).eval()
    switched.load_state_dict(paper.state_dict())
    return paper, switched


def _two_glimpses(canvit: CanViT, scenes: torch.Tensor):
    """Outputs of the full scene, then of a top-left 1/16 tile after it, and of that tile from a fresh state."""
    B = scenes.shape[0]
    full = Viewpoint(centers=torch.zeros(B, 2), scales=torch.ones(B))
    tile = Viewpoint(centers=torch.full((B, 2), -0.75), scales=torch.full((B,), 0.25))
    fresh = canvit.init_state(batch_size=B, canvas_grid=GRID)
    with torch.no_grad():
        first = canvit(sample_glimpse(scenes, full, 32), fresh, full)
        second = canvit(sample_glimpse(scenes, tile, 32), first.state, tile)
        alone = canvit(sample_glimpse(scenes, tile, 32), fresh, tile)
    return first, second, alone


def test_without_cls_recurrence_a_glimpse_is_seen_as_from_a_fresh_state():
    paper, switched = _twins(cls_recurrence=False)
    scenes = torch.randn(2, 3, 128, 128)
    _, second, alone = _two_glimpses(switched, scenes)
    # Reads off: nothing but the CLS carries the past into the backbone, so the tile's tokens and CLS are its own.
    assert_close(second.glimpse_patches, alone.glimpse_patches, atol=1e-5, rtol=0)
    assert_close(second.state.recurrent_cls, alone.state.recurrent_cls, atol=1e-5, rtol=0)
    assert not torch.equal(second.state.canvas, alone.state.canvas)  # the canvas still carries the episode
    _, paper_second, paper_alone = _two_glimpses(paper, scenes)
    assert (paper_second.glimpse_patches - paper_alone.glimpse_patches).abs().max() > 1e-3
    assert_close(paper_alone.glimpse_patches, alone.glimpse_patches, atol=1e-5, rtol=0)  # a first glimpse is alike


def test_patch_only_writes_equal_the_paper_writes_given_the_patch_tokens():
    paper, switched = _twins(write_patches_only=True)
    prefix = paper.config.num_glimpse_prefix_tokens
    seen: list[int] = []

    def drop_prefix(module, positional, keywords):  # Write(canvas, glimpse tokens, ...) without the prefix
        canvas, tokens = positional
        rope = keywords["glimpse_rope"]
        return (canvas, tokens[:, prefix:]), {**keywords, "glimpse_rope": rope.slice(prefix, rope.num_tokens)}

    def record(module, positional, keywords):
        seen.append(positional[1].shape[1])

    for write in paper.canvas_writes:
        write.register_forward_pre_hook(drop_prefix, with_kwargs=True)
    for write in switched.canvas_writes:
        write.register_forward_pre_hook(record, with_kwargs=True)
    scenes = torch.randn(2, 3, 128, 128)
    for expected, got in zip(_two_glimpses(paper, scenes), _two_glimpses(switched, scenes), strict=True):
        assert_close(got.state.canvas, expected.state.canvas, atol=1e-5, rtol=0)
    assert set(seen) == {4}  # a 32 px glimpse's 2 x 2 patch tokens, no prefix token
    paper, _ = _twins()
    _, with_prefix, _ = _two_glimpses(paper, scenes)
    _, second, _ = _two_glimpses(switched, scenes)
    assert (with_prefix.state.canvas - second.state.canvas).abs().max() > 1e-3


def test_with_the_position_start_a_write_does_not_depend_on_what_the_canvas_held():
    """canvas_start "local-position", no Reads, no CLS recurrence: a Write adds a blend of the glimpse's values
    weighted by position alone, so a tile changes the canvas alike whatever it held, and only near the tile."""
    from saccade.pretrain.canvas_start import apply_canvas_start

    config = dataclasses.replace(NO_READS, cls_recurrence=False, write_patches_only=True, canvas_write_sink=True)
    torch.manual_seed(0)
    canvit = CanViT(config).eval()
    apply_canvas_start(canvit, "local-position")
    scenes = torch.randn(2, 3, 128, 128)
    B = scenes.shape[0]
    tile = Viewpoint(centers=torch.full((B, 2), -0.75), scales=torch.full((B,), 0.25))
    fresh = canvit.init_state(batch_size=B, canvas_grid=GRID)
    _, seen, _ = _two_glimpses(canvit, scenes)  # the canvas after two glimpses of the scene
    noisy = dataclasses.replace(seen.state, canvas=seen.state.canvas + torch.randn_like(seen.state.canvas))
    changes = []
    with torch.no_grad():
        for state in (fresh, seen.state, noisy):
            after = canvit(sample_glimpse(scenes, tile, 32), state, tile).state
            changes.append(after.canvas_patch_grid() - state.canvas_patch_grid())  # [B, G, G, D_cv]
    for change in changes[1:]:
        assert_close(change, changes[0], atol=1e-4, rtol=0)
    near, far = changes[0][:, :2, :2].abs().max(), changes[0][:, 4:, 4:].abs().max()
    assert near > 0.1 and far < 1e-3 * near, (near, far)
    # the "local" start lets the canvas's content into the queries: the same tile then changes it otherwise
    torch.manual_seed(0)
    content = CanViT(config).eval()
    apply_canvas_start(content, "local")
    with torch.no_grad():
        after = content(sample_glimpse(scenes, tile, 32), noisy, tile).state
        fresh_after = content(sample_glimpse(scenes, tile, 32), fresh, tile).state
    difference = (after.canvas - noisy.canvas) - (fresh_after.canvas - fresh.canvas)
    assert difference.abs().max() > 1e-2


def test_a_model_with_both_switches_exports_and_matches_eager():
    from saccade.export import GlimpseStep, check_parity, export_program
    from saccade.pretrain.canvas_start import apply_canvas_start

    config = dataclasses.replace(NO_READS, cls_recurrence=False, write_patches_only=True, canvas_write_sink=True)
    torch.manual_seed(0)
    canvit = CanViT(config).eval()
    apply_canvas_start(canvit, "local-position")
    step = GlimpseStep(canvit, glimpse_px=32, canvas_grid=4)
    report = check_parity(
        step, export_program(step).module(), runtime="torch-export", tolerance=1e-5, batch_sizes=(1, 3)
    )
    assert report.ok, report.summary()
