"""Bootstrap intervals over test scenes and runs: per-scene confusions sum to the global mIoU, intervals cover the
truth and shrink with more scenes, and paired differences remove what two policies' scenes share."""

from __future__ import annotations

import pytest
import torch

from saccade.evaluate.intervals import bootstrap, difference, global_mean_iou, mean_over_scenes
from saccade.evaluate.metrics import ConfusionMatrix, mean_iou_of, scene_confusions


def test_scene_confusions_sum_to_the_global_matrix():
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randint(0, 4, (5, 6, 7), generator=generator)
    targets = torch.randint(0, 4, (5, 6, 7), generator=generator)
    targets[0, 0, :3] = 255  # ignored
    per_scene = scene_confusions(predicted, targets, 4)  # [5, 4, 4]
    meter = ConfusionMatrix(4)
    meter.update(predicted, targets)
    assert per_scene.shape == (5, 4, 4)
    assert torch.equal(per_scene.sum(0), meter.matrix)
    assert int(per_scene[0].sum()) == 6 * 7 - 3
    assert float(mean_iou_of(per_scene.sum(0))) == pytest.approx(float(meter.per_class_iou().nanmean()), abs=1e-12)


def test_scene_confusions_refuse_ids_out_of_range():
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        scene_confusions(torch.full((1, 2, 2), 3), torch.zeros(1, 2, 2, dtype=torch.long), 3)


def test_mean_iou_skips_classes_neither_present_nor_predicted():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 absent: mean over 2 classes
    assert float(mean_iou_of(confusion)) == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_interval_covers_the_mean_and_shrinks_with_more_scenes():
    generator = torch.Generator().manual_seed(0)
    few = 0.5 + 0.1 * torch.randn(2, 20, 3, generator=generator)  # [R, N, T]
    many = 0.5 + 0.1 * torch.randn(2, 2000, 3, generator=generator)
    small, large = bootstrap(mean_over_scenes, few), bootstrap(mean_over_scenes, many)
    assert bool((small.low <= small.mean).all() and (small.mean <= small.high).all())
    assert bool(((large.high - large.low) < (small.high - small.low) / 5).all())
    assert bool((large.low < 0.5).all() and (large.high > 0.5).all())
    assert torch.allclose(large.mean, many.double().mean((0, 1)))


def test_a_paired_difference_removes_what_the_scenes_share():
    generator = torch.Generator().manual_seed(0)
    scene_difficulty = torch.randn(1, 200, 1, generator=generator)  # large spread shared by both policies
    baseline = scene_difficulty + 0.01 * torch.randn(1, 200, 4, generator=generator)
    better = baseline + 0.05  # every scene 0.05 better
    gap = difference(mean_over_scenes, better, baseline)
    assert bool((gap.low > 0.04).all() and (gap.high < 0.06).all())
    alone = bootstrap(mean_over_scenes, better)
    assert bool(((alone.high - alone.low) > 10 * (gap.high - gap.low)).all())


def test_global_mean_iou_of_confusions():
    confusion = torch.zeros(2, 3, 1, 2, 2, dtype=torch.long)  # [R, N, T, C, C]
    confusion[:, :, 0, 0, 0] = 1
    confusion[:, :, 0, 1, 1] = 1
    confusion[0, 0, 0, 1, 0] = 1  # one miss in run 0
    per_run = mean_iou_of(confusion.sum(1))  # [R, T]
    assert torch.allclose(global_mean_iou(confusion), per_run.mean(0))
    with pytest.raises(ValueError, match="same scenes"):
        difference(global_mean_iou, confusion, confusion[:, :2])
