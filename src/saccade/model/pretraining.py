"""CanViT with its pretraining heads: teacher-feature readouts and standardizers (paper §5)."""

from __future__ import annotations

from torch import Tensor, nn

from saccade.model.canvit import CanViT, RecurrentState
from saccade.model.config import CanViTConfig
from saccade.model.readout import ContextReadout, LinearReadout, Standardizer

__all__ = ["CanViTForPretraining"]


class CanViTForPretraining(nn.Module):
    """A CanViT (`.canvit`) plus readouts of the teacher's patch and CLS features from the state.

    Predictions live in the standardized teacher space; the standardizers map targets into it and
    predictions back out. Standardizer statistics are tied to one teacher grid (`teacher_patch_grid`).
    `patch_readout_blocks` > 0 reads the patches through that many transformer blocks over the canvas
    (ContextReadout, not in the paper); 0 is the paper's token-wise LayerNorm + Linear.
    """

    def __init__(
        self,
        canvit_config: CanViTConfig,
        *,
        teacher_dim: int,
        teacher_patch_grid: int,
        patch_readout_blocks: int = 0,
    ) -> None:
        super().__init__()
        if teacher_dim < 1 or teacher_patch_grid < 1:
            raise ValueError(
                f"teacher_dim and teacher_patch_grid must be >= 1, got {teacher_dim}, {teacher_patch_grid}"
            )
        if patch_readout_blocks < 0:
            raise ValueError(f"patch_readout_blocks must be >= 0, got {patch_readout_blocks}")
        self.teacher_dim = teacher_dim
        self.teacher_patch_grid = teacher_patch_grid
        self.patch_readout_blocks = patch_readout_blocks
        self.canvit = CanViT(canvit_config)
        self.teacher_patch_readout: LinearReadout | ContextReadout = (
            ContextReadout(
                canvit_config.canvas_dim,
                teacher_dim,
                num_tokens=canvit_config.num_canvas_registers + teacher_patch_grid**2,
                num_blocks=patch_readout_blocks,
                num_heads=canvit_config.canvas_num_heads,
            )
            if patch_readout_blocks
            else LinearReadout(canvit_config.canvas_dim, teacher_dim)
        )
        self.teacher_cls_readout = LinearReadout(canvit_config.backbone.embed_dim, teacher_dim)
        self.teacher_patch_standardizer = Standardizer(teacher_patch_grid**2, teacher_dim)
        self.teacher_cls_standardizer = Standardizer(1, teacher_dim)

    @property
    def config(self) -> CanViTConfig:
        return self.canvit.config

    def predict_teacher_patches(self, state: RecurrentState) -> Tensor:
        """[B, G*G, D_t] standardized teacher patch features read from the canvas patches."""
        # The readout runs on the whole (contiguous) canvas, registers included: a token-wise one avoids copying the
        # strided patch view, and a ContextReadout lets the cells attend to the registers too.
        R = state.num_canvas_registers
        predictions = self.teacher_patch_readout(state.canvas)  # [B, R + G*G, D_t]
        return predictions.split([R, predictions.shape[1] - R], dim=1)[1]

    def predict_teacher_cls(self, state: RecurrentState) -> Tensor:
        """[B, D_t] standardized teacher CLS read from the recurrent CLS."""
        return self.teacher_cls_readout(state.recurrent_cls[:, 0])

    def forward(self, *args, **kwargs):
        """One glimpse step of the underlying CanViT (see CanViT.forward)."""
        return self.canvit(*args, **kwargs)

    def check_grid(self, canvas_grid: int) -> None:
        """Raise unless the standardizers match canvas grid G (destandardized patches need G = teacher grid)."""
        if canvas_grid != self.teacher_patch_grid:
            raise ValueError(
                f"canvas grid {canvas_grid} differs from the teacher grid {self.teacher_patch_grid} "
                f"the patch standardizer was fitted on ({self.teacher_patch_grid**2} positions)"
            )
