"""The parity test means something: break one parameter or one convention and the replay no longer matches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from saccade.model import attention, backbone, canvit, rope
from tests.model.test_reference_parity import load_reference_model, replay

pytestmark = pytest.mark.reference


def max_deviation(model, reference) -> float:
    record = replay(model, reference["inputs"])
    return max((record[name] - value).abs().max().item() for name, value in reference["outputs"].items())


def ignored_value(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """What an implementation that forgot this tensor would effectively use."""
    if name.endswith("fitted"):
        return tensor
    if name.endswith(".var"):
        return torch.ones_like(tensor)
    if ".norm" in name or ".ln_" in name:
        return torch.ones_like(tensor) if name.endswith("weight") else torch.zeros_like(tensor)
    if name.endswith("gamma"):
        return torch.ones_like(tensor)
    return torch.zeros_like(tensor)


def test_reference_replay_is_exact(reference):
    assert max_deviation(load_reference_model(), reference) < 1e-5


def test_every_tensor_matters(reference):
    model = load_reference_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    insensitive = []
    for name, tensor in state.items():
        if name.endswith("fitted"):
            continue
        with torch.no_grad():
            model.state_dict()[name].copy_(ignored_value(name, tensor))
        if max_deviation(model, reference) < 1e-3:
            insensitive.append(name)
        with torch.no_grad():
            model.state_dict()[name].copy_(tensor)
    assert not insensitive, f"replay does not notice these tensors being ignored: {insensitive}"


def _swap_yx_rope_table(original):
    def patched(positions, head_dim, base):
        return original(positions.flip(-1), head_dim, base)

    return patched


def _interleaved_pairs(x):
    return x[..., 0::2], x[..., 1::2]


def _without_two_pi(positions, head_dim, base):
    periods = rope.rope_periods(head_dim, base)
    half = torch.cat([positions[..., 0:1] / periods, positions[..., 1:2] / periods], dim=-1)
    angles = torch.cat([half, half], dim=-1)
    return rope.RopeTable(cos=angles.cos(), sin=angles.sin())


def _qkv_with_key_bias(self):
    return self.bias


def _sdpa_scaled_by(head_dim):
    sdpa = F.scaled_dot_product_attention

    def patched(q, k, v, **kwargs):
        return sdpa(q, k, v, scale=1 / math.sqrt(head_dim) if q.shape[-1] == 48 else None)

    return patched


BROKEN_CONVENTIONS = {
    "rope positions (x, y)": (canvit, "rope_table", _swap_yx_rope_table(rope.rope_table)),
    "rope pairs (2i, 2i+1)": (rope, "_rotation_pairs", _interleaved_pairs),
    "rope without 2 pi": (canvit, "rope_table", _without_two_pi),
    "key bias used": (backbone.FusedQKV, "_bias_without_key", _qkv_with_key_bias),
    "canvas attention scaled by backbone head dim": (attention.F, "scaled_dot_product_attention", _sdpa_scaled_by(32)),
}


@pytest.mark.parametrize("convention", sorted(BROKEN_CONVENTIONS))
def test_every_convention_matters(reference, monkeypatch, convention):
    target, name, replacement = BROKEN_CONVENTIONS[convention]
    monkeypatch.setattr(target, name, replacement)
    assert max_deviation(load_reference_model(), reference) > 1e-3


def test_read_write_order_matters(reference):
    model = load_reference_model()
    model.canvit._read_index, model.canvit._write_index = (
        {1: 0, 3: 1},
        {0: 0, 2: 1},
    )
    assert max_deviation(model, reference) > 1e-3
