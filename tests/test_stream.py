"""GlimpseStream: live, glimpse-by-glimpse inference equals a rollout; readouts at any step; clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from saccade import CanViT, CanViTForPretraining, Viewpoint, preset
from saccade.episode import rollout
from saccade.policies import make_policy
from saccade.stream import GlimpseStream

GLIMPSE_PX, CANVAS_GRID = 32, 4


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    torch.manual_seed(0)
    return CanViT(preset("canvit-tiny")).eval()


@pytest.fixture(scope="module")
def pretraining() -> CanViTForPretraining:
    torch.manual_seed(1)
    return CanViTForPretraining(preset("canvit-tiny"), teacher_dim=24, teacher_patch_grid=CANVAS_GRID).eval()


def scenes(batch_size=2, size_px=64, seed=0):
    return torch.randn(batch_size, 3, size_px, size_px, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("policy_name", ["R-IID", "EG-C2F"])
def test_stream_equals_rollout_step_by_step(tiny: CanViT, policy_name: str) -> None:
    weight = torch.randn(96, 5, generator=torch.Generator().manual_seed(4))  # a random 5-class probe

    def probe_logits(state):
        return (state.canvas_patch_grid() @ weight).permute(0, 3, 1, 2)  # [B, 5, G, G]

    def policy():
        if policy_name == "EG-C2F":  # looks where the probe on the current canvas is least sure
            return make_policy(policy_name, batch_size=2, canvas_to_probs=probe_logits, from_logits=True)
        return make_policy(policy_name, batch_size=2, generator=torch.Generator().manual_seed(3))

    images = scenes()
    steps = rollout(tiny, images, policy(), num_glimpses=5, glimpse_px=GLIMPSE_PX, canvas_grid=CANVAS_GRID)
    by_scene = GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    by_glimpse = GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    by_scene.reset(2)
    by_glimpse.reset(2)
    live_policy = policy()  # the stream's caller picks viewpoints from the stream's own state
    for expected in steps:
        viewpoint = live_policy.step(expected.t, by_scene.state)
        assert_close(viewpoint.to_yxs(), expected.viewpoint.to_yxs(), rtol=0, atol=0)
        got = by_scene.look(images, viewpoint)
        direct = by_glimpse.observe(expected.glimpse, expected.viewpoint)
        assert got.t == direct.t == expected.t
        assert_close(got.glimpse, expected.glimpse, rtol=0, atol=0)
        for step in (got, direct):
            assert_close(step.state.canvas, expected.state.canvas, rtol=0, atol=0)
            assert_close(step.state.recurrent_cls, expected.state.recurrent_cls, rtol=0, atol=0)
            assert_close(step.output.glimpse_patches, expected.output.glimpse_patches, rtol=0, atol=0)
    assert by_scene.num_glimpses == 5
    assert by_scene.canvas is by_scene.last_step.state.canvas
    assert not by_scene.canvas.requires_grad


def test_readouts_at_any_step(pretraining: CanViTForPretraining) -> None:
    stream = GlimpseStream(pretraining, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    stream.reset(batch_size=1)
    assert stream.num_glimpses == 0 and stream.last_step is None and stream.has_readouts
    before = stream.predict_teacher_patches()  # readable before any glimpse: the fresh canvas
    assert before.shape == (1, CANVAS_GRID**2, 24)
    stream.look(scenes(1), Viewpoint.full_scene(1))
    after = stream.predict_teacher_patches()
    assert_close(after, pretraining.predict_teacher_patches(stream.state), rtol=0, atol=0)
    assert not torch.equal(before, after)
    assert stream.predict_teacher_cls().shape == (1, 24)
    mean_canvas = stream.probe(lambda state: state.canvas_patches.mean(dim=1))  # [B, D_cv]
    assert mean_canvas.shape == (1, 96) and not mean_canvas.requires_grad
    with pytest.raises(RuntimeError, match="not fitted"):
        stream.predict_teacher_cls(destandardize=True)


def test_reset_changes_batch_and_restarts(tiny: CanViT) -> None:
    stream = GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    fresh = stream.reset(2).canvas.clone()
    stream.look(scenes(2), Viewpoint.full_scene(2))
    stream.reset(3)
    assert stream.batch_size == 3 and stream.num_glimpses == 0
    assert_close(stream.canvas[:2], fresh, rtol=0, atol=0)
    continued = GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    continued.reset(state=stream.state)
    assert continued.batch_size == 3


def test_bad_inputs_are_named(tiny: CanViT, pretraining: CanViTForPretraining) -> None:
    stream = GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    with pytest.raises(RuntimeError, match=r"call reset\(batch_size\) first"):
        stream.observe(torch.zeros(1, 3, 32, 32), Viewpoint.full_scene(1))
    stream.reset(2)
    with pytest.raises(ValueError, match=r"glimpse must be \[B, 3, 32, 32\] for this stream, got \(2, 3, 48, 48\)"):
        stream.observe(torch.zeros(2, 3, 48, 48), Viewpoint.full_scene(2))
    with pytest.raises(ValueError, match="reset for batch 2, got a glimpse of batch 1"):
        stream.observe(torch.zeros(1, 3, 32, 32), Viewpoint.full_scene(1))
    with pytest.raises(TypeError, match=r"viewpoint must be a saccade\.Viewpoint"):
        stream.look(scenes(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"scene must be \[B, 3, H, W\]"):
        stream.look(torch.zeros(3, 64, 64), Viewpoint.full_scene(2))
    with pytest.raises(TypeError, match="teacher readouts need a CanViTForPretraining"):
        stream.predict_teacher_patches()
    with pytest.raises(ValueError, match="canvas grid 8, this stream uses 4"):
        stream.reset(state=tiny.init_state(batch_size=1, canvas_grid=8))
    with pytest.raises(ValueError, match="multiple of the 16 px patch"):
        GlimpseStream(tiny, canvas_grid=CANVAS_GRID, glimpse_px=20)
    with pytest.raises(TypeError, match="must be a CanViT or hold one"):
        GlimpseStream(torch.nn.Linear(2, 2), canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    wrong_grid = GlimpseStream(pretraining, canvas_grid=8, glimpse_px=GLIMPSE_PX)
    wrong_grid.reset(1)
    with pytest.raises(ValueError, match="canvas grid 8 differs from the teacher grid 4"):
        wrong_grid.predict_teacher_patches(destandardize=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_stream_matches_cpu() -> None:
    torch.manual_seed(0)
    model = CanViT(preset("canvit-tiny")).eval()
    cpu = GlimpseStream(model, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX)
    cpu.reset(2)
    expected = cpu.look(scenes(), Viewpoint.full_scene(2)).state.canvas
    gpu = GlimpseStream(model, canvas_grid=CANVAS_GRID, glimpse_px=GLIMPSE_PX, device="cuda")
    gpu.reset(2)
    got = gpu.look(scenes(), Viewpoint.full_scene(2)).state.canvas  # CPU inputs move to the model's device
    assert got.device.type == "cuda"
    assert_close(got.cpu(), expected, rtol=1e-3, atol=1e-3)
