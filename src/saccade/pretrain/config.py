"""Pretraining configuration, with the paper's values as defaults (paper Table "pretraining hyperparameters")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from saccade._checks import non_negative_int, positive_int
from saccade.config_files import changed_settings, config_from_dict, config_to_dict, read_config_file
from saccade.episode_config import EPISODES, EpisodeConfig

__all__ = [
    "BACKBONE_INITS",
    "CANVAS_STARTS",
    "MAX_GLIMPSES",
    "RESUME_FIXED_FIELDS",
    "RESUME_FREE_FIELDS",
    "BackboneInit",
    "CanvasStart",
    "PretrainConfig",
    "check_resume",
    "check_rollouts",
]

BackboneInit = Literal["random", "dinov2-s14-imgfocus"]
BACKBONE_INITS: tuple[str, ...] = get_args(BackboneInit)
CanvasStart = Literal["default", "local", "local-position"]
CANVAS_STARTS: tuple[str, ...] = get_args(CanvasStart)
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Tracker = Literal["tensorboard", "wandb", "mlflow", "none"]
TRACKERS: tuple[str, ...] = get_args(Tracker)
MAX_GLIMPSES = 64  # longest training rollout; guards against a pathological geometric draw
# A checkpoint's tensors (and its optimizer's parameter list) depend on these: a run cannot resume with other values.
RESUME_FIXED_FIELDS = (
    "model",
    "episode.canvas_grid",
    "freeze_backbone",
    "freeze_write_attention",
    "patch_readout_blocks",
)
# These change only logging, validation, checkpoint cadence, where the folder is and the CPU thread count (float
# sums may differ in their last bits): a run resumes with new values.
RESUME_FREE_FIELDS = (
    "checkpoint_every", "val_every", "episode.num_glimpses", "val_policies", "log_every", "output_dir", "threads",
    "compile", "checkpoint_blocks", "tracker",
)  # fmt: skip


def check_rollouts(rollouts: tuple[str, ...], owner: str) -> None:
    """Refuse training rollouts that are empty or name a policy whose PolicySpec is not a pretraining rollout."""
    from saccade.policies import POLICIES, resolve_policy  # torch: imported only when a config is checked

    usable = [name for name, spec in POLICIES.items() if spec.pretraining_rollout]
    if not rollouts:
        raise ValueError(f"{owner}.rollouts must name at least one of {usable}")
    for name in rollouts:
        try:
            spec = POLICIES[resolve_policy(name)]
        except ValueError as error:
            raise ValueError(f"{owner}.rollouts: {error}") from None
        if not spec.pretraining_rollout:
            raise ValueError(
                f"{owner}.rollouts: {name!r} is not a pretraining rollout (those are drawn for the whole batch "
                f"without the model state); choose from {usable}"
            )


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Everything a pretraining run needs; saved as config.json next to its checkpoints."""

    model: str = "canvit-b16"
    """CanViT preset name (saccade.PRESETS) or a path to a JSON file with a CanViTConfig dict."""
    backbone_init: BackboneInit = "random"
    """Backbone start: random (the paper) or weights selected from the bundled DINOv2-S/14 teacher
    (saccade.pretrain.weight_selection)."""
    canvas_start: CanvasStart = "default"
    """Canvas Attention's start: the default initialisation (the paper), or "local": writes and reads attend by
    scene position from step 0 and Reads start as no-ops (saccade.pretrain.canvas_start; what makes C2F's later
    glimpses count at the main job's CPU budget), or "local-position": local, with Writes that attend by position
    alone (their query LayerNorm and key map weights zero) and, with a Write sink, a cut of 12 logits per zoom level,
    so that a glimpse writes only near where it looked even once the canvas has content."""
    init_from: str | None = None
    """Start every weight, teacher readout and standardizer from a saved pretraining model (a folder, Hub id or
    mirror name; saccade.load) instead of backbone_init / canvas_start, with a fresh optimizer and schedule: to
    continue a longer run on a new budget (`saccade demo --start MODEL`). Or start from a start file (a
    .safetensors path, saccade.pretrain.start_file): every weight but the backbone, which backbone_init selects as
    the file records. Its standardizers are kept, so the run's teacher must be the one it was trained with."""
    episode: EpisodeConfig = EPISODES["paper"]
    """Glimpse side (a multiple of the patch size), canvas grid (the teacher's patch grid), the glimpses of the
    validation rollouts and the scene side the data is meant at; recorded in the saved model's config.json."""
    batch_size: int = 64
    """Global batch of scenes per step (split across data-parallel ranks)."""
    steps: int = 2_001_792
    """Optimizer steps."""
    lr: float = 4e-4
    """Peak learning rate (AdamW)."""
    backbone_lr_scale: float = 1.0
    """The ViT backbone's learning rate is lr times this (e.g. < 1 to keep more of a teacher-selected start)."""
    freeze_backbone: bool = False
    """Keep what makes the glimpse tokens at its start (backbone_init or init_from): the backbone, its registers, the
    VPE and the recurrent-CLS init do not learn; the canvas, its Reads and Writes and the readouts do. With a model
    whose Reads are off (CanViTConfig.enable_reads = False) nothing before the Writes then needs a gradient, so a
    step costs the backbone's forward only (saccade.pretrain.state.frozen_backbone_parameters)."""
    backbone_frozen_steps: int = 0
    """The first N steps keep what freeze_backbone keeps (the whole run does with freeze_backbone); from step N on
    it learns, at lr x backbone_lr_scale. The new parts (the Writes, the readouts, the canvas) first learn on the
    start's glimpse tokens instead of moving the backbone with their random early gradients; a frozen step costs
    the backbone's forward only when the Reads are off."""
    freeze_write_attention: bool = False
    """Keep where the Writes attend at its start: their queries (canvas LayerNorm), keys (key map) and sink do not
    learn; their values do. With canvas_start "local-position" every Write then stays a fixed splat of the glimpse
    by scene position, which training cannot close: left to learn, the main job's pretraining taught the Writes to
    ignore the 1/16 tiles (docs/main-job.md)."""
    patch_readout_blocks: int = 0
    """Transformer blocks over the canvas before the teacher patch readout's LayerNorm + Linear (ContextReadout, not
    in the paper; 0: the paper's token-wise readout). The teacher's patches depend on the whole scene, so a
    token-wise readout cannot turn what a zoomed glimpse wrote into its cells into them. With one block (the main job's
    recipe with a frozen backbone, 1,000 steps) the held-out C2F cosine went 0.316 -> 0.398 from t = 0 to 9, against
    0.276 -> 0.341 token-wise (docs/main-job.md); a step cost 1.48 s instead of 0.72 s."""
    start_lr: float = 1e-7
    """Learning rate at step 0 of the linear warmup."""
    warmup_steps: int = 100_000
    """Linear warmup length."""
    schedule: Literal["constant", "cosine"] = "constant"
    """After warmup: constant (paper) or cosine decay to 0 at `steps`."""
    weight_decay: float = 1e-4
    """AdamW weight decay, on all parameters (as in the paper)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 disables."""
    chunk_size: int = 2
    """Truncated BPTT chunk K: glimpses per backward; state is detached between chunks (at most MAX_GLIMPSES = 64)."""
    continue_prob: float = 0.5
    """After each chunk the rollout continues with this probability (E[T] = K / (1 - p))."""
    hflip_prob: float = 0.0
    """Mirror a training scene and its patch targets left-right with this probability (0: the paper, no flips)."""
    drop_path: float = 0.0
    """Stochastic depth of the backbone blocks: drop probability rising linearly to this at the last block."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights (e.g. 0.998); validation and the saved model use it."""
    min_scale: float = 0.05
    """Smallest viewpoint scale of the R-IID rollouts."""
    rollouts: tuple[str, ...] = ("full_then_random", "random")
    """One rollout per policy per step, each from a fresh canvas (paper: 1 F-IID + 1 R-IID); also RFS or C2F."""
    standardizer_samples: int = 4096
    """Training scenes whose teacher features fit the standardizers (when not fitted already)."""
    seed: int = 0
    """Seeds model init, data order, viewpoints and rollout lengths."""
    threads: int = 0
    """Intra-op CPU threads per process; 0: chosen at the start from the free cores and the work size
    (saccade.threads), and the choice is recorded here in the run's config.json."""
    checkpoint_every: int = 1000
    """Write a checkpoint every N steps (and on SIGTERM / SIGINT and at the end)."""
    val_every: int = 1000
    """Validate every N steps on held-out scenes; 0 disables."""
    val_policies: tuple[str, ...] = ("coarse_to_fine",)
    """Policies evaluated at each validation (the final validation adds F2C and R-IID)."""
    log_every: int = 10
    """Append a metrics line to metrics.jsonl every N steps."""
    output_dir: str = "runs/pretrain"
    """Where checkpoints, metrics.jsonl, pictures and the summary go."""
    teacher: str | None = None
    """Compute the targets in the training loop from raw images (--data an image folder) with this teacher
    (saccade.teachers: dinov2-s14-imgfocus, or hf with --teacher-path); scenes are patch size x canvas grid px.
    None: the data holds its targets (shards, named sets)."""
    teacher_path: str | None = None
    """Local Hugging Face model folder of --teacher hf."""
    precision: Precision = "auto"
    """Backbone arithmetic: bfloat16 autocast (the canvas, RoPE, VPE and readouts stay float32) or float32;
    auto: bfloat16 on CUDA, float32 elsewhere."""
    compile: bool = False
    """Run the per-glimpse forward (glimpse, CanViT step, losses) through torch.compile; kernels are cached on disk
    (TORCHINDUCTOR_CACHE_DIR) and reused by later runs."""
    accumulation_steps: int = 1
    """Split each rank's batch into this many micro-batches, one forward/backward each, for one optimizer step: the
    update of the whole batch in the memory of a micro-batch (must divide batch_size / ranks)."""
    checkpoint_blocks: bool = False
    """Activation checkpointing: recompute the backbone blocks in backward instead of storing their activations."""
    tracker: Tracker = "tensorboard"
    """Where metrics go besides metrics.jsonl: tensorboard (when installed), wandb or mlflow (extras, no account
    needed: W&B offline unless WANDB_MODE=online, MLflow to output_dir/mlflow.db unless MLFLOW_TRACKING_URI),
    or none."""

    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        "glimpse_px": "episode.glimpse_px",
        "canvas_grid": "episode.canvas_grid",
        "val_glimpses": "episode.num_glimpses",
    }  # the flat keys of runs written before the episode was one sub-config

    def _check_init_from(self) -> None:
        """A saved model sets every weight; a start file every weight but the backbone_init's backbone."""
        from saccade.pretrain.start_file import is_start_file

        if self.init_from is None:
            return
        if is_start_file(self.init_from):
            if self.backbone_init == "random" or self.canvas_start != "default":
                raise ValueError(
                    f"PretrainConfig.init_from ({self.init_from!r}) is a start file: it sets every weight but the "
                    f"backbone, which backbone_init selects, so backbone_init ({self.backbone_init!r}) must name the "
                    f"file's selection and canvas_start ({self.canvas_start!r}) stay 'default'"
                )
        elif (self.backbone_init, self.canvas_start) != ("random", "default"):
            raise ValueError(
                f"PretrainConfig.init_from ({self.init_from!r}) sets every weight, so backbone_init "
                f"({self.backbone_init!r}) and canvas_start ({self.canvas_start!r}) would be overwritten; leave them "
                "at 'random' and 'default'"
            )

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "chunk_size", "checkpoint_every", "log_every"):
            positive_int(f"PretrainConfig.{name}", getattr(self, name))
        for name in (
            "warmup_steps",
            "val_every",
            "standardizer_samples",
            "seed",
            "threads",
            "patch_readout_blocks",
            "backbone_frozen_steps",
        ):
            non_negative_int(f"PretrainConfig.{name}", getattr(self, name))
        if self.chunk_size > MAX_GLIMPSES:
            raise ValueError(f"PretrainConfig.chunk_size must be at most {MAX_GLIMPSES}, got {self.chunk_size}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"PretrainConfig.lr must be > 0 and finite, got {self.lr}")
        if self.freeze_backbone and self.backbone_lr_scale != 1:
            raise ValueError(
                f"PretrainConfig.freeze_backbone and backbone_lr_scale={self.backbone_lr_scale} both set the "
                "backbone's learning rate; give one"
            )
        if self.freeze_backbone and self.backbone_frozen_steps:
            raise ValueError(
                f"PretrainConfig.freeze_backbone keeps the backbone frozen for every step; backbone_frozen_steps="
                f"{self.backbone_frozen_steps} frees it after those: give one"
            )
        if not 0 <= self.backbone_lr_scale <= 1:
            raise ValueError(f"PretrainConfig.backbone_lr_scale must be in [0, 1], got {self.backbone_lr_scale}")
        if not 0 < self.start_lr <= self.lr:
            raise ValueError(f"PretrainConfig.start_lr must be in (0, lr={self.lr}], got {self.start_lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(
                f"PretrainConfig.weight_decay and grad_clip must be >= 0, got {self.weight_decay}, {self.grad_clip}"
            )
        if not 0 <= self.continue_prob < 1:
            raise ValueError(f"PretrainConfig.continue_prob must be in [0, 1), got {self.continue_prob}")
        if not 0 <= self.hflip_prob <= 1:
            raise ValueError(f"PretrainConfig.hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"PretrainConfig.drop_path must be in [0, 1), got {self.drop_path}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"PretrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"PretrainConfig.min_scale must be in (0, 1], got {self.min_scale}")
        if self.backbone_init not in BACKBONE_INITS:
            raise ValueError(
                f"PretrainConfig.backbone_init must be one of {BACKBONE_INITS}, got {self.backbone_init!r}"
            )
        if self.canvas_start not in CANVAS_STARTS:
            raise ValueError(f"PretrainConfig.canvas_start must be one of {CANVAS_STARTS}, got {self.canvas_start!r}")
        self._check_init_from()
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"PretrainConfig.schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        check_rollouts(self.rollouts, "PretrainConfig")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"PretrainConfig.betas must be two values in [0, 1), got {self.betas}")
        _check_teacher(self.teacher, self.teacher_path)
        positive_int("PretrainConfig.accumulation_steps", self.accumulation_steps)
        if self.batch_size % self.accumulation_steps:
            raise ValueError(
                f"PretrainConfig.accumulation_steps={self.accumulation_steps} must divide batch_size={self.batch_size}"
            )
        for name, allowed in (("precision", PRECISIONS), ("tracker", TRACKERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"PretrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        return config_from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> PretrainConfig:
        """Read a JSON or TOML file of PretrainConfig fields."""
        return cls.from_dict(read_config_file(path))


def _check_teacher(name: str | None, path: str | None) -> None:
    """Refuse an unknown teacher name, and a teacher path without the 'hf' teacher."""
    if name is None and path is None:
        return
    from saccade.teachers import TEACHERS  # torch: imported only when a teacher is set

    if name not in TEACHERS:
        raise ValueError(f"PretrainConfig.teacher must be one of {sorted(TEACHERS)} or None, got {name!r}")
    if (name == "hf") != (path is not None):
        raise ValueError(
            f"PretrainConfig.teacher_path names the folder of teacher 'hf' (and only of it), got teacher {name!r} "
            f"and teacher_path {path!r}"
        )


def check_resume(
    recorded: dict[str, Any], config: PretrainConfig, *, allow_change: bool, source: str
) -> dict[str, tuple[Any, Any]]:
    """{field: (recorded, new)} of the settings that differ from a checkpoint's `recorded` config.

    Refuses a change of RESUME_FIXED_FIELDS always, and of any field outside RESUME_FREE_FIELDS unless
    `allow_change`; `source` names the checkpoint in the error.
    """
    changes = changed_settings(recorded, config)
    fixed = {name: change for name, change in changes.items() if name in RESUME_FIXED_FIELDS}
    if fixed:
        raise ValueError(f"cannot resume {source}: {_describe(fixed)}; use another output_dir for another model")
    unexpected = {name: change for name, change in changes.items() if name not in RESUME_FREE_FIELDS}
    if unexpected and not allow_change:
        raise ValueError(
            f"resuming {source} with other settings: {_describe(unexpected)}; rerun with the recorded settings, "
            "allow the change explicitly (--allow-config-change), or use another output_dir"
        )
    return changes


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{name} {old!r} in the checkpoint, {new!r} now" for name, (old, new) in changes.items())
