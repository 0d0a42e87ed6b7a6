"""The canvas pictures: principal directions that do not depend on chance, predictions coloured on their own range."""

from __future__ import annotations

import torch

from saccade.pretrain.validate import _pca_rgb, _predictions_rgb, _top_components


def test_top_components_are_the_exact_principal_directions_whatever_the_rng():
    torch.manual_seed(0)
    directions = torch.linalg.qr(torch.randn(12, 3))[0]  # [D, 3] orthonormal
    data = torch.randn(40, 3) * torch.tensor([5.0, 3.0, 1.0]) @ directions.T + 0.01 * torch.randn(40, 12)  # [N, D]
    data = data - data.mean(0)
    torch.manual_seed(1)
    first = _top_components(data, 3)
    torch.manual_seed(2)
    assert torch.equal(first, _top_components(data, 3))
    torch.testing.assert_close(first.T @ first, torch.eye(3), atol=1e-5, rtol=0)
    overlap = (first.T @ directions).abs()  # [3, 3]: one direction each, in order of variance
    assert bool((overlap.diagonal() > 0.99).all())
    assert bool((first.gather(0, first.abs().argmax(0, keepdim=True)) > 0).all())  # the sign convention


def test_a_smooth_prediction_off_the_teachers_centre_keeps_its_structure_on_its_own_range():
    torch.manual_seed(0)
    teacher = torch.randn(64, 8) * 3  # [G*G, D]
    basis = _top_components(teacher - teacher.mean(0), 3)
    prediction = 0.05 * teacher + 10.0  # the teacher's structure, shrunk and shifted
    projected = (teacher - teacher.mean(0)) @ basis
    on_teacher_range = _pca_rgb(prediction, basis, teacher.mean(0), projected.min(0).values, projected.max(0).values)
    assert on_teacher_range.std(0).max() < 0.02  # nearly one colour
    (own,) = _predictions_rgb([prediction], basis)
    teacher_rgb = _pca_rgb(teacher, basis, teacher.mean(0), projected.min(0).values, projected.max(0).values)
    torch.testing.assert_close(own, teacher_rgb, atol=1e-5, rtol=0)  # the same picture as the teacher's
    assert teacher_rgb.std(0).min() > 0.1
