"""Flips that move scenes and targets together; the weight average: resumed exactly, saved beside the raw weights."""

from __future__ import annotations

import dataclasses

import torch

from saccade import load_pretrained
from saccade.episode_config import EpisodeConfig
from saccade.pretrain.augment import random_hflip
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import DistillationBatch, synthetic_dataset
from saccade.pretrain.trainer import pretrain


def _batch(B: int = 6, G: int = 4, D: int = 5) -> DistillationBatch:
    scenes = torch.randn(B, 3, 16 * G, 16 * G)
    patches = torch.randn(B, G * G, D)
    return DistillationBatch(scenes=scenes, patches=patches, cls=torch.randn(B, D))


def test_hflip_moves_scene_and_patch_columns_together():
    batch = _batch()
    flipped = random_hflip(batch, prob=1.0, seed=0, step=0)
    assert torch.equal(flipped.scenes, batch.scenes.flip(-1))
    grid = batch.patches.view(6, 4, 4, 5)
    assert torch.equal(flipped.patches.view(6, 4, 4, 5)[:, :, 0], grid[:, :, 3])  # column j <- column G-1-j
    assert torch.equal(flipped.patches.view(6, 4, 4, 5)[:, 1, 2], grid[:, 1, 1])
    assert torch.equal(flipped.cls, batch.cls)
    assert random_hflip(batch, prob=0.0, seed=0, step=0) is batch


def test_hflip_draws_depend_on_seed_and_step_and_slice_the_global_batch():
    batch = _batch(B=8)
    full = random_hflip(batch, prob=0.5, seed=3, step=11)
    again = random_hflip(batch, prob=0.5, seed=3, step=11)
    assert torch.equal(full.scenes, again.scenes)
    changed = (full.scenes != batch.scenes).flatten(1).any(1)
    assert 0 < changed.sum() < 8  # some flipped, some not
    half = DistillationBatch(batch.scenes[4:], batch.patches[4:], batch.cls[4:])
    rank1 = random_hflip(half, prob=0.5, seed=3, step=11, items=slice(4, 8), global_batch=8)
    assert torch.equal(rank1.scenes, full.scenes[4:])


def test_hflip_of_a_batch_on_another_device_stays_there():
    """The draws are made on the CPU and moved to the batch (the teacher in the loop makes batches on the GPU)."""
    batch = _batch()
    on_meta = DistillationBatch(*(tensor.to("meta") for tensor in (batch.scenes, batch.patches, batch.cls)))
    flipped = random_hflip(on_meta, prob=0.5, seed=0, step=0)
    assert flipped.scenes.device.type == flipped.patches.device.type == "meta"


def _config(output_dir, **changes) -> PretrainConfig:
    base = PretrainConfig(
        model="canvit-tiny",
        episode=EpisodeConfig(scene_px=64, glimpse_px=16, canvas_grid=4, num_glimpses=10),
        batch_size=4,
        steps=6,
        warmup_steps=2,
        standardizer_samples=16,
        checkpoint_every=3,
        val_every=0,
        log_every=1,
        output_dir=str(output_dir),
        hflip_prob=0.5,
        ema_decay=0.9,
    )
    return dataclasses.replace(base, **changes)


def test_weight_average_resumes_exactly_and_is_what_gets_saved(tmp_path):
    data = synthetic_dataset(32, scene_px=64, grid=4, dim=16)
    straight = pretrain(_config(tmp_path / "a"), data, progress=False)
    pretrain(_config(tmp_path / "b", steps=3), data, progress=False)
    resumed = pretrain(_config(tmp_path / "b"), data, progress=False, allow_config_change=True)  # 3 -> 6 steps
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    saved, raw = load_pretrained(tmp_path / "a" / "model"), load_pretrained(tmp_path / "a" / "model-raw")
    name = "canvit.backbone.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(saved.state_dict()[name], straight.model.state_dict()[name])
    assert not torch.equal(saved.state_dict()[name], raw.state_dict()[name])  # the average differs from the last step
