"""Segmenter and Classifier over released layouts: authors' probe folders, a fused teacher probe, a fine-tuned
classifier; each checked against the model's own pieces (canvas probe, CLS readout + destandardizer + probe)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import saccade
from saccade.episode import rollout
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import make_policy
from saccade.probes.heads import ProbeConfig, SegmentationProbe
from saccade.probes.released import load_released_segmentation_probe, load_teacher_linear_probe
from saccade.tasks import Classifier, Segmenter, task_episode, to_scene

GRID, TEACHER_DIM, CLASSES = 4, 16, 5
EPISODE = EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=GRID, num_glimpses=5)


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny pretraining checkpoint (named like a release), a canvas probe folder and a teacher-CLS probe folder."""
    root = tmp_path_factory.mktemp("released")
    torch.manual_seed(0)
    model = CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=TEACHER_DIM, teacher_patch_grid=GRID)
    model.teacher_cls_standardizer.fit(torch.randn(64, TEACHER_DIM) * 3 + 1)
    model.teacher_patch_standardizer.fit(torch.randn(64, GRID * GRID, TEACHER_DIM))
    pretrained = root / "canvitt-add-vpe-pretrain-g32px-s64px-test-dv3b16"
    saccade.save_pretrained(model, pretrained)
    probe = SegmentationProbe(ProbeConfig(task="segmentation", in_dim=model.config.canvas_dim, num_classes=CLASSES))
    with torch.no_grad():
        for tensor in probe.parameters():
            tensor.normal_()
        probe.bn.running_mean.normal_()
        probe.bn.running_var.uniform_(0.5, 2)
    seg = root / "probe-ade20k-40k-s64-c4-test"
    seg.mkdir()
    config = {"embed_dim": model.config.canvas_dim, "num_classes": CLASSES, "dropout": 0.1, "use_ln": True}
    (seg / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, str(seg / "model.safetensors"))
    clf = root / "dinov3-test-linear-clf-probe"
    clf.mkdir()
    save_file(
        {"weight": torch.randn(CLASSES, TEACHER_DIM), "bias": torch.randn(CLASSES)}, str(clf / "model.safetensors")
    )
    return {"root": root, "pretrained": pretrained, "seg": seg, "clf": clf}


def test_an_authors_segmentation_probe_folder_loads_strictly(released):
    probe = load_released_segmentation_probe(released["seg"])
    assert probe.config.layer_norm and probe.config.num_classes == CLASSES and not probe.training
    (released["root"] / "broken").mkdir(exist_ok=True)
    (released["root"] / "broken" / "config.json").write_text(json.dumps({"embed_dim": 8, "num_classes": 2}))
    with pytest.raises(ValueError, match="a segmentation probe's config needs 'use_ln'"):
        load_released_segmentation_probe(released["root"] / "broken")


def test_the_episode_comes_from_the_release_name_unless_recorded_or_given():
    name = "canvit/canvitb16-add-vpe-pretrain-g128px-s512px-in21k-dv3b16-2026-02-02"
    assert task_episode(name, teacher_patch_grid=32) == EPISODES["paper"]
    assert task_episode(name, teacher_patch_grid=16, num_glimpses=5).canvas_grid == 16
    assert task_episode("anything", recorded=EPISODES["cpu"], glimpse_px=64).glimpse_px == 64
    assert task_episode("canvitb16-g64px-s256px", teacher_patch_grid=8).scene_px == 256
    assert task_episode("canvitb16-finetune-g64px-s256px").canvas_grid == 16  # no teacher: scene px / 16


