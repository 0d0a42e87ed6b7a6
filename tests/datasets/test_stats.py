"""Standardizer statistics from shards equal a direct computation over all stored features."""

from __future__ import annotations

import pytest
import torch

from saccade.data.export import ExportConfig, export_features
from saccade.data.scenes import ImageFolderScenes
from saccade.data.shards import TeacherFeatures
from saccade.data.stats import RunningMoments, fill_pretraining_standardizers, fit_standardizers
from saccade.model.config import preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer
from tests.datasets.helpers import SIZE_PX, make_image_folder, tiny_teacher


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> TeacherFeatures:
    root = tmp_path_factory.mktemp("stats")
    scenes = ImageFolderScenes(make_image_folder(root / "scenes", 10), size_px=SIZE_PX)
    config = ExportConfig(shard_size=4, batch_size=4)
    export_features(scenes, tiny_teacher(), root / "out", config=config, progress=False)
    return TeacherFeatures(root / "out")


def _stored(features: TeacherFeatures, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    patches = torch.stack([features[i].patches.double() for i in range(count)]).flatten(1, 2)  # [S, h*w, D]
    cls = torch.stack([features[i].cls.double() for i in range(count)])  # [S, D]
    return patches, cls


@pytest.mark.parametrize("chunk_images", [1, 3, 64])
def test_matches_direct_fit(features, chunk_images):
    patch, cls = fit_standardizers(features, chunk_images=chunk_images, progress=False)
    all_patches, all_cls = _stored(features, len(features))
    direct_patch = Standardizer(4, 16).fit(all_patches)
    direct_cls = Standardizer(1, 16).fit(all_cls[:, None])
    for ours, direct in ((patch, direct_patch), (cls, direct_cls)):
        assert bool(ours.fitted)
        torch.testing.assert_close(ours.mean, direct.mean, rtol=0, atol=1e-6)
        torch.testing.assert_close(ours.var, direct.var, rtol=1e-5, atol=1e-7)
    x = all_patches[:2].float()
    torch.testing.assert_close(patch(x), direct_patch(x))


def test_max_images_uses_the_first_images(features):
    patch, cls = fit_standardizers(features, max_images=5, chunk_images=2, progress=False)
    all_patches, all_cls = _stored(features, 5)
    torch.testing.assert_close(patch.mean, all_patches.mean(0).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(cls.var[0], all_cls.var(0, unbiased=False).float(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="need at least 2 images"):
        fit_standardizers(features, max_images=1, progress=False)


def test_running_moments_are_exact_for_large_offsets(generator):
    samples = 1e4 + torch.randn(1000, 3, 5, generator=generator, dtype=torch.float64) * 1e-2
    moments = RunningMoments((3, 5))
    for chunk in samples.split(37):
        moments.update(chunk)
    assert moments.count == 1000
    torch.testing.assert_close(moments.mean, samples.mean(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(moments.var, samples.var(0, unbiased=False), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match=r"samples must be \[b, 3, 5\], got \[2, 5\]"):
        moments.update(torch.zeros(2, 5))


def test_fill_pretraining_standardizers(features):
    model = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=2)
    fill_pretraining_standardizers(model, features, progress=False)
    patch, _ = fit_standardizers(features, progress=False)
    torch.testing.assert_close(model.teacher_patch_standardizer.var, patch.var)
    assert bool(model.teacher_cls_standardizer.fitted)
    wrong = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=4)
    with pytest.raises(ValueError, match="hold a 2x2 grid of 16-d teacher features, the model expects 4x4 of 16-d"):
        fill_pretraining_standardizers(wrong, features, progress=False)
