"""One CanViT glimpse step as plain tensors in and out: the unit that torch.export and ONNX deploy.

The recurrent loop stays outside the exported graph: the caller feeds each step's new canvas and
recurrent CLS back in as the next step's inputs. The glimpse size and the canvas grid are fixed when
the step is built; the batch is the one dynamic dimension.

Inputs, in order (B dynamic, g = glimpse_px, M = R + G*G canvas tokens):
  glimpse [B, 3, g, g] float32 (ImageNet-normalised), centers [B, 2] (y, x), scales [B],
  canvas [B, M, D_cv] float32, recurrent_cls [B, 1, D_bb].
Outputs: new_canvas [B, M, D_cv], new_recurrent_cls [B, 1, D_bb], and, with readouts, the standardized
teacher predictions teacher_patches [B, G*G, D_t] and teacher_cls [B, D_t].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.geometry import Viewpoint
from saccade.model.canvit import CanViT, RecurrentState
from saccade.model.pretraining import CanViTForPretraining

__all__ = ["INPUT_NAMES", "READOUT_OUTPUT_NAMES", "STATE_OUTPUT_NAMES", "GlimpseStep", "check_step_inputs"]

INPUT_NAMES = ("glimpse", "centers", "scales", "canvas", "recurrent_cls")
STATE_OUTPUT_NAMES = ("new_canvas", "new_recurrent_cls")
READOUT_OUTPUT_NAMES = ("teacher_patches", "teacher_cls")


def check_step_inputs(shapes: Mapping[str, Sequence[int | str]], inputs: Sequence[Tensor]) -> None:
    """Raise ValueError / TypeError naming the first input whose shape ("B": the shared batch) or dtype (float32)
    is not the expected one."""
    if len(inputs) != len(shapes):
        raise ValueError(f"expected {len(shapes)} inputs {list(shapes)}, got {len(inputs)}")
    batch_size = None
    for (name, shape), tensor in zip(shapes.items(), inputs, strict=True):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype != torch.float32:
            raise TypeError(f"{name} must be float32, got {tensor.dtype}")
        if tensor.ndim != len(shape) or list(tensor.shape[1:]) != list(shape[1:]):
            wanted = "[" + ", ".join(map(str, shape)) + "]"
            raise ValueError(f"{name} must be {wanted} for this exported step, got {tuple(tensor.shape)}")
        if batch_size is None:
            batch_size = tensor.shape[0]
        elif tensor.shape[0] != batch_size:
            raise ValueError(f"{name} has batch {tensor.shape[0]}, glimpse has batch {batch_size}")


class GlimpseStep(nn.Module):
    """CanViT (or CanViTForPretraining) one glimpse step: five tensors in, two (or four, with readouts) out."""

    def __init__(
        self,
        model: CanViT | CanViTForPretraining,
        *,
        glimpse_px: int,
        canvas_grid: int,
        readouts: bool | None = None,
    ) -> None:
        """`readouts` (default: whether the model has them) adds the teacher patch and CLS predictions."""
        super().__init__()
        if not isinstance(model, CanViT | CanViTForPretraining):
            raise TypeError(f"model must be a CanViT or CanViTForPretraining, got {type(model).__name__}")
        has_readouts = isinstance(model, CanViTForPretraining)
        if readouts is None:
            readouts = has_readouts
        if readouts and not has_readouts:
            raise ValueError("readouts=True needs a CanViTForPretraining; this CanViT has no teacher readouts")
        patch = model.config.backbone.patch_size
        if not isinstance(glimpse_px, int) or glimpse_px < patch or glimpse_px % patch:
            raise ValueError(f"glimpse_px must be a positive multiple of the {patch} px patch, got {glimpse_px!r}")
        positive_int("canvas_grid", canvas_grid)
        self.model = model
        self.glimpse_px = glimpse_px
        self.canvas_grid = canvas_grid
        self.readouts = readouts

    @property
    def canvit(self) -> CanViT:
        return getattr(self.model, "canvit", self.model)

    @property
    def input_names(self) -> tuple[str, ...]:
        return INPUT_NAMES

    @property
    def output_names(self) -> tuple[str, ...]:
        return STATE_OUTPUT_NAMES + (READOUT_OUTPUT_NAMES if self.readouts else ())

    def input_shapes(self) -> dict[str, tuple[int | str, ...]]:
        """Expected shape of every input, "B" for the dynamic batch."""
        config = self.canvit.config
        g, M = self.glimpse_px, config.num_canvas_registers + self.canvas_grid**2
        return {
            "glimpse": ("B", 3, g, g),
            "centers": ("B", 2),
            "scales": ("B",),
            "canvas": ("B", M, config.canvas_dim),
            "recurrent_cls": ("B", 1, config.backbone.embed_dim),
        }

    def forward(
        self, glimpse: Tensor, centers: Tensor, scales: Tensor, canvas: Tensor, recurrent_cls: Tensor
    ) -> tuple[Tensor, ...]:
        """One glimpse: (new_canvas, new_recurrent_cls[, teacher_patches, teacher_cls]); shapes in the module doc."""
        self.check_inputs(glimpse, centers, scales, canvas, recurrent_cls)
        state = RecurrentState(
            canvas=canvas, recurrent_cls=recurrent_cls, num_canvas_registers=self.canvit.config.num_canvas_registers
        )
        viewpoint = Viewpoint(centers=centers, scales=scales)  # eager: raises on bad values
        if torch.compiler.is_exporting():
            viewpoint.assert_valid_at_run_time()  # the exported program's own check (ONNX drops it: OnnxStep checks)
        output = self.canvit(glimpse, state, viewpoint)
        new = output.state
        if not self.readouts:
            return new.canvas, new.recurrent_cls
        model: CanViTForPretraining = self.model  # type: ignore[assignment]
        return new.canvas, new.recurrent_cls, model.predict_teacher_patches(new), model.predict_teacher_cls(new)

    def check_inputs(self, *inputs: Tensor) -> None:
        """Raise ValueError / TypeError naming the first input whose shape or dtype is not the expected one."""
        check_step_inputs(self.input_shapes(), inputs)

    @torch.no_grad()
    def initial_state(self, batch_size: int = 1) -> tuple[Tensor, Tensor]:
        """Fresh (canvas [B, M, D_cv], recurrent_cls [B, 1, D_bb]), contiguous, as the first step's inputs."""
        state = self.canvit.init_state(batch_size=batch_size, canvas_grid=self.canvas_grid)
        return state.canvas.contiguous(), state.recurrent_cls.float().contiguous()

    @torch.no_grad()
    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        """Random valid inputs: normal glimpse pixels, viewpoints inside the scene, a perturbed fresh state."""
        device = next(self.parameters()).device
        generator = generator or torch.Generator().manual_seed(0)
        B, g = batch_size, self.glimpse_px
        scales = 0.25 + 0.75 * torch.rand(B, generator=generator)  # [B] in [0.25, 1]
        centers = (2 * torch.rand(B, 2, generator=generator) - 1) * (1 - scales[:, None])  # [B, 2] inside the scene
        glimpse = torch.randn(B, 3, g, g, generator=generator)  # [B, 3, g, g]
        canvas, recurrent_cls = self.initial_state(B)
        canvas = canvas + 0.1 * torch.randn(canvas.shape, generator=generator).to(device)  # [B, M, D_cv]
        recurrent_cls = recurrent_cls + 0.1 * torch.randn(recurrent_cls.shape, generator=generator).to(device)
        return glimpse.to(device), centers.to(device), scales.to(device), canvas, recurrent_cls
