"""`saccade evaluate` end to end: load a frozen CanViT, train (or load) its probes, evaluate every policy per
glimpse, probe a passive teacher at several input sizes, and write the table and plots (paper §6, App. D).

Benchmarks: `fashion-seg`, `fashion-cls` or `fashion` (both) from the bundled offline benchmark
(`saccade.evaluate.benchmark`); `ade20k` (an ADEChallengeData2016 folder) and `imagenet` (a root with `train/`
and `val/` class folders) for users who have the real datasets. EG-C2F needs a segmentation probe: on `fashion`
the segmentation probe also steers the classification rollouts; without one, EG-C2F is skipped and the report
says so. Segmentation runs also leave every test scene's confusion counts (SCENE_CONFUSIONS_FILE), for intervals
over scenes (`saccade.evaluate.intervals`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset, Subset

from saccade._checks import non_negative_int, positive_int
from saccade.config_files import config_from_dict, config_to_dict
from saccade.episode_config import EPISODES, EpisodeConfig
from saccade.evaluate.benchmark import BENCHMARKS, build_benchmark
from saccade.evaluate.curves import Curve
from saccade.evaluate.datasets import ADE20K, ImageFolderClassification, SceneTensors
from saccade.evaluate.report import write_report
from saccade.evaluate.runner import EvalConfig, PassivePoint, evaluate_passive, evaluate_policies
from saccade.loading import load
from saccade.model.canvit import CanViT
from saccade.policies import resolve_policy, select_policies
from saccade.probes.features import (
    CanViTFeatures,
    FeatureSource,
    PrecomputedFeatures,
    TeacherFeatureSource,
    precompute,
)
from saccade.probes.heads import ProbeConfig, ProbeTask, build_probe, load_probe, save_probe
from saccade.probes.train import ProbeTrainConfig, infinite_batches, train_probe
from saccade.provenance import provenance
from saccade.threads import use_threads

__all__ = [
    "BENCHMARK_CHOICES",
    "SCENE_CONFUSIONS_FILE",
    "EvaluateRunConfig",
    "EvaluateSummary",
    "load_teacher_spec",
    "run_evaluation",
]

SCENE_CONFUSIONS_FILE = "scene_confusions.safetensors"
"""Per-scene confusion counts of every segmentation curve: {policy: int32 [runs, scenes, glimpses, C, C]}."""

BenchmarkChoice = Literal["fashion", "fashion-seg", "fashion-cls", "ade20k", "imagenet"]
BENCHMARK_CHOICES: tuple[str, ...] = ("fashion", "fashion-seg", "fashion-cls", "ade20k", "imagenet")
_SEGMENTATION_BENCHMARKS = ("fashion", "fashion-seg", "ade20k")  # those with a segmentation task (see _tasks)


@dataclass(frozen=True, kw_only=True)
class EvaluateRunConfig:
    """Everything one `saccade evaluate` run needs: the model, the benchmark, the episode, the probes."""

    model: str
    """A checkpoint folder (saccade's, or the authors' 0.1 / 0.2), or a preset name for a randomly initialised model
    (smoke runs and tests); see saccade.load."""
    model_seed: int = 0
    """Seed of the random initialisation of a preset."""
    benchmark: BenchmarkChoice = "fashion"
    """Which benchmark (see the module docstring)."""
    data: str | None = None
    """ADE20K or ImageNet-style root (ade20k / imagenet)."""
    num_train: int | None = None
    """Training scenes: size of the bundled benchmark, or a cap on a disk dataset."""
    num_test: int | None = None
    """Test scenes: size of the bundled benchmark, or a cap on a disk dataset."""
    backgrounds: str | None = None
    """Background photo folder of the bundled benchmark (default /usr/share/backgrounds)."""
    fashion_root: str | None = None
    """Fashion-MNIST folder of the bundled benchmark (default /usr/share/datasets/fashion-mnist)."""
    cache: str | None = None
    """Cache root for built benchmarks (default $SACCADE_CACHE_DIR or ~/.cache/saccade)."""
    output_dir: str = "evaluation"
    """Where results.md, results.csv, the plots and the trained probes go."""
    policies: tuple[str, ...] = ("C2F", "F2C", "R-IID", "F-IID", "RFS", "EG-C2F")
    """Policies to evaluate."""
    episode: EpisodeConfig = EPISODES["paper"]
    """Glimpse side, canvas grid, T of the evaluation rollouts, and the scene side of ade20k / imagenet (the bundled
    benchmark has its own, 128); `saccade evaluate` starts from the episode the checkpoint records."""
    num_runs: int = 10
    """Runs of each stochastic policy."""
    batch_size: int = 16
    """Batch of the evaluation rollouts and of probe training."""
    seed: int = 0
    """Seed of the stochastic policies, probe training and data order."""
    threads: int = 0
    """Intra-op CPU threads; 0: chosen at the start from the free cores and the work size (saccade.threads), and
    recorded in the run's config.json."""
    probe: ProbeTrainConfig = dataclasses.field(default_factory=ProbeTrainConfig)
    """Optimisation of every probe (the CanViT's and the passive teacher's); its batch and seed too."""
    train_glimpses: int = 10
    """T of the rollouts the probes are trained on."""
    probe_policy: str = "R-IID"
    """The policy of the rollouts the CanViT probes are trained on: R-IID (the paper), or any policy that needs
    nothing beyond the episode. A probe trained on one policy's canvases favours that policy against the others."""
    seg_probe: str | None = None
    """Load this segmentation probe instead of training one."""
    cls_probe: str | None = None
    """Load this classification probe instead of training one."""
    teacher: str | None = None
    """Passive baseline: a saccade.teachers name, or 'module:function' returning a teacher."""
    teacher_px: tuple[int, ...] = ()
    """Teacher input sides (multiples of its patch size)."""
    device: str = "cpu"
    """Torch device."""

    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        "data_root": "data",
        "scene_px": "episode.scene_px",
        "num_glimpses": "episode.num_glimpses",
        "glimpse_px": "episode.glimpse_px",
        "canvas_grid": "episode.canvas_grid",
        "probe_steps": "probe.steps",
        "probe_lr": "probe.lr",
        "probe_weight_decay": "probe.weight_decay",
        "probe_warmup_steps": "probe.warmup_steps",
    }  # the flat keys of evaluation configs written before the episode and the probe were sub-configs

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARK_CHOICES:
            raise ValueError(f"benchmark must be one of {BENCHMARK_CHOICES}, got {self.benchmark!r}")
        if self.benchmark in ("ade20k", "imagenet") and self.data is None:
            raise ValueError(f"benchmark {self.benchmark!r} needs data (the dataset folder)")
        object.__setattr__(self, "policies", tuple(self.policies))
        object.__setattr__(self, "teacher_px", tuple(self.teacher_px))
        resolve_policy(self.probe_policy)  # a clear error for an unknown name
        non_negative_int("threads", self.threads)
        for name in ("num_train", "num_test"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        if self.teacher_px and self.teacher is None:
            raise ValueError("teacher_px needs a teacher")
        if self.teacher is not None and not self.teacher_px:
            raise ValueError("teacher needs at least one input size in teacher_px")
        self.eval_config  # validates the rollout settings  # noqa: B018

    @property
    def has_segmentation_probe(self) -> bool:
        """Whether the run has a segmentation probe (trained, or --seg-probe) to steer EG-C2F."""
        return self.seg_probe is not None or self.benchmark in _SEGMENTATION_BENCHMARKS

    @property
    def policy_notes(self) -> tuple[str, ...]:
        """One note per policy left out because the run cannot provide what it needs (EG-C2F: a decoder)."""
        return select_policies(self.policies, {"decoder"} if self.has_segmentation_probe else ())[1]

    @property
    def eval_config(self) -> EvalConfig:
        """The rollout settings, without the policies this run cannot provide for (`policy_notes`)."""
        policies, _ = select_policies(self.policies, {"decoder"} if self.has_segmentation_probe else ())
        return EvalConfig(
            policies=policies,
            episode=self.episode,
            num_runs=self.num_runs,
            batch_size=self.batch_size,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluateRunConfig:
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class EvaluateSummary:
    """What a run produced."""

    curves: list[Curve]
    passive: list[PassivePoint]
    paths: dict[str, Path]  # results.csv, results.md, plots, probes


@dataclass(frozen=True)
class _Task:
    task: ProbeTask
    train: Dataset
    test: Dataset
    num_classes: int


def load_teacher_spec(spec: str) -> Any:
    """A teacher from a saccade.teachers name, or from 'module:function' (called with no arguments)."""
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import teacher factory {spec!r}: {error}") from error
        return factory()
    try:
        from saccade.teachers import load_teacher  # type: ignore[attr-defined]
    except ImportError as error:
        raise ValueError(f"teacher {spec!r}: saccade.teachers is not available ({error})") from error
    return load_teacher(spec)


def _load_model(config: EvaluateRunConfig) -> CanViT:
    model = load(config.model, seed=config.model_seed).canvit
    model.requires_grad_(False)
    return model.to(config.device).eval()


def _cap(dataset: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(dataset):  # type: ignore[arg-type]
        return dataset
    return Subset(dataset, range(limit))


def _tasks(config: EvaluateRunConfig, progress: bool) -> list[_Task]:
    if config.benchmark.startswith("fashion"):
        names = ("fashion-seg", "fashion-cls") if config.benchmark == "fashion" else (config.benchmark,)
        tasks = []
        for name in names:
            overrides = {k: getattr(config, k) for k in ("num_train", "num_test") if getattr(config, k) is not None}
            bench_config = dataclasses.replace(BENCHMARKS[name], **overrides)
            bench = build_benchmark(
                bench_config,
                fashion_root=config.fashion_root,
                backgrounds=config.backgrounds,
                cache=config.cache,
                progress=progress,
            )
            tasks.append(_Task(bench_config.task, bench.train, bench.test, bench.num_classes))
        return tasks
    generator = torch.Generator().manual_seed(config.seed)
    if config.benchmark == "ade20k":
        train = ADE20K(
            config.data, "training", size_px=config.episode.scene_px, train_transform=True, generator=generator
        )
        test = ADE20K(config.data, "validation", size_px=config.episode.scene_px)
        return [_Task("segmentation", _cap(train, config.num_train), _cap(test, config.num_test), train.num_classes)]
    root = Path(config.data)
    train = ImageFolderClassification(
        root / "train", size_px=config.episode.scene_px, train_transform=True, generator=generator
    )
    test = ImageFolderClassification(root / "val", size_px=config.episode.scene_px, class_names=train.class_names)
    return [_Task("classification", _cap(train, config.num_train), _cap(test, config.num_test), train.num_classes)]


def _train_probe_on(
    source: FeatureSource,
    probe_config: ProbeConfig,
    task: _Task,
    config: EvaluateRunConfig,
    *,
    generator: torch.Generator,
    description: str,
    progress: bool,
) -> nn.Module:
    """Build and train one probe on a frozen source's features of the task's training scenes.

    Fixed scenes (the bundled benchmark: no augmentation) go through the source once (`precompute`), so the probe
    trains on stored features, and the run's budget buys probe steps instead of repeated rollouts. The probe's
    initialisation and dropout draw from the probe seed alone, not from what earlier stages left in torch's
    global random state; `generator` (seeded with it) orders the batches.
    """
    train_source, train_set = source, task.train
    if isinstance(task.train, SceneTensors):
        train_set = precompute(
            source,
            task.train,
            batch_size=config.batch_size,
            device=config.device,
            progress=progress,
            description=f"{description} features",
        )
        train_source = PrecomputedFeatures(task=task.task, dim=source.dim)
    batches = infinite_batches(train_set, batch_size=config.probe.batch_size, generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.probe.seed)
        probe = build_probe(probe_config).to(config.device)
        train_probe(probe, train_source, batches, config.probe, progress=progress, description=description)
    return probe


def _train_canvit_probe(model: nn.Module, task: _Task, config: EvaluateRunConfig, progress: bool) -> nn.Module:
    generator = torch.Generator().manual_seed(config.probe.seed)  # the data order and random-order rollouts
    source = CanViTFeatures(
        model,
        task=task.task,
        num_glimpses=config.train_glimpses,
        glimpse_px=config.episode.glimpse_px,
        canvas_grid=config.episode.canvas_grid,
        policy=config.probe_policy,
        generator=generator,
    )
    probe_config = ProbeConfig(task=task.task, in_dim=source.dim, num_classes=task.num_classes)
    description = f"{task.task} probe"
    return _train_probe_on(
        source, probe_config, task, config, generator=generator, description=description, progress=progress
    )


def _passive(teacher: Any, task: _Task, config: EvaluateRunConfig, out: Path, progress: bool) -> list[PassivePoint]:
    points = []
    for input_px in config.teacher_px:
        source = TeacherFeatureSource(teacher, task=task.task, input_px=input_px)
        # The paper's DINOv3 segmentation baselines have no LayerNorm in the probe; classification keeps it.
        probe_config = ProbeConfig(
            task=task.task, in_dim=source.dim, num_classes=task.num_classes, layer_norm=task.task == "classification"
        )
        generator = torch.Generator().manual_seed(config.probe.seed)
        description = f"teacher {input_px} px {task.task} probe"
        probe = _train_probe_on(
            source, probe_config, task, config, generator=generator, description=description, progress=progress
        )
        save_probe(probe, out / f"teacher_{input_px}px_{task.task}.safetensors", info={"teacher": config.teacher})
        points += evaluate_passive(
            teacher,
            probe,
            task.test,
            task=task.task,
            input_px=input_px,
            num_classes=task.num_classes,
            batch_size=config.batch_size,
            progress=progress,
        )
    return points


def _canvit_probes(
    model: nn.Module, tasks: list[_Task], config: EvaluateRunConfig, out: Path, progress: bool
) -> dict[str, nn.Module]:
    """One probe per task, loaded (--seg-probe / --cls-probe) or trained and saved under out/probes."""
    probes: dict[str, nn.Module] = {}
    for task in tasks:
        given = config.seg_probe if task.task == "segmentation" else config.cls_probe
        if given is not None:
            probes[task.task] = load_probe(given).to(config.device)
        else:
            probes[task.task] = _train_canvit_probe(model, task, config, progress)
            info = {"model": _model_name(config), "benchmark": config.benchmark}
            save_probe(probes[task.task], out / "probes" / f"canvit_{task.task}.safetensors", info=info)
    if "segmentation" not in probes and config.seg_probe is not None:  # steers EG-C2F on a classification-only run
        probes["segmentation"] = load_probe(config.seg_probe).to(config.device)
    return probes


def _model_name(config: EvaluateRunConfig) -> str:
    return config.model if Path(config.model).is_dir() else f"random {config.model} (seed {config.model_seed})"


def _settings(config: EvaluateRunConfig, tasks: list[_Task], notes: list[str]) -> dict[str, Any]:
    """The run's settings, listed at the top of the report."""
    settings: dict[str, Any] = {
        "model": _model_name(config),
        "benchmark": config.benchmark,
        "glimpse_px": config.episode.glimpse_px,
        "canvas_grid": config.episode.canvas_grid,
        "num_glimpses": config.episode.num_glimpses,
        "runs per stochastic policy": config.num_runs,
        "probes": (
            f"{config.probe.steps} steps, batch {config.probe.batch_size}, AdamW lr {config.probe.lr:g} "
            f"(warmup {config.probe.warmup_steps}, cosine), "
            f"CanViT probes on {config.probe_policy} rollouts of {config.train_glimpses}"
        ),
        "test scenes": ", ".join(f"{t.task} {len(t.test)}" for t in tasks),  # type: ignore[arg-type]
    }
    if config.teacher is not None:
        settings["teacher"] = f"{config.teacher} at {', '.join(map(str, config.teacher_px))} px"
    if notes:
        settings["notes"] = "; ".join(notes)
    return settings


def run_evaluation(config: EvaluateRunConfig, *, progress: bool = True) -> EvaluateSummary:
    """Run the whole protocol of `config` and write its report into config.output_dir."""
    out = Path(config.output_dir)
    (out / "probes").mkdir(parents=True, exist_ok=True)
    model = _load_model(config)
    episode = config.episode
    tokens_per_item = (episode.glimpse_px // model.config.backbone.patch_size) ** 2 + episode.canvas_grid**2
    threads = use_threads(config.threads, work_tokens=config.batch_size * tokens_per_item)
    config = dataclasses.replace(config, threads=threads.num_threads)  # config.json records the choice
    tasks = _tasks(config, progress)
    probes = _canvit_probes(model, tasks, config, out, progress)
    seg_probe = probes.get("segmentation")
    notes = list(config.policy_notes)
    eval_config = config.eval_config
    curves: list[Curve] = []
    for task in tasks:
        curves += evaluate_policies(
            model,
            probes[task.task],
            task.test,
            eval_config,
            task=task.task,
            num_classes=task.num_classes,
            seg_probe=seg_probe,
            progress=progress,
        )
    passive: list[PassivePoint] = []
    if config.teacher is not None:
        teacher = load_teacher_spec(config.teacher)
        if isinstance(teacher, nn.Module):
            teacher = teacher.to(config.device).eval()
        for task in tasks:
            passive += _passive(teacher, task, config, out / "probes", progress)
    settings = _settings(config, tasks, notes)
    scenes = {c.policy: c.scenes.to(torch.int32) for c in curves if c.task == "segmentation" and c.scenes is not None}
    if scenes:
        save_file(scenes, str(out / SCENE_CONFUSIONS_FILE))
    notes = [f"{key}: {value}" for key, value in settings.items()]
    paths = write_report(out, curves, passive=passive, notes=notes, glimpse_px=config.episode.glimpse_px)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    paths["config"] = out / "config.json"
    seeds = {"seed": config.seed, "model_seed": config.model_seed, "probe_seed": config.probe.seed}
    record = provenance(seeds=seeds, device=config.device, threads=threads.num_threads)
    paths["provenance"] = out / "provenance.json"  # not in config.json: `--config` reads that back
    paths["provenance"].write_text(json.dumps(record, indent=2, sort_keys=True))
    return EvaluateSummary(curves=curves, passive=passive, paths=paths)
