"""Contract tests of the glimpse step: shapes, dtypes, grids, glimpse sizes, gradients and bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from saccade import CanViT, CanViTConfig, RecurrentState, Viewpoint, preset
from saccade.model.backbone import set_stochastic_depth
from saccade.model.config import BACKBONES
from saccade.model.readout import LinearReadout, Standardizer

TINY = preset("canvit-tiny")


def step(model: CanViT, *, batch_size=2, glimpse_px=32, canvas_grid=4, generator=None):
    state = model.init_state(batch_size=batch_size, canvas_grid=canvas_grid)
    glimpse = torch.randn(batch_size, 3, glimpse_px, glimpse_px, generator=generator)
    return model(glimpse, state, Viewpoint.full_scene(batch_size))


VARIANTS = {
    "tiny": TINY,
    "qkvo": CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "canvas_projections": "qkvo"}),
    "no-reads": CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "enable_reads": False}),
    "no-vpe": CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "enable_vpe": False}),
    "stride-2": CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "rw_stride": 2}),
    "write-sink": CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "canvas_write_sink": True}),
    "no-cls-recurrence": dataclasses.replace(TINY, cls_recurrence=False),
    "write-patches-only": dataclasses.replace(TINY, write_patches_only=True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(("glimpse_px", "canvas_grid", "batch_size"), [(16, 1, 1), (32, 4, 2), (48, 7, 3)])
def test_shapes(variant, glimpse_px, canvas_grid, batch_size, generator):
    config = VARIANTS[variant]
    model = CanViT(config)
    out = step(model, batch_size=batch_size, glimpse_px=glimpse_px, canvas_grid=canvas_grid, generator=generator)
    g = glimpse_px // 16
    R, D_cv, D = config.num_canvas_registers, config.canvas_dim, config.backbone.embed_dim
    assert out.state.canvas.shape == (batch_size, R + canvas_grid**2, D_cv)
    assert out.state.canvas.dtype == torch.float32
    assert out.state.recurrent_cls.shape == (batch_size, 1, D)
    assert out.glimpse_patches.shape == (batch_size, g * g, D)
    assert out.state.canvas_grid == canvas_grid
    assert out.state.canvas_patch_grid().shape == (batch_size, canvas_grid, canvas_grid, D_cv)
    if config.enable_vpe:
        assert out.vpe.shape == (batch_size, D)
    else:
        assert out.vpe is None
    assert torch.isfinite(out.state.canvas).all()


def test_module_counts_follow_schedule():
    model = CanViT(preset("canvit-b16"))
    assert model.config.read_after_blocks == (1, 5, 9)
    assert model.config.write_after_blocks == (3, 7, 11)
    assert len(model.canvas_reads) == 3 and len(model.canvas_writes) == 3


@pytest.mark.parametrize(("name", "expected"), [("canvit-b16", 95_157_248), ("canvit-s16", 26_364_416)])
def test_published_parameter_counts(name, expected):
    model = CanViT(preset(name))
    assert sum(p.numel() for p in model.parameters()) == expected


def test_batch_items_are_independent(generator):
    model = CanViT(TINY).eval()
    glimpses = torch.randn(3, 3, 32, 32, generator=generator)
    viewpoint = Viewpoint(
        centers=torch.tensor([[0.1, -0.2], [0.0, 0.0], [-0.5, 0.5]]), scales=torch.tensor([0.5, 1, 0.3])
    )
    with torch.no_grad():
        batched = model(glimpses, model.init_state(batch_size=3, canvas_grid=4), viewpoint)
        single = model(glimpses[1:2], model.init_state(batch_size=1, canvas_grid=4), viewpoint[1])
    torch.testing.assert_close(batched.state.canvas[1:2], single.state.canvas, atol=1e-5, rtol=0)


def test_backward_reaches_every_parameter_and_detach_cuts(generator):
    model = CanViT(TINY)
    state = model.init_state(batch_size=2, canvas_grid=4)
    viewpoint = Viewpoint.full_scene(2)
    for _ in range(2):
        state = model(torch.randn(2, 3, 32, 32, generator=generator), state, viewpoint).state
    (state.canvas.square().mean() + state.recurrent_cls.square().mean()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    detached = state.detach()
    assert not detached.canvas.requires_grad and not detached.recurrent_cls.requires_grad


def test_canvas_stays_float32_under_bf16_autocast(generator):
    model = CanViT(TINY)
    state = model.init_state(batch_size=2, canvas_grid=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 32, 32, generator=generator), state, Viewpoint.full_scene(2))
    assert out.state.canvas.dtype == torch.float32
    assert torch.isfinite(out.glimpse_patches.float()).all()


# -- bad input -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    return CanViT(TINY)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 3, 32, 48), "square"),
        ((2, 3, 40, 40), "whole number of 16 px patches"),
        ((2, 1, 32, 32), r"\[B, 3, S, S\]"),
        ((3, 32, 32), r"\[B, 3, S, S\]"),
    ],
)
def test_bad_glimpse_shape(tiny, shape, message):
    state = tiny.init_state(batch_size=2, canvas_grid=4)
    with pytest.raises(ValueError, match=message):
        tiny(torch.zeros(shape), state, Viewpoint.full_scene(2))


def test_non_float_glimpse(tiny):
    state = tiny.init_state(batch_size=2, canvas_grid=4)
    with pytest.raises(TypeError, match="floating-point"):
        tiny(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), state, Viewpoint.full_scene(2))


def test_batch_mismatch(tiny):
    state = tiny.init_state(batch_size=3, canvas_grid=4)
    with pytest.raises(ValueError, match="batch sizes differ"):
        tiny(torch.zeros(2, 3, 32, 32), state, Viewpoint.full_scene(2))


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5, float("nan")])
def test_viewpoint_scale_out_of_range(scale):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        Viewpoint(centers=torch.zeros(2, 2), scales=torch.tensor([0.5, scale]))


@pytest.mark.parametrize("shape", [(2, 3), (2,), (1, 2, 2)])
def test_viewpoint_centers_shape(shape):
    with pytest.raises(ValueError, match=r"centers must be \[B, 2\]"):
        Viewpoint(centers=torch.zeros(shape), scales=torch.ones(2))


def test_viewpoint_scales_shape_and_dtype():
    with pytest.raises(ValueError, match="scales must be"):
        Viewpoint(centers=torch.zeros(2, 2), scales=torch.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        Viewpoint(centers=torch.zeros(2, 2, dtype=torch.long), scales=torch.ones(2))


def test_state_from_another_model(tiny):
    other = CanViT(CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "canvas_head_dim": 32}))
    state = other.init_state(batch_size=2, canvas_grid=4)
    with pytest.raises(ValueError, match="state does not belong to this model"):
        tiny(torch.zeros(2, 3, 32, 32), state, Viewpoint.full_scene(2))


def test_state_with_broken_grid(tiny):
    state = tiny.init_state(batch_size=2, canvas_grid=4)
    broken = RecurrentState(canvas=state.canvas[:, :-1], recurrent_cls=state.recurrent_cls, num_canvas_registers=4)
    with pytest.raises(ValueError, match="G\\*G"):
        tiny(torch.zeros(2, 3, 32, 32), broken, Viewpoint.full_scene(2))


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown backbone_name"):
        CanViTConfig(backbone_name="vit-huge")
    with pytest.raises(ValueError, match="canvas_head_dim"):
        CanViTConfig(canvas_head_dim=30)
    with pytest.raises(ValueError, match="canvas_projections"):
        CanViTConfig(canvas_projections="full")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        type(BACKBONES["vitb16"])(embed_dim=100, num_heads=3, num_blocks=2)
    with pytest.raises(ValueError, match="canvas_grid"):
        CanViT(TINY).init_state(batch_size=1, canvas_grid=0)


def test_config_round_trips_through_dict():
    for config in (preset("canvit-b16"), TINY, VARIANTS["qkvo"]):
        assert CanViTConfig.from_dict(config.to_dict()) == config


def test_stochastic_depth_drops_whole_items_in_training_only(generator):
    model = CanViT(TINY)
    set_stochastic_depth(model.backbone, 0.4)
    rates = [block.drop_path for block in model.backbone.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.4) and rates == sorted(rates)
    block = model.backbone.blocks[-1]
    branch = torch.randn(256, 5, 8, generator=generator)  # [B, N, D]
    dropped = block._drop(branch)
    kept = dropped.abs().flatten(1).amax(1) > 0  # [B]
    assert torch.allclose(dropped[kept], branch[kept] / 0.6)  # survivors scaled by 1 / (1 - p)
    assert 0.5 < kept.float().mean().item() < 0.7  # about 1 - p of the items survive
    model.eval()
    assert torch.equal(block._drop(branch), branch)
    first, second = (step(model, generator=torch.Generator().manual_seed(0)).state.canvas for _ in range(2))
    assert torch.equal(first, second)
    model.train()
    torch.manual_seed(0)
    first, second = (step(model, generator=torch.Generator().manual_seed(0)).state.canvas for _ in range(2))
    assert not torch.equal(first, second)
    with pytest.raises(ValueError, match=r"stochastic depth rate must be in \[0, 1\)"):
        set_stochastic_depth(model.backbone, 1.0)


# -- everyday sequences ---------------------------------------------------------------------------


def test_training_after_inference_mode_at_the_same_grid(generator):
    """A forward under inference_mode caches nothing that a later autograd forward at the same G cannot save."""
    model = CanViT(TINY)
    glimpse = torch.randn(2, 3, 32, 32, generator=generator)
    with torch.inference_mode():
        evaluated = model(glimpse, model.init_state(batch_size=2, canvas_grid=4), Viewpoint.full_scene(2))
    out = model(glimpse, model.init_state(batch_size=2, canvas_grid=4), Viewpoint.full_scene(2))
    out.state.canvas.square().mean().backward()
    assert model.init_canvas_patch.grad is not None
    assert_close(out.state.canvas.detach(), evaluated.state.canvas, atol=1e-5, rtol=0)


def test_every_submodule_runs_through_call(generator):
    """Forward hooks fire on every module with a forward (Reads, Writes, the fused qkv, ...), with and without grad."""
    model = CanViT(TINY)
    modules = {name: m for name, m in model.named_modules() if name and type(m).forward is not nn.Module.forward}
    outputs: dict[str, Tensor] = {}
    for name, module in modules.items():
        module.register_forward_hook(lambda m, args, out, name=name: outputs.update({name: out}))
    for grad in (True, False):
        outputs.clear()
        with torch.set_grad_enabled(grad):
            out = step(model, generator=generator)
        assert sorted(set(modules) - set(outputs)) == []
        # A Write's output is the updated canvas; the last one is the new state's.
        assert outputs[f"canvas_writes.{len(model.canvas_writes) - 1}"] is out.state.canvas
    standardizer = Standardizer(1, 8).fit(torch.randn(4, 8, generator=generator))
    standardizer.register_forward_hook(lambda m, args, out: outputs.update(standardizer=out))
    assert standardizer.standardize(torch.ones(2, 8)) is outputs["standardizer"]


def test_config_backbone_name_and_spec_cannot_contradict():
    config = preset("canvit-b16")
    with pytest.raises(ValueError, match=r"backbone_name 'vits16'.*backbone=None"):
        dataclasses.replace(config, backbone_name="vits16")
    small = dataclasses.replace(config, backbone_name="vits16", backbone=None)
    assert small.backbone == BACKBONES["vits16"] and small == preset("canvit-s16")
    with pytest.raises(ValueError, match=r"backbone_name 'vitb16'.*backbone_name='vits16'"):
        dataclasses.replace(config, backbone=BACKBONES["vits16"])
    custom = dataclasses.replace(BACKBONES["vit-tiny"], num_blocks=2)
    named = dataclasses.replace(config, backbone_name="my-vit", backbone=custom)
    assert CanViTConfig.from_dict(named.to_dict()) == named
    with pytest.raises(ValueError, match="backbone_name 'vitb16'"):
        CanViTConfig.from_dict({**config.to_dict(), "backbone": BACKBONES["vits16"].__dict__})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_glimpse_of_another_float_dtype_is_cast_to_the_parameters(tiny, dtype, generator):
    glimpse = torch.randn(2, 3, 32, 32, generator=generator).to(dtype)
    viewpoint = Viewpoint.full_scene(2)
    with torch.no_grad():
        out = tiny(glimpse, tiny.init_state(batch_size=2, canvas_grid=4), viewpoint)
        expected = tiny(glimpse.float(), tiny.init_state(batch_size=2, canvas_grid=4), viewpoint)
    assert out.glimpse_patches.dtype == torch.float32
    assert_close(out.state.canvas, expected.state.canvas, atol=0, rtol=0)


@pytest.mark.parametrize("center", [float("nan"), float("inf"), -float("inf")])
def test_viewpoint_centers_must_be_finite(center):
    with pytest.raises(ValueError, match=r"Viewpoint\.centers must be finite, got \[\[0\.0, (nan|inf|-inf)\]\]"):
        Viewpoint(centers=torch.tensor([[0.1, 0.2], [0.0, center]]), scales=torch.ones(2))


def test_readouts_decode_in_float32_under_autocast(generator):
    readout = LinearReadout(96, 200)
    with torch.no_grad():
        readout.proj.weight.normal_(generator=generator)
    canvas = torch.randn(4, 20, 96, generator=generator)
    expected = readout(canvas)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = readout(canvas.bfloat16())
    assert got.dtype == torch.float32
    assert_close(got, readout(canvas.bfloat16().float()), atol=1e-5, rtol=0)
    assert not torch.equal(got, expected)  # the input was rounded to bfloat16, the decoding was not
