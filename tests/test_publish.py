"""saccade.publish and `saccade publish`: the authors' Hub layout, the model card, the reload check, and no push
without --push. Offline, without the authors' package (benchmarks/authors_interop.py checks their loader)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file

import saccade
import saccade.publish as publishing
from saccade.cli import main
from saccade.publish import PublishError, TrainingRecord, publish, push_to_hub, read_publication
from tests.conftest import REFERENCE

EPISODE = {"scene_px": 64, "glimpse_px": 32, "canvas_grid": 4, "num_glimpses": 3}
RECORD = TrainingRecord(
    data="anchor",
    teacher="dinov2-s14-imgfocus",
    steps=300,
    total_steps=300,
    status="complete",
    seed=7,
    git_commit="0123abc",
    versions={"saccade": "0.1.0", "torch": "2.13.0"},
    episode=EPISODE,
)


def tiny_pretraining_model(seed: int = 0) -> saccade.CanViTForPretraining:
    torch.manual_seed(seed)
    model = saccade.CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=4)
    generator = torch.Generator().manual_seed(seed)
    model.teacher_patch_standardizer.fit(torch.randn(8, 16, 16, generator=generator))
    model.teacher_cls_standardizer.fit(torch.randn(8, 16, generator=generator))
    with torch.no_grad():  # LayerScale away from ~0, so that every block changes the outputs
        for name, parameter in model.named_parameters():
            if name.endswith(".gamma"):
                parameter.normal_(0.1, 0.05, generator=generator)
    return model.eval()


def backbone_specs(folder: Path) -> dict[str, dict]:
    return {"vit-tiny": read_publication(folder)["backbone"]}


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[saccade.CanViTForPretraining, Path]:
    model = tiny_pretraining_model()
    folder = tmp_path_factory.mktemp("published") / "tiny"
    evaluation = {"coarse_to_fine": {"miou": [0.25, 0.5]}, "top1": 0.75}
    return model, publish(model, folder, record=RECORD, evaluation=evaluation)


def test_config_is_exactly_the_authors_constructor_arguments(published) -> None:
    _, folder = published
    config = json.loads((folder / "config.json").read_text())
    authors = json.loads((REFERENCE / "checkpoint_v0.2" / "config.json").read_text())  # written by their code
    assert set(config) == set(authors) == {"canvit_config", "teacher_dim", "teacher_patch_grid"}
    assert set(config["canvit_config"]) == set(authors["canvit_config"])
    expected = {
        "backbone_name": "vit-tiny",
        "canvas_head_dim": 48,
        "canvas_num_heads": 2,
        "canvas_projections": "asymmetric",
        "enable_reads": True,
        "enable_vpe": True,
        "num_backbone_registers": 2,
        "num_canvas_registers": 4,
        "rw_stride": 1,
    }
    assert config == {"canvit_config": expected, "teacher_dim": 16, "teacher_patch_grid": 4}


def test_weights_use_the_authors_key_names_in_float32(published) -> None:
    model, folder = published
    tensors = load_file(folder / "model.safetensors")
    authors = load_file(REFERENCE / "checkpoint_v0.2" / "model.safetensors")
    assert set(tensors) == set(authors) == set(model.state_dict())
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float32}
    assert tensors["teacher_cls_standardizer.fitted"].dtype == torch.bool
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "evaluation.json", "model.safetensors", "saccade.json"
    ]  # fmt: skip


def test_the_card_carries_the_training_record_and_the_evaluation(published) -> None:
    _, folder = published
    card = (folder / "README.md").read_text()
    front_matter = card.split("---\n")[1]
    assert "library_name: saccade\n" in front_matter and "license: mit\n" in front_matter
    assert "- canvit\n" in front_matter
    for text in (
        "| Data | anchor |",
        "| Teacher | dinov2-s14-imgfocus (width 16, 4 x 4 patch grid) |",
        "| Steps | 300 of 300 (complete) |",
        "| Seed | 7 |",
        "| Episode | 64 px scenes, 32 px glimpses, 4 x 4 canvas, 3 glimpses |",
        "| Trained at commit | 0123abc |",
        "| Trained with | saccade 0.1.0, torch 2.13.0 |",
        "| Published with | saccade ",
        "| coarse_to_fine.miou | 0.25 → 0.5 (2 values, first → last) |",
        "| top1 | 0.75 |",
        "CanViTForPretraining.from_pretrained(",
        "BACKBONES['vit-tiny'] = ViTSpec(embed_dim=64, num_heads=2, num_blocks=4",
    ):
        assert text in card, text
    publication = read_publication(folder)
    assert publication["episode"] == EPISODE and publication["training"]["seed"] == 7
    assert json.loads((folder / "evaluation.json").read_text())["top1"] == 0.75


def test_saccade_reloads_identical_tensors_and_outputs(published, generator) -> None:
    model, folder = published
    reloaded = saccade.load_pretrained(folder, backbone_specs=backbone_specs(folder))
    assert isinstance(reloaded, saccade.CanViTForPretraining) and reloaded.config == model.config
    for key, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], tensor), key
    scenes = torch.randn(2, 3, 64, 64, generator=generator)
    centers = torch.rand(3, 2, 2, generator=generator) - 0.5
    scales = torch.tensor([[1.0, 1.0], [0.5, 0.3], [0.25, 0.6]])
    outputs = []
    for candidate in (model, reloaded):
        state = candidate.canvit.init_state(batch_size=2, canvas_grid=4)
        steps = []
        for t in range(3):
            viewpoint = saccade.Viewpoint(centers=centers[t], scales=scales[t])
            glimpse = saccade.sample_glimpse(scenes, viewpoint, 32)
            state = candidate.canvit(glimpse, state, viewpoint).state
            patches, cls = candidate.predict_teacher_patches(state), candidate.predict_teacher_cls(state)
            steps.append((state.canvas, state.recurrent_cls, patches, cls))
        outputs.append(steps)
    for ours, theirs in zip(*outputs, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_bfloat16_model_is_published_as_exact_float32(tmp_path) -> None:
    model = tiny_pretraining_model().to(torch.bfloat16)
    folder = publish(model, tmp_path / "bf16", record={})
    tensors = load_file(folder / "model.safetensors")
    assert tensors["canvit.init_canvas_patch"].dtype == torch.float32
    assert torch.equal(tensors["canvit.init_canvas_patch"], model.canvit.init_canvas_patch.float())


def test_publish_refuses_what_the_authors_cannot_load(tmp_path) -> None:
    with pytest.raises(TypeError, match="bare CanViT"):
        publish(saccade.CanViT(saccade.preset("canvit-tiny")), tmp_path / "a", record={})
    unfitted = saccade.CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=4)
    with pytest.raises(ValueError, match="teacher_patch_standardizer was never fitted"):
        publish(unfitted, tmp_path / "b", record={})
    with pytest.raises(ValueError, match="unknown TrainingRecord fields"):
        publish(tiny_pretraining_model(), tmp_path / "c", record={"stepz": 3})
    sink = dataclasses.replace(saccade.preset("canvit-tiny"), canvas_write_sink=True)
    with pytest.raises(ValueError, match="has no canvas_write_sink=True"):
        publish(saccade.CanViTForPretraining(sink, teacher_dim=16, teacher_patch_grid=4), tmp_path / "d", record={})


def test_publish_never_writes_over_a_checkpoint_folder(tmp_path) -> None:
    model = tiny_pretraining_model()
    checkpoint = saccade.save_pretrained(model, tmp_path / "model")
    before = (checkpoint / "config.json").read_text()
    with pytest.raises(ValueError, match="not a previous publication"):
        publish(model, checkpoint, record={})
    assert (checkpoint / "config.json").read_text() == before
    folder = publish(model, tmp_path / "out", record={}, evaluation={"a": 1.0})
    publish(model, folder, record={})  # a previous publication is replaced, its evaluation too
    assert not (folder / "evaluation.json").exists()


def test_a_reload_that_differs_is_refused_and_removed(tmp_path, monkeypatch) -> None:
    model = tiny_pretraining_model()

    def perturbed(folder, backbone_specs=None):
        loaded = saccade.load_pretrained(folder, backbone_specs=backbone_specs)
        with torch.no_grad():
            loaded.teacher_cls_readout.proj.bias.add_(1e-7)
        return loaded

    monkeypatch.setattr(publishing, "load_pretrained", perturbed)
    with pytest.raises(PublishError, match=r"1 different tensor\(s\): teacher_cls_readout.proj.bias"):
        publish(model, tmp_path / "out", record={})
    assert list((tmp_path / "out").iterdir()) == []


def _pretrain_run(root: Path) -> Path:
    """A `saccade pretrain` output folder: model/, config.json and summary.json."""
    model_folder = saccade.save_pretrained(tiny_pretraining_model(), root / "model", episode=EPISODE)
    settings = {"model": "canvit-tiny", "steps": 40, "seed": 3, "episode": EPISODE, "batch_size": 4}
    (root / "config.json").write_text(json.dumps(settings))
    summary = {"status": "complete", "steps": 40, "validation": {"coarse_to_fine": {"patch": [0.125, 0.5]}}}
    (root / "summary.json").write_text(json.dumps(summary))
    return model_folder


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records its calls."""

    calls: ClassVar[list[tuple[str, tuple, dict]]] = []

    def __init__(self, token=None) -> None:
        self.calls.append(("init", (), {"token": token}))

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        return "https://huggingface.co/org/name/commit/1"


