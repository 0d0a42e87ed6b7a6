"""Weight selection: the student's backbone is a consistent slice of a DINOv2 teacher's, checked by what it computes."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from tests.pretrain.run_synthetic import config as synthetic_config

from saccade.episode_config import EpisodeConfig
from saccade.model.canvit import CanViT
from saccade.model.config import preset
from saccade.model.rope import RopeTable
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.state import build_model, frozen_backbone_parameters, frozen_write_attention_parameters
from saccade.pretrain.trainer import pretrain
from saccade.pretrain.weight_selection import evenly_spaced, select_from_dinov2
from saccade.teachers import dinov2_bundled
from saccade.teachers.dinov2_bundled import DinoV2, DinoV2Spec


def _teacher(dim: int = 64, heads: int = 4, blocks: int = 3, patch: int = 4) -> DinoV2:
    torch.manual_seed(0)
    teacher = DinoV2(DinoV2Spec(embed_dim=dim, num_heads=heads, num_blocks=blocks, patch_size=patch, pos_grid=4))
    with torch.no_grad():
        for param in teacher.parameters():  # every tensor non-trivial, so a wrong slice shows
            param.copy_(torch.randn_like(param) * 0.3)
    return teacher


def _student(dim: int, heads: int, blocks: int, patch: int) -> CanViT:
    config = preset("canvit-tiny")
    spec = dataclasses.replace(config.backbone, embed_dim=dim, num_heads=heads, num_blocks=blocks, patch_size=patch)
    return CanViT(dataclasses.replace(config, backbone_name="test-student", backbone=spec))


def _identity_rope(tokens: int, head_dim: int) -> RopeTable:
    return RopeTable(cos=torch.ones(1, tokens, head_dim), sin=torch.zeros(1, tokens, head_dim))


def test_evenly_spaced():
    assert evenly_spaced(384, 192).tolist() == list(range(0, 384, 2))
    assert evenly_spaced(6, 3).tolist() == [0, 2, 4]
    assert evenly_spaced(5, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot select 4 of 3"):
        evenly_spaced(3, 4)


def test_a_full_size_selection_computes_the_teacher_blocks():
    teacher = _teacher()
    student = _student(64, 4, 3, 4)
    select_from_dinov2(student, teacher)
    x = torch.randn(2, 7, 64)
    for mine, theirs in zip(student.backbone.blocks, teacher.blocks, strict=True):
        mine.norm1.eps = mine.norm2.eps = theirs.norm1.eps  # the only difference: LayerNorm eps
        # without rotation the student block is the teacher block (key bias dropped: softmax ignores it)
        torch.testing.assert_close(mine(x, _identity_rope(7, 16)), theirs(x), atol=1e-5, rtol=1e-5)


def test_selected_heads_compute_the_teacher_heads_on_the_selected_channels():
    teacher = _teacher(dim=64, heads=4)
    student = _student(32, 2, 2, 4)  # half the channels, heads 0 and 2, first 2 blocks
    select_from_dinov2(student, teacher)
    channels, heads = evenly_spaced(64, 32), [0, 2]
    x = torch.randn(2, 5, 32)
    wide = torch.zeros(2, 5, 64)
    wide[..., channels] = x  # the teacher sees the student's channels and zeros elsewhere
    theirs = teacher.blocks[1]
    q, k, v = (proj(wide).view(2, 5, 4, 16).transpose(1, 2) for proj in theirs.qkv)
    per_head = F.scaled_dot_product_attention(q, k, v)  # [2, 4, 5, 16]
    keep = torch.zeros(4, 1, 1)
    keep[heads] = 1
    expected = theirs.proj((per_head * keep).transpose(1, 2).reshape(2, 5, 64))[..., channels]
    got = student.backbone.blocks[1].attn(x, _identity_rope(5, 16))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the MLP likewise sees every other hidden unit
    hidden = evenly_spaced(256, 128)
    expected_mlp = theirs.fc2.weight[channels][:, hidden] @ F.gelu(theirs.fc1(wide)[..., hidden]).unsqueeze(-1)
    got_mlp = student.backbone.blocks[1].mlp(x) - theirs.fc2.bias[channels]
    torch.testing.assert_close(got_mlp, expected_mlp.squeeze(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(student.backbone.blocks[1].ls2.gamma, theirs.ls2[channels])


def test_the_resized_patch_kernel_keeps_the_response_to_flat_colour():
    teacher = _teacher(dim=64, heads=4, patch=4)
    with torch.no_grad():  # a kernel that is constant per input channel, so resizing is exact
        teacher.patch.weight.copy_(torch.randn(64, 3, 1, 1).expand(64, 3, 4, 4))
    student = _student(32, 2, 2, 8)
    select_from_dinov2(student, teacher)
    colour = torch.randn(1, 3, 1, 1)
    theirs = teacher.patch(colour.expand(1, 3, 4, 4)).flatten()[evenly_spaced(64, 32)]
    mine = student.backbone.patch_embed(colour.expand(1, 3, 8, 8)).flatten()
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(student.init_recurrent_cls, (teacher.cls + teacher.pos_cls)[..., evenly_spaced(64, 32)])


def test_incompatible_sizes_are_named():
    teacher = _teacher(dim=64, heads=4, blocks=3)
    with pytest.raises(ValueError, match="head width 32 differs from the teacher's 16"):
        select_from_dinov2(_student(64, 2, 2, 4), teacher)
    with pytest.raises(ValueError, match="num_blocks 4 exceeds the teacher's 3"):
        select_from_dinov2(_student(32, 2, 4, 4), teacher)


def test_pretraining_starts_from_the_selected_teacher_weights(monkeypatch, small_teacher):
    teacher = small_teacher  # head width 32 as canvit-tiny's
    config = PretrainConfig(
        model="canvit-tiny", episode=EpisodeConfig(canvas_grid=4), batch_size=2, backbone_init="dinov2-s14-imgfocus"
    )
    selected = build_model(config, teacher_dim=8).canvit
    expected = CanViT(preset("canvit-tiny"))
    select_from_dinov2(expected, teacher)
    for name, value in expected.backbone.state_dict().items():
        assert torch.equal(selected.backbone.state_dict()[name], value), name
    random = build_model(dataclasses.replace(config, backbone_init="random"), teacher_dim=8).canvit
    assert not torch.equal(random.backbone.blocks[0].attn.qkv.weight, selected.backbone.blocks[0].attn.qkv.weight)
    # the rest of the model is initialised as usual, from the same seed
    torch.testing.assert_close(random.init_canvas_patch, selected.init_canvas_patch)
    # a resumed run does not load the teacher: the checkpoint overwrites every weight
    monkeypatch.setattr(dinov2_bundled, "load_bundled_dinov2", lambda: pytest.fail("teacher loaded on resume"))
    build_model(config, teacher_dim=8, resuming=True)


def test_backbone_learning_rate_scale(tmp_path):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    base = synthetic_config(str(tmp_path / "frozen"), 3)
    frozen = pretrain(dataclasses.replace(base, backbone_lr_scale=0.0), train, progress=False).model
    start = build_model(base, teacher_dim=16)  # same seed: the weights training started from
    for name, value in start.canvit.backbone.state_dict().items():
        assert torch.equal(frozen.canvit.backbone.state_dict()[name], value), name  # lr 0: weight decay too
    assert not torch.equal(frozen.canvit.init_canvas_patch, start.canvit.init_canvas_patch)  # the rest learns


def _record_block_graphs(monkeypatch, model) -> list[bool]:
    """Per backbone block call from now on: whether its output is part of an autograd graph."""
    graphs: list[bool] = []
    block_type = type(model.canvit.backbone.blocks[0])
    block_forward = block_type.forward

    def recording_forward(self, *args, **kwargs):
        output = block_forward(self, *args, **kwargs)
        graphs.append(output.requires_grad)
        return output

    monkeypatch.setattr(block_type, "forward", recording_forward)
    return graphs


def _assert_backbone_kept_and_writes_learned(start, trained) -> None:
    """Every weight that freeze_backbone keeps is as at the start; the Writes' values moved."""
    kept = ("canvit.backbone.", "canvit.backbone_registers", "canvit.init_recurrent_cls", "canvit.vpe")
    for name, value in start.state_dict().items():
        if name.startswith(kept):
            assert torch.equal(trained.state_dict()[name], value), name
    assert not torch.equal(trained.canvit.canvas_writes[0].v_map.weight, start.canvit.canvas_writes[0].v_map.weight)


