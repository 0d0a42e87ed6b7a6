"""Metrics against hand-computed confusion matrices; upsample-then-argmax; top-k; bootstrap intervals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from saccade.evaluate.metrics import ConfusionMatrix, TopKAccuracy, bootstrap_ci, predict_segmentation


def test_confusion_matrix_by_hand_with_ignore_index():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 255]))
    # rows = true, columns = predicted; the ignored pixel (predicted 2) counts nowhere.
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm.intersection.tolist() == [1, 2, 0]
    assert cm.union.tolist() == [3, 3, 1]
    assert_close(cm.per_class_iou(), torch.tensor([1 / 3, 2 / 3, 0.0], dtype=torch.float64))
    assert cm.mean_iou() == pytest.approx(1 / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)


def test_absent_classes_are_skipped_but_false_positives_count():
    cm = ConfusionMatrix(4)  # class 3 neither present nor predicted
    cm.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 255]))
    assert math.isnan(float(cm.per_class_iou()[3]))
    assert cm.mean_iou() == pytest.approx(1 / 3)
    # Predicting an absent class gives it a union > 0 and an IoU of 0, which does count.
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    assert cm.per_class_iou().tolist() == [0.5, 0.0]
    assert cm.mean_iou() == pytest.approx(0.25)


def test_global_miou_sums_over_the_set_not_per_image():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([[0, 0]]), torch.tensor([[0, 0]]))  # image A
    cm.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[1, 1, 1, 1]]))  # image B
    assert cm.matrix.tolist() == [[2, 0], [1, 3]]
    assert cm.mean_iou() == pytest.approx((2 / 3 + 3 / 4) / 2)  # 0.7083; the per-image mean would be 0.6875
    merged = ConfusionMatrix(2)
    merged.merge(cm)
    assert torch.equal(merged.matrix, cm.matrix)


def test_matches_torchmetrics_when_installed():
    torchmetrics = pytest.importorskip("torchmetrics")
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (4, 16, 16), generator=generator)
    targets[:, :2] = 255
    predictions = torch.randint(0, 5, (4, 16, 16), generator=generator)
    cm = ConfusionMatrix(5)
    reference = torchmetrics.classification.MulticlassJaccardIndex(num_classes=5, average="macro", ignore_index=255)
    for p, t in zip(predictions, targets, strict=True):
        cm.update(p, t)
        reference.update(p, t)
    assert cm.mean_iou() == pytest.approx(float(reference.compute()), abs=1e-6)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="ignore_index"):
        ConfusionMatrix(3, ignore_index=1)
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="target ids must be in"):
        cm.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="differ"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))
    assert math.isnan(cm.mean_iou()) and math.isnan(cm.pixel_accuracy())


def test_logits_are_upsampled_before_the_argmax():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, generator=generator)
    predicted = predict_segmentation(logits, (12, 12))
    upsampled = F.interpolate(logits, size=(12, 12), mode="bilinear", align_corners=False)
    assert predicted.shape == (2, 12, 12)
    assert torch.equal(predicted, upsampled.argmax(dim=1))
    nearest = F.interpolate(logits.argmax(dim=1, keepdim=True).float(), size=(12, 12), mode="nearest")[:, 0].long()
    assert not torch.equal(predicted, nearest)  # the order matters, and this is the paper's


def test_top_k_by_hand():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    meter = TopKAccuracy((1, 2, 5))
    meter.update(logits, torch.tensor([2, 0, 1]))
    assert meter.accuracy(1) == pytest.approx(1 / 3)  # only item 1
    assert meter.accuracy(2) == pytest.approx(1.0)
    assert meter.accuracy(5) == 1.0  # k > C: always right
    with pytest.raises(ValueError, match="not tracked"):
        meter.accuracy(3)


def test_bootstrap_interval_sanity():
    generator = torch.Generator().manual_seed(1)
    mean, half = bootstrap_ci([0.4, 0.4, 0.4], generator=generator)
    assert float(mean) == pytest.approx(0.4) and float(half) == pytest.approx(0.0)
    mean, half = bootstrap_ci([0.3])
    assert float(mean) == pytest.approx(0.3) and math.isnan(float(half))
    # Normal samples: the 95% interval of the mean is about 1.96 sigma / sqrt(R) on each side.
    samples = 0.5 + 0.1 * torch.randn(400, generator=generator, dtype=torch.float64)
    mean, half = bootstrap_ci(samples, num_resamples=4000, generator=generator)
    assert float(half) == pytest.approx(1.96 * float(samples.std()) / 20, rel=0.15)
    # [R, T] gives one interval per timestep, and a seeded generator repeats it.
    runs = torch.rand(10, 5, generator=generator, dtype=torch.float64)
    first = bootstrap_ci(runs, generator=torch.Generator().manual_seed(3))
    second = bootstrap_ci(runs, generator=torch.Generator().manual_seed(3))
    assert first[0].shape == first[1].shape == (5,)
    assert torch.equal(first[1], second[1])
    assert bool((first[1] > 0).all())
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
