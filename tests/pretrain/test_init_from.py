"""PretrainConfig.init_from: a run starts from every weight and standardizer of a saved pretraining model."""

from __future__ import annotations

import pytest
import torch

from saccade.episode_config import EPISODES
from saccade.model.checkpoint import save_pretrained
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.state import build_model

CPU = EPISODES["cpu"]  # an 8 x 8 canvas: small standardizers


def _saved_start(folder, model="canvit-tiny", teacher_dim=16):
    torch.manual_seed(1)
    start = build_model(PretrainConfig(model=model, episode=CPU), teacher_dim=teacher_dim)
    with torch.no_grad():
        for param in start.parameters():
            param.add_(torch.randn_like(param))  # not what a fresh model of any seed holds
        start.teacher_patch_standardizer.fit(torch.randn(8, 64, teacher_dim) * 3 + 2)  # [S, G*G, D_t]
        start.teacher_cls_standardizer.fit(torch.randn(8, teacher_dim) * 3 + 2)  # [S, D_t]
    return start, save_pretrained(start, folder)


def test_a_run_starts_from_every_tensor_of_the_saved_model(tmp_path):
    start, folder = _saved_start(tmp_path / "start")
    model = build_model(PretrainConfig(model="canvit-tiny", init_from=str(folder), episode=CPU), teacher_dim=16)
    expected = start.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def test_a_resumed_run_keeps_its_checkpoint_instead(tmp_path):
    start, folder = _saved_start(tmp_path / "start")
    config = PretrainConfig(model="canvit-tiny", init_from=str(folder), episode=CPU)
    resumed = build_model(config, teacher_dim=16, resuming=True)
    # the checkpoint will overwrite it
    assert not torch.equal(resumed.canvit.init_recurrent_cls, start.canvit.init_recurrent_cls)


def test_another_model_or_teacher_is_refused(tmp_path):
    _, folder = _saved_start(tmp_path / "start")
    with pytest.raises(ValueError, match=r"another model than PretrainConfig\.model"):
        build_model(PretrainConfig(model="canvit-t16d6", init_from=str(folder), episode=CPU), teacher_dim=16)
    with pytest.raises(ValueError, match="teacher"):  # the readouts' width is the teacher's
        build_model(PretrainConfig(model="canvit-tiny", init_from=str(folder), episode=CPU), teacher_dim=24)


def test_a_start_that_init_from_would_overwrite_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"backbone_init .* and canvas_start .* would be overwritten"):
        PretrainConfig(init_from=str(tmp_path), canvas_start="local")


def test_a_missing_start_names_the_folder(tmp_path):
    config = PretrainConfig(model="canvit-tiny", init_from=str(tmp_path / "missing-start"), episode=CPU)
    with pytest.raises(Exception, match="missing-start"):
        build_model(config, teacher_dim=16)


def test_a_model_without_teacher_readouts_is_refused(tmp_path):
    from saccade import CanViT, preset

    folder = save_pretrained(CanViT(preset("canvit-tiny")), tmp_path / "canvit")
    with pytest.raises(ValueError, match="without teacher readouts; a run starts from a pretraining model"):
        build_model(PretrainConfig(model="canvit-tiny", init_from=str(folder), episode=CPU), teacher_dim=16)


def test_a_start_with_another_patch_readout_is_refused_by_name(tmp_path):
    _, folder = _saved_start(tmp_path / "start")
    config = PretrainConfig(model="canvit-tiny", init_from=str(folder), episode=CPU, patch_readout_blocks=1)
    with pytest.raises(ValueError, match="through 0 transformer block"):
        build_model(config, teacher_dim=16)