def test_the_command_publishes_a_run_and_pushes_nothing(tmp_path, monkeypatch, capsys) -> None:
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was contacted without --push")

    monkeypatch.setattr(huggingface_hub, "HfApi", refuse)
    model_folder = _pretrain_run(tmp_path / "run")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"top1": 0.5}))
    argv = ["publish", "--model", str(model_folder), "--output-dir", str(tmp_path / "pub")]
    assert main([*argv, "--evaluation", str(results), "--teacher", "tiny-teacher"]) == 0
    out = capsys.readouterr().out
    count = len(saccade.load_pretrained(model_folder).state_dict())
    assert f"wrote {tmp_path / 'pub'}" in out and f"all {count} tensors identical" in out and "not pushed" in out
    card = (tmp_path / "pub" / "README.md").read_text()
    for text in ("| Steps | 40 of 40 (complete) |", "| Seed | 3 |", "| Teacher | tiny-teacher", "| top1 | 0.5 |"):
        assert text in card, text
    assert "| coarse_to_fine.patch | 0.125 → 0.5" in card
    assert read_publication(tmp_path / "pub")["episode"] == EPISODE


def test_the_command_pushes_with_the_flag(tmp_path, monkeypatch, capsys) -> None:
    import huggingface_hub

    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    model_folder = _pretrain_run(tmp_path / "run")
    out = tmp_path / "pub"
    argv = ["publish", "--model", str(model_folder), "--output-dir", str(out), "--push", "org/name", "--private"]
    assert main(argv) == 0
    assert [name for name, _, _ in FakeHub.calls] == ["init", "create_repo", "upload_folder"]
    _, args, kwargs = FakeHub.calls[1]
    assert args == ("org/name",) and kwargs["private"] is True and kwargs["exist_ok"] is True
    upload = FakeHub.calls[2][2]
    assert upload["repo_id"] == "org/name" and Path(upload["folder_path"]) == out and upload["revision"] is None
    assert 'from_pretrained("org/name")' in (out / "README.md").read_text()
    assert "pushed to https://huggingface.co/org/name" in capsys.readouterr().out


