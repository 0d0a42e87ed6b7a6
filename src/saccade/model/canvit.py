"""CanViT: one glimpse step of the Canvas Vision Transformer (paper §4, Fig. 2).

Per glimpse: patchify -> glimpse stream [vpe?, recurrent cls, backbone registers, patches] -> for
each backbone block: self-attention block, then a Read from the canvas or a Write to it when the
schedule says so -> new recurrent CLS and canvas. Only the canvas and the recurrent CLS persist
between glimpses; registers and the VPE token are rebuilt every step. The canvas stays float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.geometry import Viewpoint, glimpse_patch_positions, grid_coords
from saccade.model.backbone import ViTBackbone
from saccade.model.canvas import canvas_read, canvas_write
from saccade.model.config import CanViTConfig
from saccade.model.rope import RopeTable, rope_table
from saccade.model.vpe import ViewpointEncoding

__all__ = ["CanViT", "GlimpseOutput", "RecurrentState"]


@dataclass(frozen=True)
class RecurrentState:
    """What persists between glimpses."""

    canvas: Tensor  # [B, R + G*G, D_cv] float32: R canvas registers, then G*G patches row-major
    recurrent_cls: Tensor  # [B, 1, D_bb]
    num_canvas_registers: int

    @property
    def batch_size(self) -> int:
        return self.canvas.shape[0]

    @property
    def canvas_grid(self) -> int:
        """Side G of the canvas patch grid."""
        return math.isqrt(self.canvas.shape[1] - self.num_canvas_registers)

    @property
    def canvas_patches(self) -> Tensor:
        """[B, G*G, D_cv] canvas patch tokens, row-major (registers dropped)."""
        return self._split_canvas()[1]

    @property
    def canvas_registers(self) -> Tensor:
        """[B, R, D_cv]."""
        return self._split_canvas()[0]

    def _split_canvas(self) -> tuple[Tensor, Tensor]:
        # split, not slicing: under autograd a slice's backward zero-fills a whole canvas-sized gradient
        R = self.num_canvas_registers
        return self.canvas.split([R, self.canvas.shape[1] - R], dim=1)  # [B, R, D_cv], [B, G*G, D_cv]

    def canvas_patch_grid(self) -> Tensor:
        """[B, G, G, D_cv] canvas patches as a spatial grid."""
        B, _, D = self.canvas.shape
        G = self.canvas_grid
        return self.canvas_patches.reshape(B, G, G, D)

    def detach(self) -> RecurrentState:
        """The same state cut from the autograd graph (truncated BPTT)."""
        return RecurrentState(
            canvas=self.canvas.detach(),
            recurrent_cls=self.recurrent_cls.detach(),
            num_canvas_registers=self.num_canvas_registers,
        )


@dataclass(frozen=True)
class GlimpseOutput:
    """Result of one glimpse step."""

    state: RecurrentState
    glimpse_patches: Tensor  # [B, g*g, D_bb] patch tokens after the last block
    vpe: Tensor | None  # [B, D_bb] VPE token after the last block, None without VPE


class CanViT(nn.Module):
    """The Canvas Vision Transformer: call it once per glimpse with the state of the previous one."""

    def __init__(self, config: CanViTConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.backbone
        D, D_cv = spec.embed_dim, config.canvas_dim
        self.backbone = ViTBackbone(spec)
        self.backbone_registers = nn.Parameter(torch.empty(1, config.num_backbone_registers, D))
        maps = dict(backbone_dim=D, canvas_dim=D_cv, num_heads=config.canvas_num_heads)
        maps["projections"] = config.canvas_projections
        self.canvas_reads = nn.ModuleList([canvas_read(**maps) for _ in config.read_after_blocks])
        sink = config.canvas_write_sink
        self.canvas_writes = nn.ModuleList([canvas_write(**maps, sink=sink) for _ in config.write_after_blocks])
        self.init_canvas_patch = nn.Parameter(torch.empty(1, 1, D_cv))
        self.init_canvas_registers = nn.Parameter(torch.empty(1, config.num_canvas_registers, D_cv))
        self.init_recurrent_cls = nn.Parameter(torch.empty(1, 1, D))
        self.vpe = ViewpointEncoding(D) if config.enable_vpe else None
        self._read_index = {block: i for i, block in enumerate(config.read_after_blocks)}
        self._write_index = {block: i for i, block in enumerate(config.write_after_blocks)}
        self._canvas_rope_cache: dict[tuple[int, torch.device], RopeTable] = {}
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Canvas and CLS inits ~ N(0, 1/width); backbone registers ~ N(0, 0.02^2)."""
        nn.init.normal_(self.init_canvas_patch, std=self.config.canvas_dim**-0.5)
        nn.init.normal_(self.init_canvas_registers, std=self.config.canvas_dim**-0.5)
        nn.init.normal_(self.init_recurrent_cls, std=self.config.backbone.embed_dim**-0.5)
        nn.init.normal_(self.backbone_registers, std=0.02)

    # -- state -----------------------------------------------------------------------------------

    def init_state(self, *, batch_size: int, canvas_grid: int) -> RecurrentState:
        """Fresh state: canvas registers then G*G copies of the canvas patch init; the CLS init."""
        positive_int("batch_size", batch_size)
        positive_int("canvas_grid", canvas_grid)
        D_cv = self.config.canvas_dim
        registers = self.init_canvas_registers.float().expand(batch_size, -1, -1)  # [B, R, D_cv]
        patches = self.init_canvas_patch.float().expand(batch_size, canvas_grid**2, D_cv)  # [B, G*G, D_cv]
        return RecurrentState(
            canvas=torch.cat([registers, patches], dim=1),  # [B, R + G*G, D_cv]
            recurrent_cls=self.init_recurrent_cls.expand(batch_size, -1, -1),  # [B, 1, D_bb]
            num_canvas_registers=self.config.num_canvas_registers,
        )

    # -- one glimpse -----------------------------------------------------------------------------

    def forward(self, glimpse: Tensor, state: RecurrentState, viewpoint: Viewpoint) -> GlimpseOutput:
        """glimpse [B, 3, S, S] (ImageNet-normalised, S a multiple of the patch size) seen at `viewpoint`.

        A glimpse of any float dtype is cast to the parameters' (float32); under autocast the backbone
        runs in the autocast dtype and the canvas stays float32.
        """
        glimpse_grid, canvas_grid = self._check_inputs(glimpse, state, viewpoint)
        config, spec = self.config, self.config.backbone
        B = glimpse.shape[0]

        cls = state.recurrent_cls if config.cls_recurrence else self.init_recurrent_cls.expand(B, -1, -1)
        x = self._glimpse_stream(glimpse, cls, viewpoint)  # [B, N, D_bb]
        positions = glimpse_patch_positions(viewpoint.to(glimpse.device), glimpse_grid)  # [B, g*g, 2]
        # Tables cover the whole stream, prefix tokens with identity rows, so RoPE never concatenates.
        num_prefix = config.num_glimpse_prefix_tokens
        backbone_rope = rope_table(positions, spec.head_dim, spec.rope_base).with_prefix(num_prefix)  # [B, N, Dh]
        patch_rope = rope_table(positions, config.canvas_head_dim, spec.rope_base)  # [B, g*g, Dh_cv]
        glimpse_rope = patch_rope.with_prefix(num_prefix)  # [B, N, Dh_cv]
        canvas_rope = self._canvas_rope(canvas_grid, glimpse.device)  # [1, R + G*G, Dh_cv]
        canvas = state.canvas  # [B, R + G*G, D_cv] float32
        zoom = -torch.log2(viewpoint.scales.to(glimpse.device)) if config.canvas_write_sink else None  # [B]
        first_key = num_prefix if config.write_patches_only else 0  # the Writes' keys are x[:, first_key:]
        write_rope = patch_rope if config.write_patches_only else glimpse_rope

        for index, block in enumerate(self.backbone.blocks):
            x = block(x, backbone_rope)
            if index in self._read_index:
                read = self.canvas_reads[self._read_index[index]]
                x = x + read(x, canvas, q_rope=glimpse_rope, k_rope=canvas_rope)
            if index in self._write_index:
                write = self.canvas_writes[self._write_index[index]]
                # canvas + Write(canvas, x); after the first Write the canvas is ours to update in place.
                inplace = canvas is not state.canvas
                keys = x[:, first_key:]  # [B, N - first_key, D_bb]
                canvas = write(
                    canvas, keys, canvas_rope=canvas_rope, glimpse_rope=write_rope, zoom=zoom, inplace=inplace
                )

        cls_index = int(config.enable_vpe)
        new_state = RecurrentState(
            canvas=canvas,
            recurrent_cls=x[:, cls_index : cls_index + 1],  # [B, 1, D_bb]
            num_canvas_registers=config.num_canvas_registers,
        )
        assert new_state.canvas.shape[0] == B
        return GlimpseOutput(
            state=new_state,
            glimpse_patches=x[:, config.num_glimpse_prefix_tokens :],  # [B, g*g, D_bb]
            vpe=x[:, 0] if config.enable_vpe else None,  # [B, D_bb]
        )

    def _glimpse_stream(self, glimpse: Tensor, recurrent_cls: Tensor, viewpoint: Viewpoint) -> Tensor:
        """[vpe?, recurrent cls, backbone registers, patches] -> [B, N, D_bb]."""
        patches = self.backbone.patch_embed(glimpse)  # [B, g*g, D_bb]
        B = patches.shape[0]
        tokens = [
            recurrent_cls.to(patches.dtype),
            self.backbone_registers.expand(B, -1, -1).to(patches.dtype),
        ]
        if self.vpe is not None:
            tokens.insert(0, self.vpe(viewpoint.to(glimpse.device))[:, None].to(patches.dtype))  # [B, 1, D_bb]
        return torch.cat([*tokens, patches], dim=1)

    def _canvas_rope(self, canvas_grid: int, device: torch.device) -> RopeTable:
        """[1, R + G*G, Dh_cv] RoPE table of the canvas (identity rows for the registers, then the cell
        centres); it depends only on G, so it is computed once per grid and device.

        It is built outside inference mode even under torch.inference_mode: a cached inference tensor
        would break every later forward with autograd, torch.export and ONNX export at that grid.
        """
        key = (canvas_grid, device)
        if key not in self._canvas_rope_cache:
            with torch.inference_mode(False):
                positions = grid_coords(canvas_grid, device=device).reshape(1, -1, 2)  # [1, G*G, 2]
                table = rope_table(positions, self.config.canvas_head_dim, self.config.backbone.rope_base)
                self._canvas_rope_cache[key] = table.with_prefix(self.config.num_canvas_registers)
        return self._canvas_rope_cache[key]

    def _check_inputs(self, glimpse: Tensor, state: RecurrentState, viewpoint: Viewpoint) -> tuple[int, int]:
        """Validate at the boundary; returns (glimpse grid g, canvas grid G)."""
        patch = self.config.backbone.patch_size
        if not isinstance(glimpse, Tensor):
            raise TypeError(f"glimpse must be a torch.Tensor, got {type(glimpse).__name__}")
        if not glimpse.is_floating_point():
            raise TypeError(f"glimpse must be a floating-point tensor, got {glimpse.dtype}")
        if glimpse.ndim != 4 or glimpse.shape[1] != 3:
            raise ValueError(f"glimpse must be [B, 3, S, S], got {tuple(glimpse.shape)}")
        B, _, height, width = glimpse.shape
        if height != width or height % patch or height == 0:
            raise ValueError(
                f"glimpse must be square with a side that is a whole number of {patch} px patches, "
                f"got {height} x {width} px"
            )
        if not isinstance(state, RecurrentState):
            raise TypeError(f"state must be a RecurrentState (from init_state), got {type(state).__name__}")
        if not isinstance(viewpoint, Viewpoint):
            raise TypeError(f"viewpoint must be a saccade.Viewpoint, got {type(viewpoint).__name__}")
        if viewpoint.batch_size != B or state.batch_size != B:
            raise ValueError(
                f"batch sizes differ: glimpse {B}, viewpoint {viewpoint.batch_size}, state {state.batch_size}"
            )
        self._check_state(state)
        return height // patch, state.canvas_grid

    def _check_state(self, state: RecurrentState) -> None:
        config = self.config
        R, D_cv, D = config.num_canvas_registers, config.canvas_dim, config.backbone.embed_dim
        canvas, cls = state.canvas, state.recurrent_cls
        num_patches = canvas.shape[1] - R if canvas.ndim == 3 else -1
        if (
            canvas.ndim != 3
            or canvas.shape[2] != D_cv
            or state.num_canvas_registers != R
            or num_patches < 1
            or math.isqrt(num_patches) ** 2 != num_patches
        ):
            raise ValueError(
                f"state does not belong to this model: canvas must be [B, {R} + G*G, {D_cv}] "
                f"with {R} registers, got {tuple(canvas.shape)} with {state.num_canvas_registers}"
            )
        if cls.ndim != 3 or cls.shape[1:] != (1, D):
            raise ValueError(f"state.recurrent_cls must be [B, 1, {D}], got {tuple(cls.shape)}")
        if canvas.dtype != torch.float32:
            raise TypeError(f"state.canvas must stay float32, got {canvas.dtype}")


def as_canvit(model: nn.Module) -> CanViT:
    """The CanViT in `model`: itself, or the `.canvit` of a model holding one (CanViTForPretraining)."""
    canvit = getattr(model, "canvit", model)
    if not isinstance(canvit, CanViT):
        raise TypeError(f"model must be a CanViT or hold one as .canvit, got {type(model).__name__}")
    return canvit