def test_frozen_backbone_keeps_the_glimpse_stream_and_needs_no_backbone_gradient(tmp_path, monkeypatch):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    base = synthetic_config(str(tmp_path / "frozen"), 3)
    model_file = tmp_path / "no-reads.json"
    model_file.write_text(json.dumps({**preset("canvit-tiny").to_dict(), "enable_reads": False}))
    config = dataclasses.replace(base, model=str(model_file), freeze_backbone=True)
    start = build_model(config, teacher_dim=16)
    frozen = {id(p) for p in frozen_backbone_parameters(start.canvit)}
    assert frozen and all(not p.requires_grad for p in frozen_backbone_parameters(start.canvit))
    assert all(p.requires_grad for p in start.parameters() if id(p) not in frozen)

    backbone_forwards = _record_block_graphs(monkeypatch, start)  # no Reads: nothing feeding the backbone learns
    trained = pretrain(config, train, progress=False).model
    assert backbone_forwards and not any(backbone_forwards)
    _assert_backbone_kept_and_writes_learned(start, trained)


def test_frozen_write_attention_keeps_where_the_writes_look_and_lets_their_values_learn(tmp_path):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    model_file = tmp_path / "sink.json"
    model_file.write_text(json.dumps({**preset("canvit-tiny").to_dict(), "canvas_write_sink": True}))
    base = synthetic_config(str(tmp_path / "frozen"), 3)
    config = dataclasses.replace(
        base, model=str(model_file), canvas_start="local-position", freeze_write_attention=True
    )
    start = build_model(config, teacher_dim=16)
    kept = {id(p) for p in frozen_write_attention_parameters(start.canvit)}
    assert len(kept) == 6 * len(start.canvit.canvas_writes)  # LN_q weight and bias, k weight and bias, the sink's 2
    assert all(p.requires_grad for p in start.parameters() if id(p) not in kept)
    trained = pretrain(config, train, progress=False).model
    for before, after in zip(start.canvit.canvas_writes, trained.canvit.canvas_writes, strict=True):
        for name in ("ln_q.weight", "ln_q.bias", "k_map.weight", "k_map.bias", "sink_logit", "sink_zoom"):
            assert torch.equal(after.state_dict()[name], before.state_dict()[name]), name
        assert not after.ln_q.weight.any() and not after.k_map.weight.any()  # the position start, kept
        assert not torch.equal(after.v_map.weight, before.v_map.weight)