def test_segmenter_logits_are_the_probe_on_each_canvas_upsampled(released):
    segmenter = Segmenter.from_pretrained(str(released["pretrained"]), probe=str(released["seg"]), num_glimpses=5)
    assert segmenter.episode == EPISODE  # g32px-s64px from the name, the teacher grid, 5 glimpses given
    image = torch.randint(0, 256, (2, 3, 48, 80), dtype=torch.uint8)
    logits = segmenter.predict(image, policy="C2F", generator=torch.Generator().manual_seed(3))
    assert logits.shape == (5, 2, CLASSES, 48, 80) and logits.dtype == torch.float32
    scenes = to_scene(image, 64)
    policy = make_policy("C2F", batch_size=2, generator=torch.Generator().manual_seed(3), num_levels=2)
    steps = rollout(segmenter.canvit, scenes, policy, num_glimpses=5, glimpse_px=32, canvas_grid=GRID)
    for t, step in enumerate(steps):
        expected = segmenter.probe(step.state.canvas_patch_grid())  # [2, C, 4, 4]
        upsampled = torch.nn.functional.interpolate(expected, size=(48, 80), mode="bilinear", align_corners=False)
        torch.testing.assert_close(logits[t], upsampled, atol=1e-5, rtol=1e-5)
    labels = segmenter.segment(image, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(labels, logits[-1].argmax(1))
    eg = segmenter.predict(image, policy="EG-C2F")  # the probe itself steers EG-C2F
    assert eg.shape == logits.shape


def test_segmenter_takes_files_and_pil_images_at_their_own_size(released, tmp_path):
    segmenter = Segmenter.from_pretrained(str(released["pretrained"]), probe=str(released["seg"]), num_glimpses=2)
    Image.new("RGB", (70, 30), (120, 40, 200)).save(tmp_path / "photo.png")
    labels = segmenter.segment(tmp_path / "photo.png")
    assert labels.shape == (1, 30, 70)
    with Image.open(tmp_path / "photo.png") as image:
        assert torch.equal(segmenter.segment(image), labels)


def test_fused_classifier_is_the_teacher_probe_on_the_destandardized_cls(released):
    classifier = Classifier.from_pretrained(str(released["pretrained"]), probe=str(released["clf"]), num_glimpses=3)
    model = saccade.load_pretrained(released["pretrained"])
    probe = load_teacher_linear_probe(released["clf"])
    image = torch.randn(2, 3, 64, 64)
    logits = classifier.predict(image, policy="RFS")  # [T, B, C]
    steps = rollout(model, image, make_policy("RFS", batch_size=2), num_glimpses=3, glimpse_px=32, canvas_grid=GRID)
    for t, step in enumerate(steps):
        teacher_cls = model.teacher_cls_standardizer.destandardize(model.predict_teacher_cls(step.state))  # [B, D_t]
        torch.testing.assert_close(logits[t], teacher_cls @ probe.weight.T + probe.bias, atol=1e-5, rtol=1e-5)
    top = classifier.top_k(image, k=3, policy="RFS")
    assert [c for c, _ in top[0]] == logits[-1, 0].topk(3).indices.tolist()
    assert all(0 < p <= 1 for c, p in top[1])


def test_fine_tuned_classifier_folder_loads_and_plain_models_refuse_a_probe(released, tmp_path):
    model = saccade.load_pretrained(released["pretrained"])
    folder = tmp_path / "canvitt-add-vpe-finetune-g32px-s64px-test"
    folder.mkdir()
    authors_config = json.loads((released["pretrained"] / "config.json").read_text())["canvit_config"]
    config = {"canvit_config": _authors_fields(authors_config), "n_classes": CLASSES}
    (folder / "config.json").write_text(json.dumps(config))
    readout = torch.nn.Linear(model.config.backbone.embed_dim, CLASSES)
    tensors = {f"canvit.{k}": v for k, v in model.canvit.state_dict().items()}
    tensors |= {"readout.norm.weight": torch.rand(64) + 0.5, "readout.norm.bias": torch.randn(64)}
    tensors |= {"readout.proj.weight": readout.weight.detach(), "readout.proj.bias": readout.bias.detach()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    classifier = Classifier.from_pretrained(str(folder), canvas_grid=GRID, num_glimpses=2)
    assert classifier.num_classes == CLASSES and classifier.episode.scene_px == 64
    state = classifier.canvit.init_state(batch_size=1, canvas_grid=GRID)
    norm = (tensors["readout.norm.weight"], tensors["readout.norm.bias"])
    expected = readout(torch.nn.functional.layer_norm(state.recurrent_cls[:, 0], (64,), *norm))
    torch.testing.assert_close(classifier.logits(state), expected)
    saccade.save_pretrained(model.canvit, tmp_path / "plain")
    with pytest.raises(ValueError, match="fuses with a pretraining checkpoint"):
        Classifier.from_pretrained(str(tmp_path / "plain"), probe=str(released["clf"]))


def _authors_fields(saccade_config: dict) -> dict:
    """saccade's CanViTConfig dict as the authors' 0.2 fields: the same, without the backbone's spec (a name)."""
    return {key: value for key, value in saccade_config.items() if key != "backbone"}


def test_a_mask_saves_as_a_palette_png_of_its_class_indices(tmp_path):
    from saccade.viz.masks import mask_palette, save_mask

    labels = torch.tensor([[0, 1, 2], [3, 149, 1]])
    path = save_mask(labels[None], tmp_path / "mask.png")
    with Image.open(path) as image:
        assert image.mode == "P" and torch.equal(torch.from_numpy(np.array(image)).long(), labels)
    assert len({tuple(colour) for colour in mask_palette(150)}) == 150  # one colour per class
    with pytest.raises(ValueError, match=r"class indices 0\.\.255, got 0\.\.300"):
        save_mask(torch.tensor([[0, 300]]), tmp_path / "bad.png")


def test_load_probe_reads_a_released_probe_folder_too(released):
    from saccade.probes.heads import load_probe

    probe = load_probe(released["seg"])
    reference = load_released_segmentation_probe(released["seg"])
    for (name, a), (_, b) in zip(probe.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
