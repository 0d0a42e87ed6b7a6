"""What `saccade bench` measures: the cases, the timing protocol and the baseline to compare with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from saccade.episode_config import EPISODES
from saccade.model.config import PRESETS

__all__ = ["BenchConfig", "GlimpseCase", "PretrainCase"]


@dataclass(frozen=True, kw_only=True)
class GlimpseCase:
    """One glimpse step (the second of an episode, so the canvas is not the init) without autograd."""

    model: str
    batch_size: int
    canvas_grid: int
    glimpse_px: int

    @property
    def kind(self) -> str:
        return "latency" if self.batch_size == 1 else "throughput"

    @property
    def name(self) -> str:
        return f"{self.model} {self.kind} B={self.batch_size} G={self.canvas_grid}"


@dataclass(frozen=True, kw_only=True)
class PretrainCase:
    """One pretraining step: T glimpses from a fresh canvas, readouts and MSE after each, backward, AdamW."""

    model: str
    batch_size: int
    canvas_grid: int
    glimpse_px: int
    num_glimpses: int
    teacher_dim: int

    @property
    def kind(self) -> str:
        return "pretrain"

    @property
    def name(self) -> str:
        return f"{self.model} pretrain B={self.batch_size} G={self.canvas_grid} T={self.num_glimpses}"


Case = GlimpseCase | PretrainCase


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """The benchmark of issue 8: our CanViT against the authors' canvit-pytorch 0.2.1, same weights, one run."""

    models: tuple[str, ...] = ("canvit-b16", "canvit-s16")
    """CanViT presets to time (saccade.PRESETS)."""
    grids: tuple[int, ...] = (8, 16, 32, 64, 128)
    """Canvas grids G of the glimpse cases."""
    latency_batch: int = 1
    """Batch of the per-glimpse latency cases."""
    throughput_batch: int = 16
    """Batch of the throughput cases (0 skips them)."""
    glimpse_px: int = EPISODES["paper"].glimpse_px
    """Glimpse side in pixels."""
    pretrain_models: tuple[str, ...] = ("canvit-b16", "canvit-s16")
    """Presets of the pretraining-step case (empty skips it)."""
    pretrain_batch: int = 4
    """Batch of the pretraining step."""
    pretrain_grid: int = EPISODES["paper"].canvas_grid
    """Canvas grid (= teacher patch grid) of the pretraining step."""
    pretrain_glimpses: int = 2
    """Glimpses per pretraining step."""
    teacher_dim: int = 768
    """Teacher feature width of the pretraining readouts (DINOv3 ViT-B)."""
    threads: int = 2
    """torch CPU threads (torch.set_num_threads) for every measurement."""
    warmup: int = 2
    """Untimed calls of each implementation before timing."""
    repeats: int = 9
    """Timed rounds per case; each round times every implementation once, in alternating order."""
    min_repeats: int = 3
    """Rounds that always run, even past `case_budget_s`."""
    case_budget_s: float = 60.0
    """A case stops adding rounds once its timed rounds have taken this long."""
    measure_memory: bool = True
    """Measure the peak memory of every case, each implementation in a fresh subprocess."""
    matmul_size: int = 2048
    """Side of the square float32 matmul that gives the machine's reference GFLOP/s."""
    atol: float = 1e-5
    """Largest absolute difference allowed between the two implementations' outputs."""
    seed: int = 0
    """Seed of the shared random weights and inputs."""
    baseline_path: str | None = None
    """Folder holding the authors' canvit_pytorch and canvit_core packages (None: our figures only)."""

    def __post_init__(self) -> None:
        unknown = sorted((set(self.models) | set(self.pretrain_models)) - set(PRESETS))
        if unknown:
            raise ValueError(f"BenchConfig: unknown presets {unknown}; known: {sorted(PRESETS)}")
        for name in ("latency_batch", "throughput_batch", "pretrain_batch", "pretrain_grid", "pretrain_glimpses"):
            if getattr(self, name) < 0:
                raise ValueError(f"BenchConfig.{name} must be >= 0, got {getattr(self, name)}")
        if any(grid < 1 for grid in self.grids):
            raise ValueError(f"BenchConfig.grids must be positive, got {self.grids}")
        if self.threads < 1 or self.repeats < 1 or self.warmup < 0 or not 1 <= self.min_repeats <= self.repeats:
            raise ValueError(
                "BenchConfig needs threads >= 1, warmup >= 0 and 1 <= min_repeats <= repeats, got "
                f"{self.threads}, {self.warmup}, {self.min_repeats}, {self.repeats}"
            )

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Tiny cases for a smoke test: the tiny preset, small grids and glimpses, two rounds, one thread."""
        settings: dict[str, Any] = dict(
            models=("canvit-tiny",),
            grids=(2, 4),
            throughput_batch=2,
            glimpse_px=32,
            pretrain_models=("canvit-tiny",),
            pretrain_batch=2,
            pretrain_grid=4,
            teacher_dim=32,
            warmup=1,
            repeats=2,
            min_repeats=1,
            matmul_size=256,
            measure_memory=False,
            threads=1,
        )
        return cls(**(settings | overrides))

    def cases(self) -> list[Case]:
        """Glimpse cases (model x batch x grid), then the pretraining steps."""
        batches = [batch for batch in (self.latency_batch, self.throughput_batch) if batch > 0]
        cases: list[Case] = [
            GlimpseCase(model=model, batch_size=batch, canvas_grid=grid, glimpse_px=self.glimpse_px)
            for model in self.models
            for batch in batches
            for grid in self.grids
        ]
        if self.pretrain_batch > 0 and self.pretrain_glimpses > 0:
            cases += [
                PretrainCase(
                    model=model,
                    batch_size=self.pretrain_batch,
                    canvas_grid=self.pretrain_grid,
                    glimpse_px=self.glimpse_px,
                    num_glimpses=self.pretrain_glimpses,
                    teacher_dim=self.teacher_dim,
                )
                for model in self.pretrain_models
            ]
        return cases

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