def test_a_backbone_frozen_for_the_first_steps_learns_after_them(tmp_path, monkeypatch):
    train = synthetic_dataset(32, scene_px=64, grid=4, dim=16, seed=0)
    model_file = tmp_path / "no-reads.json"
    model_file.write_text(json.dumps({**preset("canvit-tiny").to_dict(), "enable_reads": False}))
    base = dataclasses.replace(synthetic_config(str(tmp_path / "run"), 3), model=str(model_file))
    config = dataclasses.replace(base, backbone_frozen_steps=2)
    start = build_model(config, teacher_dim=16)
    backbone_forwards = _record_block_graphs(monkeypatch, start)  # a graph only once the backbone learns
    after_two = pretrain(dataclasses.replace(config, steps=2), train, progress=False).model
    assert backbone_forwards and not any(backbone_forwards)
    _assert_backbone_kept_and_writes_learned(start, after_two)
    backbone_forwards.clear()
    after_three = pretrain(config, train, progress=False, allow_config_change=True).model  # resumes at step 2
    assert backbone_forwards and all(backbone_forwards)
    block = "canvit.backbone.blocks.0.mlp.fc1.weight"
    assert not torch.equal(after_three.state_dict()[block], start.state_dict()[block])
    backbone_forwards.clear()  # the same three steps in one run: the backbone starts learning at step 2
    uninterrupted = pretrain(dataclasses.replace(config, output_dir=str(tmp_path / "one-run")), train, progress=False)
    assert True in backbone_forwards and not backbone_forwards[0]  # frozen steps first, then learning ones
    learning_from = backbone_forwards.index(True)
    assert all(backbone_forwards[learning_from:])
    torch.testing.assert_close(uninterrupted.model.state_dict()[block], after_three.state_dict()[block])
    with pytest.raises(ValueError, match="freeze_backbone keeps the backbone frozen for every step"):
        PretrainConfig(freeze_backbone=True, backbone_frozen_steps=5)


def test_frozen_backbone_refuses_a_backbone_learning_rate():
    with pytest.raises(ValueError, match=r"freeze_backbone and backbone_lr_scale=0\.5 both set"):
        PretrainConfig(freeze_backbone=True, backbone_lr_scale=0.5)
