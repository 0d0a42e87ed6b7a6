"""Frozen-feature probes (paper App. D.3-D.4; spec §1.7): a linear segmentation probe and a classification probe.

- `SegmentationProbe`: features [B, G, G, D] -> LayerNorm (optional) -> Dropout2d(0.1) -> BatchNorm2d -> 1x1 conv
  -> logits [B, C, G, G]. Conv weight ~ N(0, 0.01^2), bias 0: the DINOv3 linear-probe recipe. Parameter names
  (`ln`, `bn`, `conv`) are the authors', so their probe state dicts load as they are.
- `ClassificationProbe`: features [B, D] (the recurrent CLS, or a teacher's CLS) -> LayerNorm -> Linear -> [B, C].

Both compute in float32 whatever the features' dtype, with autocast off: under a caller's bfloat16 autocast,
bfloat16 logits would change the top class of some inputs.

Saved as one safetensors file whose metadata holds the `ProbeConfig` (and free-form info such as the
features it was trained on), so a probe is rebuilt from its file alone.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.weights_file import load_strict, read_weights_file, save_weights_file

__all__ = [
    "ClassificationProbe",
    "ProbeConfig",
    "ProbeTask",
    "SegmentationProbe",
    "build_probe",
    "load_probe",
    "read_probe_info",
    "save_probe",
]

ProbeTask = Literal["segmentation", "classification"]
PROBE_FORMAT = "saccade-probe"
PROBE_FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """Shape and recipe of one probe."""

    task: ProbeTask
    """'segmentation' (per-cell logits on a feature grid) or 'classification' (logits of a vector)."""
    in_dim: int
    """Feature width D (canvas width D_cv, backbone width for the recurrent CLS, or the teacher's width)."""
    num_classes: int
    """Output classes C."""
    layer_norm: bool = True
    """LayerNorm on the input features (the paper's CanViT probes; off for its DINOv3 segmentation baselines)."""
    dropout: float = 0.1
    """Dropout2d probability before the BatchNorm (segmentation only)."""

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "classification"):
            raise ValueError(f"ProbeConfig.task must be 'segmentation' or 'classification', got {self.task!r}")
        for name in ("in_dim", "num_classes"):
            positive_int(f"ProbeConfig.{name}", getattr(self, name))
        if not isinstance(self.layer_norm, bool):
            raise ValueError(f"ProbeConfig.layer_norm must be a bool, got {self.layer_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ProbeConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ProbeConfig fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


class SegmentationProbe(nn.Module):
    """Linear segmentation probe on a feature grid: [B, G, G, D] -> logits [B, C, G, G]."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        if config.task != "segmentation":
            raise ValueError(f"SegmentationProbe needs ProbeConfig.task='segmentation', got {config.task!r}")
        self.config = config
        D, C = config.in_dim, config.num_classes
        self.ln = nn.LayerNorm(D) if config.layer_norm else None
        self.dropout = nn.Dropout2d(config.dropout)
        self.bn = nn.BatchNorm2d(D)
        self.conv = nn.Conv2d(D, C, kernel_size=1)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Conv ~ N(0, 0.01^2) with bias 0 (DINOv3 linear head); norms at identity."""
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)
        self.bn.reset_parameters()
        if self.ln is not None:
            self.ln.reset_parameters()

    def forward(self, features: Tensor) -> Tensor:
        """features [B, G, G, D] (channels last, as the canvas grid) -> logits [B, C, G, G]."""
        if features.ndim != 4 or features.shape[-1] != self.config.in_dim:
            raise ValueError(f"features must be [B, G, G, {self.config.in_dim}], got {tuple(features.shape)}")
        # The probe runs in float32, like the canvas, also under a caller's autocast (bfloat16 logits flip argmaxes).
        with torch.autocast(device_type=features.device.type, enabled=False):
            x = features.float()
            if self.ln is not None:
                x = self.ln(x)
            x = x.permute(0, 3, 1, 2)  # [B, D, G, G]
            return self.conv(self.bn(self.dropout(x)))  # [B, C, G, G]


class ClassificationProbe(nn.Module):
    """LayerNorm + Linear on a feature vector: [B, D] (or [B, 1, D]) -> logits [B, C]."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        if config.task != "classification":
            raise ValueError(f"ClassificationProbe needs ProbeConfig.task='classification', got {config.task!r}")
        self.config = config
        self.ln = nn.LayerNorm(config.in_dim) if config.layer_norm else None
        self.linear = nn.Linear(config.in_dim, config.num_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Linear ~ N(0, 0.01^2) with bias 0, as the segmentation probe."""
        nn.init.normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)
        if self.ln is not None:
            self.ln.reset_parameters()

    def forward(self, features: Tensor) -> Tensor:
        """features [B, D] or [B, 1, D] -> logits [B, C]."""
        if features.ndim == 3 and features.shape[1] == 1:
            features = features[:, 0]  # [B, D]
        if features.ndim != 2 or features.shape[-1] != self.config.in_dim:
            raise ValueError(f"features must be [B, {self.config.in_dim}], got {tuple(features.shape)}")
        with torch.autocast(device_type=features.device.type, enabled=False):  # float32, as the segmentation probe
            x = features.float()
            if self.ln is not None:
                x = self.ln(x)
            return self.linear(x)  # [B, C]


def build_probe(config: ProbeConfig) -> SegmentationProbe | ClassificationProbe:
    """The probe module for `config.task`."""
    return SegmentationProbe(config) if config.task == "segmentation" else ClassificationProbe(config)


def save_probe(
    probe: SegmentationProbe | ClassificationProbe, path: str | os.PathLike, *, info: dict[str, Any] | None = None
) -> Path:
    """Write the probe's weights and config (and JSON-ready `info`) to one safetensors file; returns its path."""
    if not isinstance(probe, SegmentationProbe | ClassificationProbe):
        raise TypeError(f"save_probe takes a SegmentationProbe or ClassificationProbe, got {type(probe).__name__}")
    return save_weights_file(
        probe, path, kind=PROBE_FORMAT, version=PROBE_FORMAT_VERSION, config=probe.config.to_dict(), info=info
    )


def load_probe(path: str | os.PathLike) -> SegmentationProbe | ClassificationProbe:
    """Rebuild a probe saved by `save_probe` (a .safetensors file), or read an authors' released segmentation probe
    (a folder, Hub id or mirror name: saccade.probes.released); strict (missing, unexpected, mis-shaped keys: error),
    in eval mode."""
    if not str(path).endswith(".safetensors") and not Path(path).is_file():
        from saccade.probes.released import load_released_segmentation_probe

        return load_released_segmentation_probe(path)
    file = read_weights_file(path, kind=PROBE_FORMAT, version=PROBE_FORMAT_VERSION, what="probe")
    probe = build_probe(ProbeConfig.from_dict(file.config))
    return load_strict(probe, file.tensors, source=path).eval()


def read_probe_info(path: str | os.PathLike) -> dict[str, Any]:
    """The free-form `info` dict saved with a probe."""
    return read_weights_file(path, kind=PROBE_FORMAT, version=PROBE_FORMAT_VERSION, what="probe").info
