"""The fast paths equal the plain maths: blocked canvas attention (a Read streamed through an online softmax,
a Write block by block), the RoPE autograd node and the oneDNN linear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from saccade import CanViT, CanViTConfig, Viewpoint, preset
from saccade.model import canvas as canvas_module
from saccade.model.attention import rope_attention
from saccade.model.linear import linear
from saccade.model.rope import rope_table, rotate
from tests.model.test_reference_parity import ATOL, load_reference_model, replay

TINY = preset("canvit-tiny")
QKVO = CanViTConfig(**{**TINY.to_dict(), "backbone": TINY.backbone, "canvas_projections": "qkvo"})


def _use_small_blocks(monkeypatch) -> None:
    """Blocks of 7 canvas tokens: uneven, and the first one straddles the registers and the patches."""
    monkeypatch.setattr(canvas_module, "CPU_BLOCK_BYTES", 1)
    monkeypatch.setattr(canvas_module, "CPU_UNBLOCKED_BYTES", 0)
    monkeypatch.setattr(canvas_module, "MIN_BLOCK_TOKENS", 7)


@pytest.fixture()
def small_blocks(monkeypatch):
    _use_small_blocks(monkeypatch)


def _episode(model: CanViT, generator: torch.Generator, *, steps: int = 2, canvas_grid: int = 5):
    state = model.init_state(batch_size=2, canvas_grid=canvas_grid)
    for _ in range(steps):
        glimpse = torch.randn(2, 3, 32, 32, generator=generator)
        centers = torch.rand(2, 2, generator=generator) - 0.5
        viewpoint = Viewpoint(centers=centers, scales=torch.rand(2, generator=generator) * 0.5 + 0.25)
        state = model(glimpse, state, viewpoint).state
    return state


@pytest.mark.parametrize("config", [TINY, QKVO], ids=["asymmetric", "qkvo"])
def test_blocked_step_equals_single_block(config, monkeypatch):
    model = CanViT(config)
    with torch.no_grad():
        plain = _episode(model, torch.Generator().manual_seed(0))
        _use_small_blocks(monkeypatch)
        blocked = _episode(model, torch.Generator().manual_seed(0))
    assert_close(blocked.canvas, plain.canvas, atol=ATOL, rtol=0)
    assert_close(blocked.recurrent_cls, plain.recurrent_cls, atol=ATOL, rtol=0)


def test_blocked_read_and_write_equal_plain_attention(small_blocks, generator):
    model = CanViT(TINY)
    read, write = model.canvas_reads[0], model.canvas_writes[0]
    canvas = torch.randn(2, 4 + 25, TINY.canvas_dim, generator=generator)
    tokens = torch.randn(2, 7, TINY.backbone.embed_dim, generator=generator)
    canvas_rope = model._canvas_rope(5, torch.device("cpu"))
    glimpse_rope = model._canvas_rope(2, torch.device("cpu"))  # 4 registers + 2x2 cells: any 7-row table
    glimpse_rope = type(glimpse_rope)(cos=glimpse_rope.cos[:, :7], sin=glimpse_rope.sin[:, :7])
    with torch.no_grad():
        assert canvas_module.canvas_block_tokens(canvas) == 7  # the blocked paths run
        plain_read = read.o_map(
            rope_attention(
                read.q_map(read.ln_q(tokens)),
                read.ln_kv(canvas),
                read.ln_kv(canvas),
                num_heads=read.num_heads,
                q_rope=glimpse_rope,
                k_rope=canvas_rope,
            )
        )
        assert_close(read(tokens, canvas, q_rope=glimpse_rope, k_rope=canvas_rope), plain_read, atol=ATOL, rtol=0)
        plain = canvas_module.CanvasAttention.forward(write, canvas, tokens, q_rope=canvas_rope, k_rope=glimpse_rope)
        plain_write = canvas + plain  # the unblocked attention of the base class, added
        updated = write(canvas, tokens, canvas_rope=canvas_rope, glimpse_rope=glimpse_rope)
        assert_close(updated, plain_write, atol=ATOL, rtol=0)
        in_place = canvas.clone()
        assert write(in_place, tokens, canvas_rope=canvas_rope, glimpse_rope=glimpse_rope, inplace=True) is in_place
        assert_close(in_place, updated, atol=0, rtol=0)


def test_blocked_gradients_equal_single_block(monkeypatch):
    model = CanViT(TINY)

    def grads():
        model.zero_grad()
        state = _episode(model, torch.Generator().manual_seed(1))
        (state.canvas.square().mean() + state.recurrent_cls.square().mean()).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    monkeypatch.setattr(canvas_module, "canvas_block_tokens", lambda canvas: 7)  # blocks under autograd too
    blocked = grads()
    assert plain.keys() == blocked.keys()
    for name in plain:
        assert_close(blocked[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.reference
def test_reference_episode_with_small_blocks(reference, small_blocks):
    record = replay(load_reference_model(), reference["inputs"])
    for name, expected in reference["outputs"].items():
        assert_close(record[name], expected, atol=ATOL, rtol=0, msg=name)


def test_rope_gradient_is_the_inverse_rotation(generator):
    table = rope_table(torch.rand(2, 5, 2, generator=generator, dtype=torch.float64) * 2 - 1, 8, 100.0)
    x = torch.randn(2, 5, 3, 8, generator=generator, dtype=torch.float64, requires_grad=True)  # [B, N, heads, Dh]
    cos, sin = table.cos[:, :, None].double(), table.sin[:, :, None].double()
    assert torch.autograd.gradcheck(lambda v: rotate(v, cos, sin), (x,))
    halves = x.detach().chunk(2, dim=-1)
    expected = x.detach() * cos + torch.cat([-halves[1], halves[0]], dim=-1) * sin
    assert_close(rotate(x, cos, sin), expected)


def test_onednn_linear_equals_f_linear(generator):
    x = torch.randn(3, 71, 64, generator=generator)
    weight, bias = torch.randn(96, 64, generator=generator) / 8, torch.randn(96, generator=generator)
    with torch.no_grad():
        assert_close(linear(x, weight, bias), F.linear(x, weight, bias), atol=ATOL, rtol=0)
        assert_close(linear(x[:, 0], weight), F.linear(x[:, 0], weight), atol=ATOL, rtol=0)
    inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    expected = [t.clone().requires_grad_() for t in (x, weight, bias)]
    grad = torch.randn(3, 71, 96, generator=generator)
    linear(*inputs).backward(grad)
    F.linear(*expected).backward(grad)
    for ours, reference in zip(inputs, expected, strict=True):
        assert_close(ours.grad, reference.grad, atol=1e-4, rtol=1e-5)
