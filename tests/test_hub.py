"""Models by Hub id and mirror name (saccade.hub), offline: a mirror folder and a huggingface_hub cache laid out
by hand, loaded through the public API exactly as a user would with the released ids."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import saccade
from saccade.cli import main
from saccade.episode_config import EPISODES
from saccade.hub import ModelNotFoundError, resolve_folder

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch, tmp_path):
    """No mirror root; an empty huggingface_hub cache of the test's own; offline."""
    monkeypatch.delenv("SACCADE_HUB_ROOT", raising=False)
    monkeypatch.delenv("CANVIT_HUB_ROOT", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def authors_folder(folder: Path, *, seed: int) -> dict[str, torch.Tensor]:
    """A tiny CanViTForPretraining in the authors' 0.2 layout (backbone `vit-tiny`, which only saccade defines);
    returns its tensors."""
    torch.manual_seed(seed)
    model = saccade.CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=8)
    fields = {name: value for name, value in model.config.to_dict().items() if name != "backbone"}
    folder.mkdir(parents=True)
    config = {"canvit_config": fields, "teacher_dim": 16, "teacher_patch_grid": 8}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, folder / "model.safetensors")
    return load_file(folder / "model.safetensors")


def cache_snapshot(cache: Path, repo_id: str, source: Path, commit: str, *, refs: tuple[str, ...] = ()) -> None:
    """Lay `source`'s files out as huggingface_hub caches `repo_id` at `commit`, with the branches / tags `refs`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / commit)
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def assert_holds(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(state) == set(tensors)
    for key, tensor in tensors.items():
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=0)


# -- a mirror folder --------------------------------------------------------------------------------------------


def test_a_mirror_name_and_its_canvit_id_load_the_mirror_folder(tmp_path, monkeypatch):
    tensors = authors_folder(tmp_path / "mirror" / "tiny-test", seed=1)
    monkeypatch.setenv("SACCADE_HUB_ROOT", str(tmp_path / "mirror"))
    loaded = saccade.load("tiny-test")
    assert type(loaded.model) is saccade.CanViTForPretraining and loaded.episode is None
    assert_holds(loaded.model, tensors)
    assert_holds(saccade.load("canvit/tiny-test").model, tensors)  # not in the (empty) cache: the mirror's
    assert_holds(saccade.load_pretrained("canvit/tiny-test"), tensors)


def test_canvit_hub_root_is_the_fallback_and_saccade_hub_root_wins(tmp_path, monkeypatch):
    authors_folder(tmp_path / "theirs" / "tiny-test", seed=1)
    ours = authors_folder(tmp_path / "ours" / "tiny-test", seed=2)
    monkeypatch.setenv("CANVIT_HUB_ROOT", str(tmp_path / "theirs"))
    assert resolve_folder("tiny-test") == tmp_path / "theirs" / "tiny-test"
    monkeypatch.setenv("SACCADE_HUB_ROOT", str(tmp_path / "ours"))
    assert_holds(saccade.load_pretrained("tiny-test"), ours)


def test_a_name_missing_from_the_mirror_names_the_mirror(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("SACCADE_HUB_ROOT", str(tmp_path / "mirror"))
    with pytest.raises(ValueError, match=r"nor a preset .*canvit-tiny.*no folder .*mirror/nothing-here"):
        saccade.load("nothing-here")
    monkeypatch.setenv("SACCADE_HUB_ROOT", str(tmp_path / "no-such-root"))
    with pytest.raises(ValueError, match=r"SACCADE_HUB_ROOT=.*no-such-root: no such folder"):
        saccade.load("nothing-here")


# -- a huggingface_hub cache, offline -------------------------------------------------------------------------


def test_a_hub_id_loads_from_the_cache_at_main_or_at_a_revision(tmp_path):
    old = authors_folder(tmp_path / "old", seed=1)
    model = saccade.CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=8)
    saccade.save_pretrained(model, tmp_path / "new", episode=vars(EPISODES["cpu"]))
    cache_snapshot(tmp_path / "hub", "canvit/tiny-test", tmp_path / "old", COMMIT_A, refs=("v1",))
    cache_snapshot(tmp_path / "hub", "canvit/tiny-test", tmp_path / "new", COMMIT_B, refs=("main",))

    latest = saccade.load("canvit/tiny-test")
    assert latest.episode == EPISODES["cpu"] and "canvit/tiny-test" in latest.source
    assert_holds(latest.model, model.state_dict())
    assert_holds(saccade.load_pretrained("canvit/tiny-test", revision=COMMIT_A), old)
    assert_holds(saccade.load("canvit/tiny-test", revision="v1").model, old)


def test_the_cli_takes_a_hub_id(tmp_path, capsys):
    authors_folder(tmp_path / "model", seed=1)
    cache_snapshot(tmp_path / "hub", "canvit/tiny-test", tmp_path / "model", COMMIT_A, refs=("main",))
    assert main(["flops", "--model", "canvit/tiny-test"]) == 0
    assert main(["flops", "--model", "canvit/missing"]) == 2
    assert "--model canvit/missing: no such checkpoint folder, and not a preset" in capsys.readouterr().err


def test_commands_take_their_episode_defaults_from_a_hub_id(tmp_path):
    from saccade.cli.evaluate import evaluate_defaults

    model = saccade.CanViTForPretraining(saccade.preset("canvit-tiny"), teacher_dim=16, teacher_patch_grid=8)
    saccade.save_pretrained(model, tmp_path / "model", episode=vars(EPISODES["cpu"]))
    cache_snapshot(tmp_path / "hub", "canvit/tiny-test", tmp_path / "model", COMMIT_A, refs=("main",))
    recorded = evaluate_defaults(["--model", "canvit/tiny-test"])["episode"]
    assert recorded == json.loads((tmp_path / "model" / "config.json").read_text())["episode"]


def test_an_id_missing_from_the_cache_offline_names_id_revision_and_the_fix(tmp_path):
    authors_folder(tmp_path / "model", seed=1)
    cache_snapshot(tmp_path / "hub", "canvit/tiny-test", tmp_path / "model", COMMIT_A, refs=("main",))
    with pytest.raises(ModelNotFoundError, match=r"canvit/missing \(revision main\): .*cache .*HF_HUB_OFFLINE=1"):
        saccade.load("canvit/missing")
    with pytest.raises(ModelNotFoundError, match=r"canvit/tiny-test \(revision v9\): not .*HF_HUB_OFFLINE=1"):
        saccade.load_pretrained("canvit/tiny-test", revision="v9")


# -- bad specs --------------------------------------------------------------------------------------------------


def test_an_unknown_bare_name_lists_the_presets_and_the_mirror_variable():
    with pytest.raises(ValueError, match=r"presets: \[.*'canvit-tiny'.*\].*SACCADE_HUB_ROOT"):
        saccade.load("canvitb16-not-released")


def test_a_revision_applies_to_hub_ids_only(tmp_path):
    saccade.save_pretrained(saccade.CanViT(saccade.preset("canvit-tiny")), tmp_path / "local")
    with pytest.raises(ValueError, match=r"local path; revision='main' applies to Hub ids"):
        saccade.load_pretrained(tmp_path / "local", revision="main")
    with pytest.raises(ValueError, match=r"revision='v1' applies to Hub ids \(org/name\), not to mirror names"):
        saccade.load("canvit-tiny", revision="v1")


def test_a_missing_path_is_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"nowhere does not exist \(and is not a Hub id"):
        saccade.load_pretrained(tmp_path / "nowhere")


def test_the_readme_hub_example_runs_offline_against_a_cache(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL) if "revision=" in b)
    repo_id = re.search(r'load_pretrained\("([^"]+)"', block).group(1)
    tensors = authors_folder(tmp_path / "model", seed=1)
    cache_snapshot(tmp_path / "hub", repo_id, tmp_path / "model", COMMIT_A, refs=("main", "canvit-pytorch-0.1"))
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    assert_holds(names["model"], tensors)
    assert_holds(names["old"], tensors)
