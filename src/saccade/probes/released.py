"""The authors' released probes, read as they are (issue 21; spec §5.3).

Two layouts, each a folder (or a Hub id / mirror name resolved by `saccade.hub.resolve_folder`):

- a segmentation probe, `probe-ade20k-40k-s{scene}-c{grid}-{model}` (on the canvas) or `probe-ade20k-40k-dv3{b,s}...`
  (on DINOv3 patches): config.json `embed_dim`, `num_classes`, `dropout`, `use_ln`; model.safetensors `ln.*` (when
  use_ln), `bn.*`, `conv.*`; read into saccade's `SegmentationProbe`;
- a linear probe on the teacher's CLS, `dinov3-vitb16-lvd1689m-in1k-512x512-linear-clf-probe` (ImageNet-1k): only
  model.safetensors, `weight` [classes, teacher_dim] and `bias` [classes]; read as a `TeacherLinearProbe`.

The segmentation probe's parameter names are the authors', so their state dict loads strictly into saccade's
`SegmentationProbe`. A teacher-CLS linear probe does not read CanViT's features directly: `saccade.tasks.Classifier`
fuses it with CanViT's CLS readout and the CLS destandardization.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor

from saccade.probes.heads import ProbeConfig, SegmentationProbe
from saccade.weights_file import load_strict

__all__ = ["TeacherLinearProbe", "load_released_segmentation_probe", "load_teacher_linear_probe", "probe_folder"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class TeacherLinearProbe:
    """A linear classifier on the teacher's CLS features: logits = weight @ cls + bias."""

    weight: Tensor  # [C, D_t]
    bias: Tensor  # [C]

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]


def probe_folder(spec: str | os.PathLike, *, revision: str | None = None) -> Path:
    """The local folder of a released probe: a folder, a Hub id or a mirror name (saccade.hub)."""
    from saccade.hub import resolve_folder

    return resolve_folder(str(spec), revision=revision)


def load_released_segmentation_probe(spec: str | os.PathLike, *, revision: str | None = None) -> SegmentationProbe:
    """An authors' segmentation probe folder -> saccade's SegmentationProbe (strict loading), in eval mode."""
    folder = probe_folder(spec, revision=revision)
    config = _read_config(folder)
    try:
        probe_config = ProbeConfig(
            task="segmentation",
            in_dim=config["embed_dim"],
            num_classes=config["num_classes"],
            layer_norm=config["use_ln"],
            dropout=config["dropout"],
        )
    except KeyError as error:
        raise ValueError(f"{folder / CONFIG_FILE}: a segmentation probe's config needs {error}") from None
    tensors = load_file(folder / WEIGHTS_FILE)
    return load_strict(SegmentationProbe(probe_config), tensors, source=str(folder / WEIGHTS_FILE)).eval()


def load_teacher_linear_probe(spec: str | os.PathLike, *, revision: str | None = None) -> TeacherLinearProbe:
    """An authors' linear probe on the teacher's CLS (only model.safetensors: `weight`, `bias`)."""
    folder = probe_folder(spec, revision=revision)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such file (a released linear probe holds model.safetensors)")
    tensors = load_file(weights)
    if set(tensors) != {"weight", "bias"}:
        raise ValueError(f"{weights}: a teacher linear probe holds exactly 'weight' and 'bias', got {sorted(tensors)}")
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise ValueError(
            f"{weights}: weight must be [classes, teacher_dim] and bias [classes], got {tuple(weight.shape)} and "
            f"{tuple(bias.shape)}"
        )
    return TeacherLinearProbe(weight=weight, bias=bias)


def _read_config(folder: Path) -> dict:
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file (a released segmentation probe holds config.json)")
    config = json.loads(file.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(config).__name__}")
    return config
