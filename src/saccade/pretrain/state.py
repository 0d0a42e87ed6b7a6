"""The state of a pretraining run: the model it starts from, optimizer, schedule, generator and weight average.

`TrainingRun.build` makes them for a new run, or restores them from a checkpoint; `TrainingRun.checkpoint`
writes them back, and refuses to write weights that are no longer finite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saccade.model.backbone import set_stochastic_depth
from saccade.model.canvit import CanViT
from saccade.model.checkpoint import load_state_dict_strict
from saccade.model.config import CanViTConfig, preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.pretrain.canvas_start import apply_canvas_start
from saccade.pretrain.checkpointing import CHECKPOINT_FILE, TrainingState, save_training_checkpoint
from saccade.pretrain.config import BACKBONE_INITS, PretrainConfig
from saccade.pretrain.data import DistillationDataset, collate
from saccade.pretrain.schedule import make_scheduler

__all__ = [
    "TrainingDiverged",
    "TrainingRun",
    "build_model",
    "canvit_config_of",
    "frozen_backbone_parameters",
    "frozen_write_attention_parameters",
    "select_backbone",
]


class TrainingDiverged(ValueError):
    """The loss, gradient norm or weights became non-finite; nothing of that step was saved."""


def canvit_config_of(config: PretrainConfig) -> CanViTConfig:
    """The CanViT config named by `config.model`: a preset name or a JSON file."""
    if config.model.endswith(".json"):
        path = Path(config.model)
        if not path.is_file():
            raise ValueError(f"PretrainConfig.model: model config file {path} does not exist")
        return CanViTConfig.from_dict(json.loads(path.read_text()))
    return preset(config.model)


def build_model(config: PretrainConfig, teacher_dim: int, *, resuming: bool = False) -> CanViTForPretraining:
    """The model a run starts from; `resuming` skips the teacher-selected backbone, the canvas start and init_from
    (the checkpoint overwrites them)."""
    torch.manual_seed(config.seed)
    model = CanViTForPretraining(
        canvit_config_of(config),
        teacher_dim=teacher_dim,
        teacher_patch_grid=config.episode.canvas_grid,
        patch_readout_blocks=config.patch_readout_blocks,
    )
    if not resuming:
        select_backbone(model.canvit, config.backbone_init)
        if config.init_from is not None:
            _load_start(model, config)
        apply_canvas_start(model.canvit, config.canvas_start)
    set_stochastic_depth(model.canvit.backbone, config.drop_path)
    frozen = frozen_backbone_parameters(model.canvit) if config.freeze_backbone else []
    frozen += frozen_write_attention_parameters(model.canvit) if config.freeze_write_attention else []
    for parameter in frozen:
        parameter.requires_grad_(False)
    return model


def frozen_backbone_parameters(canvit: CanViT) -> list[nn.Parameter]:
    """What `PretrainConfig.freeze_backbone` keeps: every parameter that makes the glimpse stream before a Read
    touches it (blocks, patch embedding, backbone registers, VPE, recurrent-CLS init)."""
    parameters = [*canvit.backbone.parameters(), canvit.backbone_registers, canvit.init_recurrent_cls]
    if canvit.vpe is not None:
        parameters += list(canvit.vpe.parameters())
    return parameters


def set_backbone_learning(canvit: CanViT, learning: bool) -> None:
    """Let what `PretrainConfig.freeze_backbone` keeps learn, or not (`PretrainConfig.backbone_frozen_steps`). The
    optimizer holds these parameters either way; while they have no gradient AdamW leaves them as they are (weight
    decay included)."""
    for parameter in frozen_backbone_parameters(canvit):
        parameter.requires_grad_(learning)


def frozen_write_attention_parameters(canvit: CanViT) -> list[nn.Parameter]:
    """What `PretrainConfig.freeze_write_attention` keeps: each Write's query side (canvas LayerNorm, and its query
    map with 'qkvo' projections), key map and sink; its glimpse LayerNorm and value map learn."""
    parameters: list[nn.Parameter] = []
    for write in canvit.canvas_writes:
        parameters += [*write.ln_q.parameters(), *write.q_map.parameters(), *write.k_map.parameters()]
        parameters += [p for p in (write.sink_logit, write.sink_zoom) if p is not None]
    return parameters


def select_backbone(canvit: CanViT, backbone_init: str) -> None:
    """Apply a `PretrainConfig.backbone_init` by name: "random" leaves the initialisation as it is."""
    if backbone_init == "dinov2-s14-imgfocus":
        from saccade.pretrain.weight_selection import select_from_dinov2
        from saccade.teachers.dinov2_bundled import load_bundled_dinov2

        select_from_dinov2(canvit, load_bundled_dinov2().vit)
    elif backbone_init != "random":
        raise ValueError(f"unknown backbone_init {backbone_init!r}; expected one of {BACKBONE_INITS}")


def _load_start(model: CanViTForPretraining, config: PretrainConfig) -> None:
    """Copy `config.init_from` into `model`, which must have its shape: a saved pretraining model (standardizers
    included), or a start file that holds all but the backbone (selected already by `config.backbone_init`)."""
    from saccade.loading import load_pretrained  # huggingface_hub: imported only when a run starts from a model
    from saccade.pretrain.start_file import is_start_file, load_start_file

    spec = config.init_from
    if is_start_file(spec):
        load_start_file(model, spec, backbone_init=config.backbone_init)
        return
    start = load_pretrained(spec)
    if not isinstance(start, CanViTForPretraining):
        raise ValueError(
            f"PretrainConfig.init_from: {spec} holds a {type(start).__name__} without teacher readouts; a run "
            "starts from a pretraining model (its model/ folder)"
        )
    if start.canvit.config != model.canvit.config:
        raise ValueError(
            f"PretrainConfig.init_from: {spec} is another model than PretrainConfig.model: "
            f"{start.canvit.config} vs {model.canvit.config}"
        )
    if start.patch_readout_blocks != model.patch_readout_blocks:
        raise ValueError(
            f"PretrainConfig.init_from: {spec} reads the teacher patches through {start.patch_readout_blocks} "
            f"transformer block(s), PretrainConfig.patch_readout_blocks asks for {model.patch_readout_blocks}"
        )
    load_state_dict_strict(model, start.state_dict(), source=f"PretrainConfig.init_from {spec}")


def _parameter_groups(model: CanViTForPretraining, config: PretrainConfig) -> list[dict[str, Any]]:
    """One group at lr, or two when the backbone learns at lr * backbone_lr_scale (the schedule scales both)."""
    trainable = [param for param in model.parameters() if param.requires_grad]  # all but a frozen backbone's
    if config.backbone_lr_scale == 1:
        return [{"params": trainable}]
    backbone = list(model.canvit.backbone.parameters())
    in_backbone = {id(param) for param in backbone}
    rest = [param for param in trainable if id(param) not in in_backbone]
    return [{"params": rest}, {"params": backbone, "lr": config.lr * config.backbone_lr_scale}]


def _fit_standardizers(
    model: CanViTForPretraining, dataset: DistillationDataset, num_samples: int, chunk_size: int
) -> None:
    """Fit on the first `num_samples` scenes, collated `chunk_size` at a time (a teacher in the loop runs per chunk)."""
    count = min(num_samples, len(dataset))
    chunks = [
        collate(dataset, list(range(start, min(start + chunk_size, count)))) for start in range(0, count, chunk_size)
    ]
    model.teacher_patch_standardizer.fit(torch.cat([chunk.patches.cpu() for chunk in chunks]))  # [S, G*G, D_t]
    model.teacher_cls_standardizer.fit(torch.cat([chunk.cls.cpu() for chunk in chunks]))  # [S, D_t]


@dataclass
class TrainingRun:
    """What a training step changes and a checkpoint holds, and the step it has reached."""

    config: PretrainConfig
    model: CanViTForPretraining
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator  # viewpoints and rollout lengths
    ema: torch.optim.swa_utils.AveragedModel | None
    step: int
    saved_step: int | None  # step of the checkpoint on disk
    rank: int
    resumed_data: dict[str, Any] | None = None  # the checkpoint's data position (streamed data), None when new
    data_position: Callable[[], dict[str, Any]] | None = None  # the position to save (streamed data; collective)

    @classmethod
    def build(
        cls,
        config: PretrainConfig,
        teacher_dim: int,
        resumed: TrainingState | None,
        statistics_set: DistillationDataset,
        *,
        device: torch.device,
        rank: int,
    ) -> TrainingRun:
        """A new run (standardizers fitted on `statistics_set`) or the state of `resumed`, on `device`."""
        model = build_model(config, teacher_dim, resuming=resumed is not None)
        optimizer = torch.optim.AdamW(
            _parameter_groups(model, config), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        scheduler = make_scheduler(optimizer, config)
        generator = torch.Generator().manual_seed(config.seed)
        if resumed is not None:
            load_state_dict_strict(model, resumed.model, source=str(Path(config.output_dir) / CHECKPOINT_FILE))
            _restore_optimizer(optimizer, scheduler, resumed)
            generator.set_state(resumed.generator)
            torch.set_rng_state(resumed.torch_rng)
        elif config.init_from is None:
            _fit_standardizers(model, statistics_set, config.standardizer_samples, config.batch_size)
        model.to(device).train()
        _move_optimizer_state(optimizer, device)
        ema = _weight_average(model, config.ema_decay)
        if ema is not None and resumed is not None and resumed.ema is not None:
            ema.load_state_dict(resumed.ema)
        step = resumed.step if resumed is not None else 0
        if config.backbone_frozen_steps:  # after the optimizer took the backbone; the trainer lets it learn at N
            set_backbone_learning(model.canvit, step >= config.backbone_frozen_steps)
        saved = resumed.step if resumed is not None else None
        data = resumed.data if resumed is not None else None
        return cls(config, model, optimizer, scheduler, generator, ema, step, saved, rank, resumed_data=data)

    @property
    def evaluated(self) -> CanViTForPretraining:
        """What validation sees and what is saved: the weight average, if kept."""
        return self.ema.module if self.ema is not None else self.model

    def checkpoint(self) -> None:
        """Write checkpoint.pt for the current step (rank 0), refusing non-finite weights."""
        if not bool(torch.stack([torch.isfinite(param).all() for param in self.model.parameters()]).all()):
            raise self.diverged(self.step, "the weights are not finite")
        data = self.data_position() if self.data_position is not None else None  # all ranks take part
        if self.rank == 0:
            state = TrainingState(
                step=self.step,
                model=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                generator=self.generator.get_state(),
                torch_rng=torch.get_rng_state(),
                config=self.config.to_dict(),
                ema=self.ema.state_dict() if self.ema is not None else None,
                data=data,
            )
            save_training_checkpoint(self.config.output_dir, state)
        self.saved_step = self.step

    def diverged(self, step: int, what: str) -> TrainingDiverged:
        """The error for a non-finite value at `step` (1-based), naming the checkpoint that stays."""
        saved = (
            "no checkpoint was written"
            if self.saved_step is None
            else f"the checkpoint of step {self.saved_step} in {self.config.output_dir} stays"
        )
        return TrainingDiverged(
            f"pretraining diverged at step {step} of {self.config.steps}: {what}; nothing of this step was "
            f"saved and {saved}. Lower the learning rate (lr={self.config.lr}) or look for non-finite scenes or "
            "teacher features in the training data (feature shards are checked as they are read)"
        )


def _restore_optimizer(optimizer: torch.optim.Optimizer, scheduler, resumed: TrainingState) -> None:
    """Load the optimizer and schedule state, keeping this config's hyperparameters (the same unless a change was
    allowed); the learning rate is this config's schedule at the resumed step."""
    settings = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(resumed.optimizer)
    scheduler.load_state_dict(resumed.scheduler)
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    for group, base_lr, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base_lr * factor(scheduler.last_epoch)


def _weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (buffers included), or None for decay 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)
