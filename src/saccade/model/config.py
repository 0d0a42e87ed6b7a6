"""Model configuration: backbone specs, the CanViT config and the published presets (paper §4, Table 1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from saccade._checks import non_negative_int, positive_int
from saccade.model.schedule import rw_schedule

__all__ = ["BACKBONES", "PRESETS", "CanViTConfig", "ViTSpec", "preset"]

CanvasProjections = Literal["asymmetric", "qkvo"]


@dataclass(frozen=True, kw_only=True)
class ViTSpec:
    """A DINOv3-style ViT backbone (pre-LN, LayerScale, no key bias, no final LayerNorm)."""

    embed_dim: int
    """Token width D_bb."""
    num_heads: int
    """Self-attention heads; embed_dim / num_heads is the head dim (a multiple of 4 for 2D RoPE)."""
    num_blocks: int
    """Transformer blocks."""
    patch_size: int = 16
    """Patch side in pixels."""
    ffn_ratio: float = 4.0
    """MLP hidden width / embed_dim."""
    rope_base: float = 100.0
    """Largest RoPE period (in scene units) is about rope_base."""
    layerscale_init: float = 1e-5
    """Initial LayerScale gamma."""

    def __post_init__(self) -> None:
        for name in ("embed_dim", "num_heads", "num_blocks", "patch_size"):
            positive_int(f"ViTSpec.{name}", getattr(self, name))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"ViTSpec.embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.head_dim % 4:
            raise ValueError(f"ViTSpec head dim ({self.head_dim}) must be a multiple of 4 for 2D RoPE")
        if self.ffn_ratio <= 0 or self.rope_base <= 0:
            raise ValueError(f"ViTSpec.ffn_ratio and rope_base must be > 0, got {self.ffn_ratio}, {self.rope_base}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.ffn_ratio)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ViTSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown backbone spec fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**spec)


BACKBONES: dict[str, ViTSpec] = {
    "vits16": ViTSpec(embed_dim=384, num_heads=6, num_blocks=12),
    "vitb16": ViTSpec(embed_dim=768, num_heads=12, num_blocks=12),
    "vitl16": ViTSpec(embed_dim=1024, num_heads=16, num_blocks=24),
    "vit-tiny": ViTSpec(embed_dim=64, num_heads=2, num_blocks=4),
    # ViT-Ti width, 6 blocks: the CPU-scale student of the offline anchor experiment.
    "vitt16d6": ViTSpec(embed_dim=192, num_heads=3, num_blocks=6),
}


@dataclass(frozen=True, kw_only=True)
class CanViTConfig:
    """A CanViT: a backbone plus the canvas, its registers and the Read/Write schedule."""

    backbone_name: str = "vitb16"
    """Name of the backbone: a key of BACKBONES, or any other name for the custom spec given as `backbone`."""
    backbone: ViTSpec = field(default=None)  # type: ignore[assignment]
    """The backbone spec; looked up from `backbone_name` when omitted. A BACKBONES name only goes with its own spec."""
    canvas_num_heads: int = 8
    """Heads of Canvas Attention; they split the canvas width."""
    canvas_head_dim: int = 128
    """Canvas head dim (multiple of 4); canvas width D_cv = canvas_num_heads * canvas_head_dim."""
    num_canvas_registers: int = 16
    """Persistent canvas register tokens (unrotated)."""
    num_backbone_registers: int = 5
    """Ephemeral backbone registers, re-inserted every glimpse."""
    rw_stride: int = 2
    """A Read or Write after every rw_stride blocks, alternating, ending with a Write."""
    enable_reads: bool = True
    """Ablation switch: without Reads the glimpse stream never sees the canvas."""
    enable_vpe: bool = True
    """Prepend the Viewpoint Encoding token to the glimpse stream."""
    canvas_projections: CanvasProjections = "asymmetric"
    """'asymmetric' (paper): no canvas-side projections; 'qkvo': all four maps learned (ablation)."""
    canvas_write_sink: bool = False
    """Not in the paper: each Write also attends to a null token of value zero, with a learned logit per head that
    grows with the glimpse's zoom, so that a zoomed glimpse can leave the cells far from it as they were
    (saccade.model.canvas). Adds 2 parameters per head and Write; the authors' checkpoints have none. With the tiny
    model's recipe it cut the held-out C2F rise from +0.046 to +0.012; the main job's model (canvit-s16-cpu) has it,
    with Writes that attend by position alone, so that a 1/16 tile writes only its own cells (docs/main-job.md)."""

    cls_recurrence: bool = True
    """Not in the paper when False: every glimpse's stream starts from the CLS init instead of the previous glimpse's
    last-block CLS, so a backbone kept as the teacher trained it (`PretrainConfig.freeze_backbone`) sees each glimpse
    as the teacher would; the state's CLS is then the last glimpse's own, and only the canvas carries the episode.
    Fed back into block 0 of a frozen teacher backbone, the recurrent CLS changed the next glimpse's patch tokens
    (cosine 0.51 to a fresh glimpse's, benchmarks/write_retention.py)."""
    write_patches_only: bool = False
    """Not in the paper when True: the Writes attend to the glimpse's patch tokens only, not to its prefix tokens
    (VPE, CLS, backbone registers). Those have no scene position, so with the local canvas start they look as if
    they sat at the scene centre and every glimpse writes them into the central cells."""

    def __post_init__(self) -> None:
        if self.backbone is None:
            if self.backbone_name not in BACKBONES:
                raise ValueError(
                    f"unknown backbone_name {self.backbone_name!r}; known: {sorted(BACKBONES)}. "
                    "Pass backbone=ViTSpec(...) (or backbone_specs= to load_pretrained) for other backbones."
                )
            object.__setattr__(self, "backbone", BACKBONES[self.backbone_name])
        if not isinstance(self.backbone, ViTSpec):
            raise TypeError(f"CanViTConfig.backbone must be a ViTSpec, got {type(self.backbone).__name__}")
        self._check_backbone_name()
        for name in ("canvas_num_heads", "canvas_head_dim", "rw_stride"):
            positive_int(f"CanViTConfig.{name}", getattr(self, name))
        for name in ("num_canvas_registers", "num_backbone_registers"):
            non_negative_int(f"CanViTConfig.{name}", getattr(self, name))
        if self.canvas_head_dim % 4:
            raise ValueError(
                f"CanViTConfig.canvas_head_dim ({self.canvas_head_dim}) must be a multiple of 4 for 2D RoPE"
            )
        if self.canvas_projections not in ("asymmetric", "qkvo"):
            raise ValueError(
                f"CanViTConfig.canvas_projections must be 'asymmetric' or 'qkvo', got {self.canvas_projections!r}"
            )

    def _check_backbone_name(self) -> None:
        """A published name and a different spec contradict each other (e.g. dataclasses.replace changing one)."""
        named = BACKBONES.get(self.backbone_name)
        if named is None or named == self.backbone:
            return
        same = [name for name, spec in BACKBONES.items() if spec == self.backbone]
        fix = f"backbone_name={same[0]!r}" if same else "a backbone_name that is not a key of BACKBONES"
        raise ValueError(
            f"CanViTConfig.backbone_name {self.backbone_name!r} names {named} but backbone is {self.backbone}: "
            f"for {self.backbone_name!r} pass backbone=None (dataclasses.replace(config, backbone_name=..., "
            f"backbone=None)); for this spec pass {fix}"
        )

    @property
    def canvas_dim(self) -> int:
        """Canvas width D_cv."""
        return self.canvas_num_heads * self.canvas_head_dim

    @property
    def read_after_blocks(self) -> tuple[int, ...]:
        return rw_schedule(self.backbone.num_blocks, self.rw_stride, self.enable_reads)[0]

    @property
    def write_after_blocks(self) -> tuple[int, ...]:
        return rw_schedule(self.backbone.num_blocks, self.rw_stride, self.enable_reads)[1]

    @property
    def num_glimpse_prefix_tokens(self) -> int:
        """Tokens before the patches in the glimpse stream: [vpe?, cls, registers]."""
        return int(self.enable_vpe) + 1 + self.num_backbone_registers

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict that `from_dict` turns back into an equal config (backbone spec included)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanViTConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CanViTConfig fields {unknown}; expected a subset of {sorted(known)}")
        if isinstance(data.get("backbone"), dict):
            data["backbone"] = ViTSpec.from_dict(data["backbone"])
        return cls(**data)


PresetName = Literal["canvit-s16", "canvit-b16", "canvit-l16", "canvit-t16d6", "canvit-s16-cpu", "canvit-tiny"]

PRESETS: dict[str, CanViTConfig] = {
    # The flagship of the paper: 95,157,248 parameters.
    "canvit-b16": CanViTConfig(backbone_name="vitb16"),
    # Ablation (j): ViT-S backbone with the flagship canvas.
    "canvit-s16": CanViTConfig(backbone_name="vits16"),
    # Defined by the authors' registry, never trained.
    "canvit-l16": CanViTConfig(backbone_name="vitl16"),
    # CPU-scale model of the offline anchor (3.2M parameters): 192-d, 6 blocks, canvas 4 x 64.
    "canvit-t16d6": CanViTConfig(
        backbone_name="vitt16d6",
        canvas_num_heads=4,
        canvas_head_dim=64,
        num_canvas_registers=8,
        num_backbone_registers=4,
        rw_stride=2,
    ),
    # The main job's model (not the paper's): a ViT-S backbone to keep frozen at the teacher's weights, fed no CLS of
    # the previous glimpse and no Reads, and Writes of its patch tokens with a sink, a canvas of 4 x 64.
    "canvit-s16-cpu": CanViTConfig(
        backbone_name="vits16",
        canvas_num_heads=4,
        canvas_head_dim=64,
        num_canvas_registers=8,
        num_backbone_registers=0,
        rw_stride=2,
        enable_reads=False,
        enable_vpe=False,
        canvas_write_sink=True,
        cls_recurrence=False,
        write_patches_only=True,
    ),
    # For tests and CPU smoke runs: the shape of the reference fixture.
    "canvit-tiny": CanViTConfig(
        backbone_name="vit-tiny",
        canvas_num_heads=2,
        canvas_head_dim=48,
        num_canvas_registers=4,
        num_backbone_registers=2,
        rw_stride=1,
    ),
}


def preset(name: str) -> CanViTConfig:
    """The config of a named preset (see PRESETS)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
