"""Properties of the maths: RoPE is relative, VPE is scale-invariant, glimpses are point samples."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from saccade import CanViTForPretraining, Viewpoint, preset, sample_glimpse
from saccade.model.rope import apply_rope, rope_table
from saccade.model.vpe import ViewpointEncoding


def test_rope_scores_depend_only_on_relative_position(generator):
    q, k = torch.randn(2, 1, 1, 32, generator=generator).unbind(0)  # [1, 1, Dh] each
    pos_q, pos_k = torch.tensor([[0.3, -0.2]]), torch.tensor([[-0.5, 0.7]])
    shift = torch.tensor([[0.25, -0.4]])

    def score(pq, pk):
        rq = apply_rope(q[None], rope_table(pq[None], 32, 100.0))
        rk = apply_rope(k[None], rope_table(pk[None], 32, 100.0))
        return (rq * rk).sum()

    assert_close(score(pos_q, pos_k), score(pos_q + shift, pos_k + shift), atol=1e-5, rtol=0)
    assert not torch.allclose(score(pos_q, pos_k), score(pos_q, pos_k + shift))


def test_rope_leaves_prefix_tokens_alone(generator):
    x = torch.randn(2, 3, 5 + 4, 16, generator=generator)
    table = rope_table(torch.rand(2, 4, 2, generator=generator) * 2 - 1, 16, 100.0)
    rotated = apply_rope(x, table)
    assert torch.equal(rotated[:, :, :5], x[:, :, :5])
    assert_close(rotated.norm(dim=-1), x.norm(dim=-1))  # a rotation


def test_vpe_is_scale_invariant():
    vpe = ViewpointEncoding(64)
    a = vpe(Viewpoint(centers=torch.tensor([[0.2, -0.4]]), scales=torch.tensor([0.5])))
    b = vpe(Viewpoint(centers=torch.tensor([[0.1, -0.2]]), scales=torch.tensor([0.25])))
    c = vpe(Viewpoint(centers=torch.tensor([[0.2, -0.4]]), scales=torch.tensor([0.5])))
    assert_close(a, c)
    assert not torch.allclose(a, b)  # ln s differs


def test_full_scene_glimpse_is_a_resize(generator):
    scene = torch.randn(2, 3, 64, 64, generator=generator)
    glimpse = sample_glimpse(scene, Viewpoint.full_scene(2), 32)
    resized = F.interpolate(scene, size=(32, 32), mode="bilinear", align_corners=False, antialias=False)
    assert_close(glimpse, resized, atol=1e-5, rtol=0)


def test_glimpse_outside_scene_is_zero_padded():
    scene = torch.ones(1, 1, 8, 8)
    viewpoint = Viewpoint(centers=torch.tensor([[0.0, 1.0]]), scales=torch.tensor([1.0]))
    glimpse = sample_glimpse(scene, viewpoint, 8)
    assert torch.all(glimpse[..., :4] == 1) and torch.all(glimpse[..., 4:] == 0)


def test_glimpse_of_a_feature_map_keeps_channels_and_dtype(generator):
    features = torch.randn(3, 7, 16, 16, generator=generator, dtype=torch.float64)
    glimpse = sample_glimpse(features, Viewpoint.full_scene(3), 4)
    assert glimpse.shape == (3, 7, 4, 4) and glimpse.dtype == torch.float64


def test_standardizer_round_trip_and_errors(generator):
    model = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=8, teacher_patch_grid=2)
    standardizer = model.teacher_patch_standardizer
    try:
        standardizer(torch.zeros(1, 4, 8))
        raise AssertionError("an unfitted standardizer must refuse to run")
    except RuntimeError as error:
        assert "not fitted" in str(error)
    samples = torch.randn(16, 4, 8, generator=generator) * 3 + 1
    standardizer.fit(samples)
    standardized = standardizer(samples)
    assert_close(standardized.mean(0), torch.zeros(4, 8), atol=1e-5, rtol=0)
    assert_close(standardizer.destandardize(standardized), samples, atol=1e-5, rtol=0)
    try:
        standardizer(torch.zeros(1, 9, 8))
        raise AssertionError("a wrong grid must be refused")
    except ValueError as error:
        assert "teacher grid" in str(error)


def test_sampling_an_empty_image_is_an_error():
    with pytest.raises(ValueError, match="image must be at least 1 x 1 px, got 0 x 0"):
        sample_glimpse(torch.zeros(1, 3, 0, 0), Viewpoint.full_scene(1), 8)
