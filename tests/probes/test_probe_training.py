"""Probe training: the schedule, mask downsampling, the loss, feature sources, and loss going down on a tiny CanViT."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from saccade import CanViT, preset
from saccade.probes import CanViTFeatures, ProbeConfig, ProbeTrainConfig, TeacherFeatureSource, build_probe, train_probe
from saccade.probes.features import PrecomputedFeatures, precompute
from saccade.probes.train import downsample_mask, infinite_batches, probe_loss
from tests.evaluate.fakes import TinyTeacher, tiny_scenes


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    torch.manual_seed(0)
    return CanViT(preset("canvit-tiny")).eval().requires_grad_(False)


def test_probe_warmup_is_clipped_to_the_steps():
    data = tiny_scenes("classification", num=8, size_px=32, num_classes=3)
    source = TeacherFeatureSource(TinyTeacher(patch_size=8, dim=16), task="classification", input_px=16)
    probe = build_probe(ProbeConfig(task="classification", in_dim=source.dim, num_classes=3))
    config = ProbeTrainConfig(steps=4, batch_size=4, lr=1.0, warmup_steps=10, warmup_start_ratio=0.2)
    batches = infinite_batches(data, batch_size=4, generator=torch.Generator().manual_seed(0))
    result = train_probe(probe, source, batches, config, progress=False)
    assert result.learning_rates == pytest.approx((0.2, 0.4, 0.6, 0.8))  # 0.2 -> 1 over 4 steps, not 10


def test_masks_are_sampled_at_cell_centres():
    masks = torch.arange(64).reshape(1, 8, 8)  # every pixel its own label
    small = downsample_mask(masks, 4)  # 2 x 2 px cells: centre pixel index 1 of each
    assert small[0, 0].tolist() == [9, 11, 13, 15]
    assert small.dtype == torch.int64
    assert torch.equal(downsample_mask(masks, 8), masks)


def test_loss_averages_timesteps_and_skips_ignored_pixels():
    torch.manual_seed(0)
    probe = build_probe(ProbeConfig(task="segmentation", in_dim=8, num_classes=3, dropout=0.0)).eval()
    features = [torch.randn(2, 4, 4, 8), torch.randn(2, 4, 4, 8)]
    masks = torch.randint(0, 3, (2, 8, 8))
    masks[0] = 255
    loss = probe_loss(probe, features, masks)
    labels = downsample_mask(masks, 4)
    expected = torch.stack([F.cross_entropy(probe(f), labels, ignore_index=255) for f in features]).mean()
    torch.testing.assert_close(loss, expected)
    nothing = probe_loss(probe, features, torch.full((2, 8, 8), 255))
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad


def test_train_config_errors_name_the_field():
    for field, value in (("steps", 0), ("lr", 0.0), ("warmup_start_ratio", 0.0), ("warmup_steps", -1)):
        with pytest.raises(ValueError, match=f"ProbeTrainConfig.{field}"):
            ProbeTrainConfig(**{field: value})


def test_canvit_features_replay_with_a_seed(tiny):
    scenes = torch.randn(2, 3, 64, 64)

    def features(task):
        source = CanViTFeatures(
            tiny, task=task, num_glimpses=3, glimpse_px=32, canvas_grid=4, generator=torch.Generator().manual_seed(5)
        )
        return source(scenes)

    grids = features("segmentation")
    assert len(grids) == 3 and grids[0].shape == (2, 4, 4, 96)
    assert all(torch.equal(a, b) for a, b in zip(grids, features("segmentation"), strict=True))
    cls = features("classification")
    assert cls[0].shape == (2, 64)


def test_teacher_features():
    teacher = TinyTeacher(patch_size=8, dim=16)
    scenes = torch.randn(2, 3, 64, 64)
    (patches,) = TeacherFeatureSource(teacher, task="segmentation", input_px=32)(scenes)
    assert patches.shape == (2, 4, 4, 16)
    (cls,) = TeacherFeatureSource(teacher, task="classification", input_px=16)(scenes)
    assert cls.shape == (2, 16)
    with pytest.raises(ValueError, match="multiple of the teacher patch size 8"):
        TeacherFeatureSource(teacher, task="segmentation", input_px=20)


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_probe_on_a_tiny_canvit_reduces_its_loss(tiny, task):
    """A few steps on R-IID rollouts (32 px glimpses, G = 4) of a random tiny CanViT lower the probe's loss."""
    data = tiny_scenes(task, num=16, size_px=64, num_classes=3)
    generator = torch.Generator().manual_seed(0)
    source = CanViTFeatures(tiny, task=task, num_glimpses=3, glimpse_px=32, canvas_grid=4, generator=generator)
    torch.manual_seed(0)
    probe = build_probe(ProbeConfig(task=task, in_dim=source.dim, num_classes=3))
    config = ProbeTrainConfig(steps=30, batch_size=8, lr=1e-2, warmup_steps=3)
    batches = infinite_batches(data, batch_size=8, generator=generator)
    result = train_probe(probe, source, batches, config, progress=False)
    assert len(result.losses) == 30 and not probe.training
    assert result.learning_rates[0] == pytest.approx(1e-2 * 1e-6)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert math.isfinite(last) and last < 0.5 * first, (first, last)


def test_infinite_batches_needs_a_full_batch():
    with pytest.raises(ValueError, match="fewer than batch_size=16"):
        next(infinite_batches(tiny_scenes("classification", num=4), batch_size=16, generator=torch.Generator()))


def test_precomputed_teacher_features_train_the_same_probe():
    data = tiny_scenes("segmentation", num=8)
    source = TeacherFeatureSource(TinyTeacher(patch_size=8, dim=16), task="segmentation", input_px=32)
    features = precompute(source, data, batch_size=3)
    assert len(features) == 8 and features[0][0].shape == (1, 4, 4, 16) and features[0][1].shape == (64, 64)
    scenes, _ = next(iter(torch.utils.data.DataLoader(data, batch_size=8)))
    torch.testing.assert_close(features.tensors[0][:, 0], source(scenes)[0])
    identity = PrecomputedFeatures(task="segmentation", dim=16)
    (step,) = identity(features.tensors[0])
    assert torch.equal(step, features.tensors[0][:, 0])


def test_precomputed_rollouts_hold_every_glimpse_of_the_scene_in_order(tiny):
    data = tiny_scenes("segmentation", num=5)
    source = CanViTFeatures(tiny, task="segmentation", num_glimpses=3, glimpse_px=32, canvas_grid=4, policy="RFS")
    stored = precompute(source, data, batch_size=2)  # batches of 2, 2 and 1 scenes
    assert stored.tensors[0].shape == (5, 3, 4, 4, tiny.config.canvas_dim)
    scenes, targets = next(iter(torch.utils.data.DataLoader(data, batch_size=5)))
    with torch.no_grad():
        direct = source(scenes)  # T x [5, 4, 4, D]
    steps = PrecomputedFeatures(task="segmentation", dim=source.dim)(stored.tensors[0])
    assert len(steps) == 3
    for t in range(3):
        torch.testing.assert_close(steps[t], direct[t], rtol=1e-5, atol=1e-5)
    assert torch.equal(stored.tensors[1], targets)