def test_push_to_a_branch_creates_it(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    folder = publish(tiny_pretraining_model(), tmp_path / "pub", record={})
    push_to_hub(folder, "org/name", revision="v1", token="hf_x")
    assert FakeHub.calls[0] == ("init", (), {"token": "hf_x"})
    assert FakeHub.calls[2][2]["branch"] == "v1" and FakeHub.calls[3][2]["revision"] == "v1"
    with pytest.raises(ValueError, match=r"lacks config\.json"):
        push_to_hub(tmp_path, "org/name")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("publish --model {tmp}/missing", "--model {tmp}/missing: no such checkpoint folder"),
        ("publish --model {bare}", "holds a bare CanViT"),
        ("publish --model {run} --push not-a-repo", "--push not-a-repo: expected a Hub model repository id"),
        ("publish --model {run} --evaluation {tmp}/none.json", "--evaluation {tmp}/none.json: no such file"),
        ("publish --model {run} --output-dir {run}", "not a previous publication"),
    ],
)
def test_bad_inputs_are_one_line_errors(argv: str, message: str, tmp_path, capsys) -> None:
    bare = saccade.save_pretrained(saccade.CanViT(saccade.preset("canvit-tiny")), tmp_path / "bare")
    run = _pretrain_run(tmp_path / "run")
    names = {"tmp": tmp_path, "bare": bare, "run": run}
    assert main(argv.format_map(names).split()) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("saccade publish: error: ") and "\n" not in err
    assert message.format_map(names) in err


def test_a_published_folder_gives_back_its_episode_through_saccade_load(tmp_path):
    from saccade.episode_config import EpisodeConfig

    folder = publish(tiny_pretraining_model(), tmp_path / "published", record=RECORD)
    assert saccade.load(folder).episode == EpisodeConfig(**EPISODE)
