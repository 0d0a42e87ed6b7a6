"""Analytic FLOPs and parameter counts of CanViT and of its passive ViT baseline (paper §4 Eq., App. D.2).

Convention of the authors' counter, which this module reproduces exactly (every row of
tests/data/reference/flops.json, see tests/test_flops.py):

- 1 multiply-accumulate = 2 FLOPs, batch 1, one glimpse. Only matrix products and convolutions count:
  a Linear on N tokens is 2·N·D_in·D_out (bias free), an attention is 4·N_q·N_k·D (QKᵀ and AV over all
  heads, D = heads·head_dim), the patch embedding is a linear map of g² patches of 3·P² pixels.
- LayerNorm, softmax, RoPE, GELU, LayerScale, residual adds, biases and glimpse sampling count 0.
- Glimpse stream: N = [vpe?, cls, registers] + g² tokens with g = glimpse_px / P. Canvas: M = registers + G².
- Backbone block: qkv 2·N·D·3D, proj 2·N·D², MLP 2·2·N·D·H (H = ffn_ratio·D), self-attention 4·N²·D.
- VPE: the fixed RFF matrix [D/2, 3] applied to z = (y/s, x/s, log s), 2·3·D/2.
- Read (glimpse queries canvas): q 2·N·D·D_cv + o 2·N·D_cv·D + attention 4·N·M·D_cv.
  Write (canvas queries glimpse): k, v 2·2·N·D·D_cv + attention 4·M·N·D_cv.
  'qkvo' adds the two canvas-side D_cv x D_cv maps to each: 2·2·M·D_cv².
- Segmentation probe: a 1x1 conv on the G x G canvas, 2·G²·D_cv·C (its LayerNorm / BatchNorm count 0).
- Passive DINOv3 ViT: 1 CLS + 4 registers + (px / P)² patches through all blocks plus the patch embedding;
  no RoPE, norms or head.

Every row of flops.json matches exactly; nothing is left unmatched. One note on published text only: the
paper's passive-comparison rows (docs/canvit-spec.md §4.2) print 47.2 GFLOPs for DINOv3 ViT-B/16 at 256 px,
where the official counter (and this one) gives 47.149; every other entry of those rows rounds from these counts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from saccade._checks import non_negative_int, positive_int
from saccade.model.config import BACKBONES, CanViTConfig, ViTSpec

__all__ = [
    "DINOV3_NUM_PREFIX_TOKENS",
    "TEACHER_SPECS",
    "FlopBreakdown",
    "TeacherSpecName",
    "glimpse_flops",
    "parameter_count",
    "seg_probe_flops",
    "state_dict_numel",
    "teacher_flops",
    "torch_glimpse_flops",
    "vit_flops",
]

DINOV3_NUM_PREFIX_TOKENS = 5
"""DINOv3 ViTs carry 1 CLS + 4 register ("storage") tokens before the patches."""

TeacherSpecName = Literal["dinov3-vits16", "dinov3-vitb16", "dinov3-vitl16"]

TEACHER_SPECS: dict[TeacherSpecName, ViTSpec] = {
    "dinov3-vits16": BACKBONES["vits16"],
    "dinov3-vitb16": BACKBONES["vitb16"],
    # Not in flops.json; same architecture family (4 registers, MLP ratio 4), so the same formula.
    "dinov3-vitl16": BACKBONES["vitl16"],
}


@dataclass(frozen=True, kw_only=True)
class FlopBreakdown:
    """FLOPs of one glimpse step of CanViT (batch 1), split by component."""

    num_glimpse_tokens: int
    """N: glimpse-stream tokens, prefix + g²."""
    num_canvas_tokens: int
    """M: canvas tokens, registers + G²."""
    patch_embed: int
    """Patch embedding of the glimpse."""
    vpe: int
    """Viewpoint Encoding RFF projection (0 without VPE)."""
    blocks: int
    """All backbone blocks (self-attention and MLP) on the N glimpse tokens."""
    read_flops: int
    """One Read (Canvas Attention, glimpse queries canvas)."""
    write_flops: int
    """One Write (Canvas Attention, canvas queries glimpse)."""
    num_reads: int
    """Reads per glimpse."""
    num_writes: int
    """Writes per glimpse."""

    @property
    def reads(self) -> int:
        return self.num_reads * self.read_flops

    @property
    def writes(self) -> int:
        return self.num_writes * self.write_flops

    @property
    def total(self) -> int:
        return self.patch_embed + self.vpe + self.blocks + self.reads + self.writes

    def to_dict(self) -> dict[str, int]:
        """Fields plus the derived reads, writes and total, JSON-ready."""
        return {**dataclasses.asdict(self), "reads": self.reads, "writes": self.writes, "total": self.total}


def _grid_side(name: str, size_px: int, patch_size: int) -> int:
    """Patches per side of a square image of size_px pixels."""
    positive_int(name, size_px)
    if size_px % patch_size:
        raise ValueError(f"{name} must be a positive multiple of the patch size {patch_size}, got {size_px}")
    return size_px // patch_size


def _linear(num_tokens: int, dim_in: int, dim_out: int) -> int:
    return 2 * num_tokens * dim_in * dim_out


def _attention(num_queries: int, num_keys: int, dim: int) -> int:
    """QKᵀ and AV over all heads (dim = heads · head_dim)."""
    return 4 * num_queries * num_keys * dim


def _patch_embed(spec: ViTSpec, num_patches: int) -> int:
    return _linear(num_patches, 3 * spec.patch_size**2, spec.embed_dim)


def _block(spec: ViTSpec, num_tokens: int) -> int:
    """One pre-LN ViT block on num_tokens tokens."""
    dim, hidden = spec.embed_dim, spec.mlp_hidden_dim
    qkv_proj = _linear(num_tokens, dim, 3 * dim) + _linear(num_tokens, dim, dim)
    mlp = _linear(num_tokens, dim, hidden) + _linear(num_tokens, hidden, dim)
    return qkv_proj + mlp + _attention(num_tokens, num_tokens, dim)


def _canvas_side_maps(config: CanViTConfig, num_canvas_tokens: int) -> int:
    """The two canvas-side D_cv x D_cv maps of a 'qkvo' Read or Write (0 when asymmetric)."""
    if config.canvas_projections != "qkvo":
        return 0
    return 2 * _linear(num_canvas_tokens, config.canvas_dim, config.canvas_dim)


def _read(config: CanViTConfig, num_glimpse_tokens: int, num_canvas_tokens: int) -> int:
    dim, canvas_dim = config.backbone.embed_dim, config.canvas_dim
    maps = _linear(num_glimpse_tokens, dim, canvas_dim) + _linear(num_glimpse_tokens, canvas_dim, dim)  # q, o
    attention = _attention(num_glimpse_tokens, num_canvas_tokens, canvas_dim)
    return maps + attention + _canvas_side_maps(config, num_canvas_tokens)


def _write(config: CanViTConfig, num_glimpse_tokens: int, num_canvas_tokens: int) -> int:
    dim, canvas_dim = config.backbone.embed_dim, config.canvas_dim
    if config.write_patches_only:
        num_glimpse_tokens -= config.num_glimpse_prefix_tokens
    maps = 2 * _linear(num_glimpse_tokens, dim, canvas_dim)  # k, v
    num_keys = num_glimpse_tokens + int(config.canvas_write_sink)  # the sink is one more (null) key
    attention = _attention(num_canvas_tokens, num_keys, canvas_dim)
    return maps + attention + _canvas_side_maps(config, num_canvas_tokens)


def glimpse_flops(config: CanViTConfig, *, glimpse_px: int, canvas_grid: int) -> FlopBreakdown:
    """FLOPs of one CanViT glimpse step (batch 1) for a glimpse_px² glimpse and a canvas_grid² canvas."""
    spec = config.backbone
    glimpse_grid = _grid_side("glimpse_px", glimpse_px, spec.patch_size)
    positive_int("canvas_grid", canvas_grid)
    num_glimpse_tokens = config.num_glimpse_prefix_tokens + glimpse_grid**2  # N
    num_canvas_tokens = config.num_canvas_registers + canvas_grid**2  # M
    return FlopBreakdown(
        num_glimpse_tokens=num_glimpse_tokens,
        num_canvas_tokens=num_canvas_tokens,
        patch_embed=_patch_embed(spec, glimpse_grid**2),
        vpe=_linear(1, 3, spec.embed_dim // 2) if config.enable_vpe else 0,
        blocks=spec.num_blocks * _block(spec, num_glimpse_tokens),
        read_flops=_read(config, num_glimpse_tokens, num_canvas_tokens),
        write_flops=_write(config, num_glimpse_tokens, num_canvas_tokens),
        num_reads=len(config.read_after_blocks),
        num_writes=len(config.write_after_blocks),
    )


def seg_probe_flops(canvas_dim: int, canvas_grid: int, num_classes: int = 150) -> int:
    """FLOPs of a linear segmentation probe (1x1 conv canvas_dim -> num_classes) on a canvas_grid² map."""
    positive_int("canvas_dim", canvas_dim)
    positive_int("canvas_grid", canvas_grid)
    positive_int("num_classes", num_classes)
    return _linear(canvas_grid**2, canvas_dim, num_classes)


def vit_flops(spec: ViTSpec, input_px: int, *, num_prefix_tokens: int = DINOV3_NUM_PREFIX_TOKENS) -> int:
    """FLOPs of one forward of a passive ViT (patch embedding + all blocks) on an input_px² image."""
    grid = _grid_side("input_px", input_px, spec.patch_size)
    non_negative_int("num_prefix_tokens", num_prefix_tokens)
    return _patch_embed(spec, grid**2) + spec.num_blocks * _block(spec, num_prefix_tokens + grid**2)


def teacher_flops(name: str, input_px: int) -> int:
    """FLOPs of the named DINOv3 teacher (a key of TEACHER_SPECS) on an input_px² image."""
    if name not in TEACHER_SPECS:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHER_SPECS)}")
    return vit_flops(TEACHER_SPECS[name], input_px)


def _layernorm_params(dim: int) -> int:
    return 2 * dim


def _linear_params(dim_in: int, dim_out: int) -> int:
    return dim_in * dim_out + dim_out


def _backbone_params(spec: ViTSpec, num_registers: int) -> int:
    dim, hidden = spec.embed_dim, spec.mlp_hidden_dim
    block = (
        2 * _layernorm_params(dim)
        + _linear_params(dim, 3 * dim)  # fused qkv; its key bias is masked at use but still a parameter
        + _linear_params(dim, dim)
        + _linear_params(dim, hidden)
        + _linear_params(hidden, dim)
        + 2 * dim  # two LayerScale gammas
    )
    patch_embed = _linear_params(3 * spec.patch_size**2, dim)
    return patch_embed + spec.num_blocks * block + num_registers * dim


def _canvas_attention_params(config: CanViTConfig) -> tuple[int, int]:
    """(parameters of one Read, parameters of one Write)."""
    dim, canvas_dim = config.backbone.embed_dim, config.canvas_dim
    norms = _layernorm_params(dim) + _layernorm_params(canvas_dim)  # LN_q and LN_kv, one per side
    read = norms + _linear_params(dim, canvas_dim) + _linear_params(canvas_dim, dim)  # q, o
    write = norms + 2 * _linear_params(dim, canvas_dim)  # k, v
    write += 2 * config.canvas_num_heads * int(config.canvas_write_sink)  # sink logit and zoom slope per head
    if config.canvas_projections == "qkvo":
        canvas_maps = 2 * _linear_params(canvas_dim, canvas_dim)
        read, write = read + canvas_maps, write + canvas_maps
    return read, write


def parameter_count(config: CanViTConfig, *, teacher_dim: int | None = None) -> int:
    """Learnable parameters of CanViT; with teacher_dim, plus the two pretraining readouts."""
    dim, canvas_dim = config.backbone.embed_dim, config.canvas_dim
    count = _backbone_params(config.backbone, config.num_backbone_registers)
    count += dim + (config.num_canvas_registers + 1) * canvas_dim  # recurrent CLS, canvas register/patch inits
    if config.enable_vpe:
        count += _layernorm_params(dim)  # the RFF matrix is a fixed buffer
    read, write = _canvas_attention_params(config)
    count += len(config.read_after_blocks) * read + len(config.write_after_blocks) * write
    if teacher_dim is not None:
        positive_int("teacher_dim", teacher_dim)
        count += _layernorm_params(canvas_dim) + _linear_params(canvas_dim, teacher_dim)  # patch readout
        count += _layernorm_params(dim) + _linear_params(dim, teacher_dim)  # CLS readout
    return count


def state_dict_numel(
    config: CanViTConfig, *, teacher_dim: int | None = None, teacher_patch_grid: int | None = None
) -> int:
    """Elements of the official 0.2 state dict: parameters, VPE matrix and (with teacher_dim) standardizers."""
    count = parameter_count(config, teacher_dim=teacher_dim)
    if config.enable_vpe:
        count += 3 * (config.backbone.embed_dim // 2)  # RFF frequencies [D/2, 3]
    if teacher_dim is not None:
        if teacher_patch_grid is None:
            raise ValueError("teacher_patch_grid is required with teacher_dim (the patch standardizer's grid)")
        positive_int("teacher_patch_grid", teacher_patch_grid)
        # mean and var [N, teacher_dim] for the G² patches and for the CLS, plus one `_initialized` flag each.
        count += 2 * (teacher_patch_grid**2 + 1) * teacher_dim + 2
    return count


def torch_glimpse_flops(config: CanViTConfig, *, glimpse_px: int, canvas_grid: int) -> int:
    """FLOPs torch's FlopCounterMode counts for one glimpse step of a randomly initialised CanViT (batch 1).

    FlopCounterMode counts mm/addmm/bmm/convolution and the fused SDPA kernels with the same 2-per-MAC
    convention, so on saccade's model it agrees with `glimpse_flops(...).total` (tests/test_flops.py):
    - Linear layers, the patch conv, the VPE matmul `z @ frequenciesᵀ` and every attention are counted;
      LayerNorm, softmax, RoPE, GELU and residual adds are not, as in the analytic convention.
    - torch 2.13 has no formula for the CPU SDPA kernel (`_scaled_dot_product_flash_attention_for_cpu`)
      and would count attention as 0 on CPU; we register the standard SDPA formula (4·N_q·N_k·D) for it.
      Nor for oneDNN's linear (`mkldnn._linear_pointwise`, saccade.model.linear's no-grad CPU path): 2·N·D_in·D_out.
    """
    import math

    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    from saccade.geometry import Viewpoint
    from saccade.model.canvit import CanViT

    def cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    def onednn_linear_flops(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * math.prod(input_shape[:-1]) * weight_shape[0] * weight_shape[1]

    _grid_side("glimpse_px", glimpse_px, config.backbone.patch_size)
    positive_int("canvas_grid", canvas_grid)
    model = CanViT(config).eval()
    state = model.init_state(batch_size=1, canvas_grid=canvas_grid)
    glimpse = torch.zeros(1, 3, glimpse_px, glimpse_px)  # [B, 3, S, S]
    viewpoint = Viewpoint.full_scene(1)
    custom = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa_flops,
        torch.ops.mkldnn._linear_pointwise: onednn_linear_flops,
    }
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        model(glimpse, state, viewpoint)
    return int(counter.get_total_flops())
