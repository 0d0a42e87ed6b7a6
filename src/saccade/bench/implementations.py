"""The two implementations under test, behind one small interface: ours, and the authors' canvit-pytorch.

The authors' package is only ever imported from a folder named at call time (`--baseline` or the
SACCADE_BENCH_BASELINE variable), never installed into saccade's environment and never copied: this
module calls its public 0.2 API (CanViT, CanViTConfig, CanViTForPretraining, Viewpoint). Both models get
the same weights: ours are written by `save_pretrained`, whose key names are the authors' 0.2 layout,
and loaded strictly into theirs.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from safetensors.torch import load_file
from torch import Tensor, nn

from saccade.geometry import Viewpoint
from saccade.model.checkpoint import WEIGHTS_FILE, load_pretrained
from saccade.model.config import BACKBONES, CanViTConfig

__all__ = ["AuthorsCanViT", "Implementation", "SaccadeCanViT", "StepOutput", "import_baseline"]

BASELINE_ENV = "SACCADE_BENCH_BASELINE"
"""Environment variable naming the baseline folder, read by the CLI when --baseline is not given."""


@dataclass(frozen=True)
class StepOutput:
    """What one glimpse step returns, whichever the implementation."""

    state: Any  # the implementation's own recurrent state
    canvas: Tensor  # [B, R + G*G, D_cv]
    recurrent_cls: Tensor  # [B, 1, D_bb]
    glimpse_patches: Tensor  # [B, g*g, D_bb]


class Implementation(Protocol):
    name: str
    version: str

    def unsupported(self, config: CanViTConfig) -> str | None:
        """Why this implementation cannot build `config`, or None."""

    def load(self, folder: Path) -> nn.Module:
        """The model saved by saccade.save_pretrained in `folder` (a CanViT or a CanViTForPretraining)."""

    def init_state(self, canvit: nn.Module, batch_size: int, canvas_grid: int) -> Any: ...

    def glimpse(self, canvit: nn.Module, glimpse: Tensor, state: Any, centers: Tensor, scales: Tensor) -> StepOutput:
        """One glimpse [B, 3, S, S] at centers [B, 2] (y, x) and scales [B]."""

    def readouts(self, model: nn.Module, state: Any) -> tuple[Tensor, Tensor]:
        """Standardized teacher predictions ([B, G*G, D_t] patches, [B, D_t] CLS) of a pretraining model."""


class SaccadeCanViT:
    """This package."""

    name = "saccade"

    def __init__(self) -> None:
        self.version = importlib.metadata.version("saccade")

    def unsupported(self, config: CanViTConfig) -> str | None:
        return None

    def load(self, folder: Path) -> nn.Module:
        return load_pretrained(folder)

    def init_state(self, canvit: nn.Module, batch_size: int, canvas_grid: int) -> Any:
        return canvit.init_state(batch_size=batch_size, canvas_grid=canvas_grid)

    def glimpse(self, canvit: nn.Module, glimpse: Tensor, state: Any, centers: Tensor, scales: Tensor) -> StepOutput:
        out = canvit(glimpse, state, Viewpoint(centers=centers, scales=scales))
        return StepOutput(out.state, out.state.canvas, out.state.recurrent_cls, out.glimpse_patches)

    def readouts(self, model: nn.Module, state: Any) -> tuple[Tensor, Tensor]:
        return model.predict_teacher_patches(state), model.predict_teacher_cls(state)


class AuthorsCanViT:
    """The authors' canvit-pytorch (0.2 API), imported from `package` (see import_baseline)."""

    name = "canvit-pytorch"

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.version = _distribution_version("canvit-pytorch")

    def unsupported(self, config: CanViTConfig) -> str | None:
        backbone = importlib.import_module("canvit_core.backbone")
        if BACKBONES.get(config.backbone_name) != config.backbone:
            return f"{config.backbone_name!r} is not one of saccade's named backbones"
        if config.backbone_name not in backbone.BACKBONES:  # e.g. vitt16d6: registered the way the anchor did
            backbone.BACKBONES[config.backbone_name] = backbone.ViTSpec(**dataclasses.asdict(config.backbone))
        return None

    def load(self, folder: Path) -> nn.Module:
        saved = json.loads((folder / "config.json").read_text())
        config = self._config(CanViTConfig.from_dict(saved["canvit_config"]))
        if saved["architecture"] == "CanViTForPretraining":
            model = self.package.CanViTForPretraining(
                canvit_config=config, teacher_dim=saved["teacher_dim"], teacher_patch_grid=saved["teacher_patch_grid"]
            )
        else:
            model = self.package.CanViT(config)
        model.load_state_dict(load_file(folder / WEIGHTS_FILE), strict=True)
        return model.eval()

    def init_state(self, canvit: nn.Module, batch_size: int, canvas_grid: int) -> Any:
        return canvit.init_state(batch_size=batch_size, canvas_grid_size=canvas_grid)

    def glimpse(self, canvit: nn.Module, glimpse: Tensor, state: Any, centers: Tensor, scales: Tensor) -> StepOutput:
        viewpoint = self.package.Viewpoint(centers=centers, scales=scales)
        out = canvit(glimpse=glimpse, state=state, viewpoint=viewpoint)
        return StepOutput(out.state, out.state.canvas, out.state.recurrent_cls, out.glimpse_patches)

    def readouts(self, model: nn.Module, state: Any) -> tuple[Tensor, Tensor]:
        return model.predict_teacher_patches(state.canvas), model.predict_teacher_cls(state.recurrent_cls)

    def _config(self, config: CanViTConfig) -> Any:
        fields = (
            "backbone_name",
            "canvas_num_heads",
            "canvas_head_dim",
            "num_canvas_registers",
            "num_backbone_registers",
            "rw_stride",
            "enable_reads",
            "enable_vpe",
            "canvas_projections",
        )
        return self.package.CanViTConfig(**{name: getattr(config, name) for name in fields})


def import_baseline(path: str | Path) -> ModuleType:
    """Import canvit_pytorch (and its canvit_core) from `path`, e.g. a `pip install --target` folder."""
    folder = Path(path).expanduser().resolve()
    if not (folder / "canvit_pytorch" / "__init__.py").is_file():
        raise ValueError(
            f"no canvit_pytorch package in {folder}; install one there with `pip install --no-deps "
            f"--ignore-requires-python --target {folder} canvit-pytorch==0.2.1 canvit-core==0.2.1`"
        )
    loaded = sys.modules.get("canvit_pytorch")
    if loaded is not None and not Path(loaded.__file__).resolve().is_relative_to(folder):
        raise ValueError(f"canvit_pytorch is already imported from {loaded.__file__}, not from {folder}")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("canvit_pytorch")


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
