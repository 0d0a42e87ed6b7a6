"""Settings of the main job (`saccade demo`): from nothing to a trained active-vision model and a report.

`DemoConfig` holds the pretraining and the evaluation as their own configs (`pretrain: PretrainConfig`,
`evaluate: EvaluateRunConfig`), plus what only the main job has: the crop counts, the wall-clock guard and the
folder. The demo fills in, in one place (`DemoConfig.pretrain_run` / `evaluate_run`), what follows from its own
settings: the stage folders, the seed, the thread count, the standardizer sample count and the model to evaluate.
The evaluation's episode is the pretraining's.

Pretraining starts from scratch, or continues from a saved pretraining model (`DemoConfig.start`, for instance one
trained far longer on a GPU), and the report says which.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from saccade._checks import non_negative_int, positive_int
from saccade.config_files import config_from_dict, config_to_dict, read_config_file
from saccade.data.bundled import DEFAULT_SOURCES, SOURCES
from saccade.episode_config import EPISODES
from saccade.evaluate.pipeline import EvaluateRunConfig
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.start_file import is_start_file
from saccade.probes.train import ProbeTrainConfig

__all__ = ["DEMO_PRESETS", "DemoConfig", "DemoData"]

DemoData = Literal["scenes", "photos"]

SCRATCH = "scratch"
"""`DemoConfig.start`: a new model (pretrain.backbone_init and pretrain.canvas_start)."""

BUNDLED = "bundled"
"""`DemoConfig.start`: the start file the project ships (BUNDLED_START_FILE), made by `make demo-start`."""

BUNDLED_START_FILE = Path(__file__).parent / "start" / "canvit-s16-cpu.safetensors"
"""The shipped start of the main job's model: DEMO_PRESETS["start"]'s pretraining (the backbone frozen at the
teacher's selection), without the backbone (saccade.pretrain.start_file)."""

TEACHER = "dinov2-s14-imgfocus"
"""The bundled teacher: the pretraining targets and the passive baseline."""

_PRETRAIN = PretrainConfig(
    model="canvit-s16-cpu",
    backbone_init=TEACHER,  # backbone_init and canvas_start: the start of a run from scratch (DemoConfig.start)
    canvas_start="local-position",  # each Write splats the glimpse where it looked, and only there (docs/main-job.md)
    backbone_lr_scale=0.1,  # the teacher's ViT-S, adapting slowly: its 1/16 tiles' tokens hold the object evidence
    freeze_write_attention=True,  # left to learn, the Writes learned to ignore the 1/16 tiles
    patch_readout_blocks=1,  # the teacher's patches depend on the whole scene: a readout that looks across the canvas
    episode=EPISODES["cpu"],  # 32 px glimpses of 128 px scenes: the teacher sees 112 px = 8 x 8 patches of 14 px
    batch_size=32,
    lr=4e-4,
    warmup_steps=100,
    schedule="cosine",
    weight_decay=0.05,  # the data-scarce recipe, docs/data-scarce.md
    rollouts=("full_then_random", "coarse_to_fine"),  # F-IID and C2F (the paper: F-IID and R-IID)
    standardizer_samples=1024,
    checkpoint_every=250,
    val_every=250,
)

_CONTINUED = dataclasses.replace(
    _PRETRAIN,
    # Whole episodes: every training rollout is 10 glimpses, backpropagated through all of them. The paper's (and the
    # start's) chunks of 2 continued with p = 0.5 give glimpse t = 0 64 times the loss weight of t = 9, which 400
    # steps left untrained. Half the batch and 320 steps keep the glimpses of the run (320 x 16 x 10 = 400 x 32 x 4 on
    # average); C2F's held-out rise 0.08 -> 0.11 (docs/main-job.md).
    chunk_size=10,
    continue_prob=0.0,
    batch_size=16,
    steps=320,  # about 19 minutes on 2 idle cores (make demo: 31.6 from a cold cache)
    warmup_steps=80,
)

PRETRAINED_MODEL = "(the pretrained model)"
"""What `evaluate.model` says in a demo's settings: the demo evaluates the model it pretrains."""

_EVALUATE = EvaluateRunConfig(
    model=PRETRAINED_MODEL,
    benchmark="fashion",
    num_train=1024,
    num_test=256,
    policies=("C2F", "F2C", "R-IID", "F-IID", "RFS", "EG-C2F"),
    num_runs=3,
    # On features computed once per training scene (1,024 rollouts): about 80 s for 2,000 steps of 64 scenes x 10
    # glimpses. 300 steps of 16 left the probe short of what the canvas holds (docs/main-job.md).
    probe=ProbeTrainConfig(steps=2_000, batch_size=64, lr=3e-3, warmup_steps=100),  # lr 3e-4 in the paper (40k steps)
    train_glimpses=10,
    # On R-IID rollouts the probe read only background from canvases where a C2F-trained one reads objects
    # (docs/main-job.md); it favours C2F against the other policies.
    probe_policy="C2F",
    teacher=TEACHER,
    teacher_px=(28, 56, 112),
)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Every knob of the main job; `report/config.json` holds the exact values of a run."""

    output_dir: str = "report"
    """Report folder; each stage caches its output in a subfolder and is skipped when already done."""
    data: DemoData = "scenes"
    """What pretraining distills on: "scenes", the benchmark's kind of scenes without their labels (a build of its
    own seed: training photos and objects; the held-out set on the held-out photos and test objects;
    saccade.data.scene_sets), what a robot's unlabeled images of its world would be; or "photos", random crops of
    the bundled training photos (the held-out set on the held-out photos)."""
    scene_photo_sources: tuple[str, ...] = DEFAULT_SOURCES
    """With data "scenes": the bundled catalogue's sources (saccade.data.bundled.SOURCES) whose training photos are
    behind the pretraining scenes too, besides the benchmark's own training photos (saccade.evaluate.sources.
    catalogue_backgrounds). The held-out scenes stay on the benchmark's held-out photos. On the benchmark's 10
    training photos alone the model learned their backgrounds: held-out cosine 0.21 at t = 0 where training scenes
    gave 0.44 (docs/main-job.md)."""
    num_train_crops: int = 10_000
    """Training scenes."""
    num_heldout_crops: int = 64
    """Validation scenes (never trained on): the held-out cosines of the accumulation claim are measured on them."""
    start: str = BUNDLED
    """Where pretraining starts: "bundled", the project's start file of the main job's model (BUNDLED_START_FILE:
    `make demo-start`, DEMO_PRESETS["start"]); "scratch" (pretrain.backbone_init and pretrain.canvas_start); a start
    file (.safetensors, saccade.pretrain.start_file; its backbone is pretrain.backbone_init's); or a saved
    pretraining model to continue from (its model/ folder, a Hub id or mirror name). PretrainConfig.init_from."""
    pretrain: PretrainConfig = _CONTINUED
    """Pretraining (its output_dir, seed and threads are the demo's)."""
    pretrain_minutes: float = 60.0
    """Wall-clock guard of the pretraining loop, not its budget (that is pretrain.steps, so a config gives the same
    model whatever the load): about 4x the expected time on 2 idle cores, so only a machine several times slower, or
    a stuck one, reaches it. Then pretraining stops with a checkpoint, and results.json ("budget_cuts") and a red
    banner at the top of the report say so, with the steps done."""
    evaluate: EvaluateRunConfig = _EVALUATE
    """Probes and per-glimpse evaluation on the bundled benchmark (its model, episode, output_dir, seed and threads
    are the demo's)."""
    seed: int = 0
    """The training seed: the model's new parts, pretraining's viewpoints and batches, the policies' draws and the
    probes. The scenes are `data_seed`'s, so runs of different training seeds are judged on the same scenes."""
    data_seed: int = 0
    """Seeds the pretraining scenes and the held-out scenes of the cosine checks (saccade.data.scene_sets; with
    data "photos", the training crops): the demo's dataset, like a fixed dataset of real images. The benchmark's
    scenes are fixed by the benchmark itself (saccade.evaluate.benchmark.BENCHMARKS)."""
    threads: int = 0
    """Intra-op CPU threads of every stage; 0: chosen at the start from the free cores (saccade.threads), and
    recorded in the report's config.json."""

    def __post_init__(self) -> None:
        self._check_not_set_in_stages()
        non_negative_int("DemoConfig.threads", self.threads)
        non_negative_int("DemoConfig.data_seed", self.data_seed)
        if not isinstance(self.start, str) or not self.start:
            raise ValueError(
                f"DemoConfig.start must be {SCRATCH!r} or name a saved pretraining model, got {self.start!r}"
            )
        for name in ("num_train_crops", "num_heldout_crops"):
            positive_int(f"DemoConfig.{name}", getattr(self, name))
        if self.data not in get_args(DemoData):
            raise ValueError(f"DemoConfig.data must be one of {get_args(DemoData)}, got {self.data!r}")
        unknown = [source for source in self.scene_photo_sources if source not in SOURCES]
        if unknown:
            raise ValueError(f"DemoConfig.scene_photo_sources: unknown sources {unknown}; known: {sorted(SOURCES)}")
        if not self.pretrain_minutes > 0:
            raise ValueError(f"DemoConfig.pretrain_minutes must be > 0, got {self.pretrain_minutes}")
        if self.num_train_crops < self.pretrain.batch_size:
            batch = self.pretrain.batch_size
            raise ValueError(f"DemoConfig.num_train_crops ({self.num_train_crops}) < pretrain.batch_size ({batch})")

    def _check_not_set_in_stages(self) -> None:
        """Refuse a stage setting the demo fills in itself, rather than ignore it (see the module docstring)."""
        own = {"output_dir": "--output-dir", "seed": "--seed", "threads": "--threads"}
        filled = {
            "pretrain": {**own, "init_from": "--start"},
            "evaluate": {**own, "model": "the demo evaluates the model it pretrains", "episode": "--pretrain.episode"},
            "evaluate.probe": {"seed": "--seed"},
        }
        for section, names in filled.items():
            stage = self
            for part in section.split("."):
                stage = getattr(stage, part)
            defaults = {field.name: field for field in dataclasses.fields(stage)}
            for name, instead in names.items():
                field = defaults[name]
                default = PRETRAINED_MODEL if name == "model" else field.default
                value = getattr(stage, name)
                if value != default:
                    raise ValueError(
                        f"DemoConfig.{section}.{name} is set by the demo itself ({instead}), got {value!r}"
                    )

    @property
    def num_glimpses(self) -> int:
        """T of every rollout the demo judges (the pretraining episode's)."""
        return self.pretrain.episode.num_glimpses

    @property
    def start_model(self) -> str | None:
        """The start file or model folder (or Hub id) pretraining continues from; None from scratch."""
        if self.start == SCRATCH:
            return None
        return str(BUNDLED_START_FILE) if self.start == BUNDLED else self.start

    def pretrain_run(self) -> PretrainConfig:
        """The pretraining config this demo runs."""
        start = self.start_model
        if start is None:
            fresh = {}
        elif is_start_file(start):  # all but the backbone, which pretrain.backbone_init selects
            fresh = {"init_from": start, "canvas_start": "default"}
        else:
            fresh = {"init_from": start, "backbone_init": "random", "canvas_start": "default"}
        return dataclasses.replace(
            self.pretrain,
            **fresh,
            standardizer_samples=min(self.pretrain.standardizer_samples, self.num_train_crops),
            seed=self.seed,
            threads=self.threads,
            output_dir=str(Path(self.output_dir) / "pretrain"),
        )

    def evaluate_run(self) -> EvaluateRunConfig:
        """The evaluation config this demo runs: the pretrained model, on the pretraining's episode."""
        return dataclasses.replace(
            self.evaluate,
            model=str(Path(self.output_dir) / "pretrain" / "model"),
            episode=self.pretrain.episode,
            train_glimpses=min(self.evaluate.train_glimpses, self.num_glimpses),
            seed=self.seed,
            probe=dataclasses.replace(self.evaluate.probe, seed=self.seed),
            threads=self.threads,
            output_dir=str(Path(self.output_dir) / "evaluation"),
        )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoConfig:
        return config_from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> DemoConfig:
        """A TOML or JSON file of DemoConfig fields (nested tables for pretrain and evaluate)."""
        return cls.from_dict(read_config_file(path))


DEMO_PRESETS: dict[str, DemoConfig] = {
    "full": DemoConfig(),
    # The recipe of the bundled start (`saccade demo --make-start`, `make demo-start`): the full job's scenes and
    # pretraining from scratch, 1,000 steps with the backbone frozen at the teacher's selection, so that the start
    # file can leave the backbone out (saccade.pretrain.start_file). The full job then lets the backbone learn.
    "start": DemoConfig(
        output_dir="runs/demo-start",
        start=SCRATCH,
        pretrain=dataclasses.replace(_PRETRAIN, freeze_backbone=True, backbone_lr_scale=1.0, steps=1_000),
        pretrain_minutes=120.0,  # about 4x the expected time on 2 idle cores
    ),
    # Under 5 minutes on 2 CPU cores: every stage runs, with tiny sizes.
    "quick": DemoConfig(
        output_dir="report-quick",
        num_train_crops=512,
        num_heldout_crops=16,
        pretrain=dataclasses.replace(
            _CONTINUED,
            episode=dataclasses.replace(_PRETRAIN.episode, num_glimpses=5),
            chunk_size=4,  # the cost of the 4 glimpses the paper's chunks give on average
            steps=40,
            warmup_steps=10,
        ),
        pretrain_minutes=5.0,  # about 4x the 73 s of pretraining on 2 cores (fresh-clone CI, 2026-12-05)
        evaluate=dataclasses.replace(
            _EVALUATE,
            num_train=128,
            num_test=64,
            num_runs=2,
            probe=dataclasses.replace(_EVALUATE.probe, steps=200, warmup_steps=10),
        ),
    ),
}
