"""Settings of the main job (`saccade demo`): from nothing to a trained active-vision model and a report."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saccade.pretrain.config import BACKBONE_INITS, BackboneInit, check_rollouts

__all__ = ["DEMO_PRESETS", "DemoConfig"]


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Every knob of the main job; `report/config.json` holds the exact values of a run."""

    output_dir: str = "report"
    """Report folder; each stage caches its output in a subfolder and is skipped when already done."""
    model: str = "canvit-t16d6"
    """CanViT preset to pretrain."""
    num_train_crops: int = 10_000
    """Training scenes: random crops of the bundled training photos."""
    num_heldout_crops: int = 64
    """Validation scenes: crops of the held-out photos (never trained on)."""
    pretrain_steps: int = 1_300
    """Pretraining optimizer steps (the cosine schedule ends there); about 15 minutes on 2 idle cores."""
    pretrain_minutes: float = 60.0
    """Wall-clock guard of the pretraining loop, not its budget (that is pretrain_steps, so a config gives the same
    model whatever the load): about 4x the expected time on 2 idle cores, so only a machine several times slower, or
    a stuck one, reaches it. Then pretraining stops with a checkpoint, and results.json ("budget_cuts") and a red
    banner at the top of the report say so, with the steps done."""
    batch_size: int = 32
    """Pretraining batch."""
    lr: float = 4e-4
    """Pretraining peak learning rate."""
    warmup_steps: int = 100
    """Pretraining warmup."""
    weight_decay: float = 0.05
    """AdamW weight decay (the data-scarce recipe, docs/data-scarce.md)."""
    ema_decay: float = 0.0
    """Weight average used for validation and saved (0: none; it made no difference in docs/data-scarce.md)."""
    backbone_init: BackboneInit = "dinov2-s14-imgfocus"
    """Backbone start: weights selected from the bundled teacher (docs/data-scarce.md) or "random" (the paper)."""
    rollouts: tuple[str, ...] = ("full_then_random", "coarse_to_fine")
    """Pretraining rollouts per step: F-IID and C2F (docs/data-scarce.md; the paper: F-IID and R-IID)."""
    num_glimpses: int = 10
    """T of the evaluation rollouts."""
    eval_train_scenes: int = 1024
    """Bundled benchmark: scenes the probes are trained on."""
    eval_test_scenes: int = 256
    """Bundled benchmark: test scenes."""
    probe_steps: int = 300
    """Probe training steps."""
    probe_lr: float = 3e-3
    """Probe peak learning rate (3e-4 in the paper, tuned for 40k steps)."""
    num_runs: int = 3
    """Runs of each stochastic policy."""
    teacher_px: tuple[int, ...] = (28, 56, 112)
    """Input sizes of the passive teacher baseline."""
    policies: tuple[str, ...] = ("C2F", "F2C", "R-IID", "F-IID", "RFS", "EG-C2F")
    """Policies evaluated per glimpse."""
    seed: int = 0
    """Seeds data, model, policies and probes."""
    threads: int = 0
    """Intra-op CPU threads of every stage; 0: chosen at the start from the free cores (saccade.threads), and
    recorded in the report's config.json."""

    def __post_init__(self) -> None:
        positive = (
            "num_train_crops",
            "num_heldout_crops",
            "pretrain_steps",
            "batch_size",
            "num_glimpses",
            "probe_steps",
        )
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"DemoConfig.threads must be a non-negative int (0: automatic), got {self.threads!r}")
        for name in (*positive, "num_runs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"DemoConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.pretrain_minutes > 0:
            raise ValueError(f"DemoConfig.pretrain_minutes must be > 0, got {self.pretrain_minutes}")
        if self.backbone_init not in BACKBONE_INITS:
            raise ValueError(f"DemoConfig.backbone_init must be one of {BACKBONE_INITS}, got {self.backbone_init!r}")
        check_rollouts(self.rollouts, "DemoConfig")
        if self.num_train_crops < self.batch_size:
            raise ValueError(f"DemoConfig.num_train_crops ({self.num_train_crops}) < batch_size ({self.batch_size})")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown demo settings {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> DemoConfig:
        """A TOML or JSON file of DemoConfig fields."""
        path = Path(path)
        text = path.read_text()
        return cls.from_dict(tomllib.loads(text) if path.suffix == ".toml" else json.loads(text))


DEMO_PRESETS: dict[str, DemoConfig] = {
    "full": DemoConfig(),
    # Under 5 minutes on 2 CPU cores: every stage runs, with tiny sizes.
    "quick": DemoConfig(
        output_dir="report-quick",
        num_train_crops=512,
        num_heldout_crops=16,
        pretrain_steps=40,
        pretrain_minutes=5.0,  # about 20x the 16 s of pretraining on 2 idle cores
        batch_size=16,
        warmup_steps=10,
        num_glimpses=5,
        eval_train_scenes=128,
        eval_test_scenes=64,
        probe_steps=40,
        num_runs=2,
    ),
}
