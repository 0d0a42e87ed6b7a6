"""Rollouts: streaming and collected forms, gradients on request, seeds, and EG-C2F end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from saccade import CanViT, preset
from saccade.episode import iter_rollout, rollout
from saccade.policies import make_policy
from saccade.viz.trajectories import draw_glimpse_path
from tests.model.test_reference_parity import load_reference_model


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    torch.manual_seed(0)
    return CanViT(preset("canvit-tiny")).eval()


def scenes(batch_size=2, size_px=64, seed=0):
    return torch.randn(batch_size, 3, size_px, size_px, generator=torch.Generator().manual_seed(seed))


def test_coarse_to_fine_rollout(tiny):
    steps = rollout(tiny, scenes(), make_policy("C2F", batch_size=2), glimpse_px=32, canvas_grid=4)
    assert len(steps) == 21
    assert [s.t for s in steps] == list(range(21))
    assert steps[0].viewpoint.scales.tolist() == [1.0, 1.0]
    assert steps[-1].glimpse.shape == (2, 3, 32, 32)
    assert steps[-1].state.canvas.shape == (2, 4 + 16, 96)
    assert not steps[-1].state.canvas.requires_grad


def test_streaming_equals_collected_and_seed_determinism(tiny):
    def run():
        policy = make_policy("R-IID", batch_size=2, generator=torch.Generator().manual_seed(7))
        return iter_rollout(tiny, scenes(), policy, num_glimpses=5, glimpse_px=32, canvas_grid=4)

    streamed = [step.state.canvas for step in run()]
    collected = [step.state.canvas for step in run()]
    for a, b in zip(streamed, collected, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(streamed[0], streamed[1])


def test_gradients_on_request(tiny):
    policy = make_policy("F-IID", batch_size=2, generator=torch.Generator().manual_seed(0))
    steps = rollout(tiny, scenes(), policy, num_glimpses=2, glimpse_px=32, canvas_grid=4, grad=True)
    steps[-1].state.canvas.mean().backward()
    assert tiny.init_canvas_patch.grad is not None
    tiny.zero_grad()
    assert torch.is_grad_enabled()


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="num_glimpses is required"):
        rollout(tiny, scenes(), make_policy("random", batch_size=2), glimpse_px=32, canvas_grid=4)
    with pytest.raises(ValueError, match="policy is built for batch 3"):
        rollout(tiny, scenes(), make_policy("C2F", batch_size=3), glimpse_px=32, canvas_grid=4)
    with pytest.raises(ValueError, match="num_glimpses must be in"):
        rollout(tiny, scenes(), make_policy("C2F", batch_size=2), num_glimpses=30, glimpse_px=32, canvas_grid=4)


def test_rollout_picture(tiny, tmp_path):
    steps = rollout(tiny, scenes(size_px=96), make_policy("C2F", batch_size=2), glimpse_px=32, canvas_grid=4)
    path = draw_glimpse_path(scenes(size_px=96), [s.viewpoint for s in steps], tmp_path / "path.png", item=1)
    assert path.stat().st_size > 5_000


@pytest.mark.reference
def test_entropy_guided_rollout_matches_reference(reference):
    """The authors' EG-C2F rollout of the reference model, decoded by their random segmentation probe."""
    model = load_reference_model()
    probe, recorded = reference["seg_probe"], reference["eg_c2f"]

    def probe_logits(state):  # LN -> (Dropout2d, inactive) -> BatchNorm (eval) -> 1x1 conv
        canvas = F.layer_norm(state.canvas_patch_grid(), (96,), probe["ln.weight"], probe["ln.bias"], eps=1e-5)
        x = canvas.permute(0, 3, 1, 2)  # [B, D, G, G]
        x = F.batch_norm(
            x, probe["bn.running_mean"], probe["bn.running_var"], probe["bn.weight"], probe["bn.bias"], eps=1e-5
        )
        return F.conv2d(x, probe["conv.weight"], probe["conv.bias"])  # [B, C, G, G]

    policy = make_policy("EG-C2F", batch_size=2, canvas_to_probs=probe_logits, from_logits=True)
    steps = rollout(model, reference["inputs"]["scenes"], policy, num_glimpses=8, glimpse_px=32, canvas_grid=8)
    viewpoints = torch.stack([step.viewpoint.to_yxs() for step in steps])  # [T, B, 3]
    assert_close(viewpoints, recorded["eg_c2f.viewpoints"], atol=1e-6, rtol=0)
    logits = torch.stack([probe_logits(step.state) for step in steps])
    assert_close(logits, recorded["eg_c2f.logits_after"], atol=1e-5, rtol=0)


def test_float64_scenes_roll_out_like_float32(tiny):
    """Glimpses keep the scene's dtype; the model casts them to its float32 parameters (exact here)."""

    def policy():
        return make_policy("R-IID", batch_size=2, generator=torch.Generator().manual_seed(7))

    expected = rollout(tiny, scenes(), policy(), num_glimpses=3, glimpse_px=32, canvas_grid=4)
    steps = rollout(tiny, scenes().double(), policy(), num_glimpses=3, glimpse_px=32, canvas_grid=4)
    assert steps[-1].glimpse.dtype == torch.float64
    assert_close(steps[-1].state.canvas, expected[-1].state.canvas, atol=0, rtol=0)


@pytest.mark.parametrize("size", [(0, 0), (0, 64), (64, 0)])
def test_empty_scenes_are_an_error(tiny, size):
    empty = torch.zeros(2, 3, *size)
    with pytest.raises(ValueError, match=rf"scenes must be at least 1 x 1 px, got {size[0]} x {size[1]}"):
        rollout(tiny, empty, make_policy("C2F", batch_size=2), num_glimpses=2, glimpse_px=32, canvas_grid=4)
