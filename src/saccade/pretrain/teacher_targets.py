"""The teacher in the loop (paper §5): targets computed from raw scenes on the training device, never stored.

`TeacherTargets` runs a frozen teacher (eval mode, no_grad, float32) on a batch of scenes and returns the raw
patch and CLS targets, before standardization, exactly as `saccade export-features` computes them: the scenes
are the export's (same decode and resize, `saccade.data.images`), the teacher sees them at
`patch_size * canvas_grid` px, and the targets cast to float16 equal an exported shard's bit for bit on CPU.
`TeacherInLoopDataset` pairs a scene dataset with it: a `DistillationDataset` whose `collate` runs the teacher
once per batch (item access runs it on one scene, for checks).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from saccade.data.scenes import Scene
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import DistillationBatch
from saccade.teachers import Teacher, load_teacher

__all__ = ["TeacherInLoopDataset", "TeacherTargets", "load_configured_teacher"]


class TeacherTargets:
    """A frozen teacher as a target function: scenes [B, 3, S, S] -> DistillationBatch with raw float32 targets."""

    def __init__(self, teacher: Teacher, *, canvas_grid: int) -> None:
        if isinstance(teacher, nn.Module):
            # eval mode; gradients are off through no_grad in __call__, not by freezing the parameters: on CPU,
            # freezing can move a convolution to another kernel whose float32 sums differ from the export's
            teacher.eval()
        self.teacher = teacher
        self.canvas_grid = canvas_grid
        self.device = torch.device("cpu")

    @property
    def input_px(self) -> int:
        """Scene side the teacher sees, so that its patch grid is the canvas grid."""
        return self.teacher.patch_size * self.canvas_grid

    def to(self, device: torch.device | str) -> TeacherTargets:
        """Run the teacher on `device` (the training device) from now on."""
        self.device = torch.device(device)
        if isinstance(self.teacher, nn.Module):
            self.teacher.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, scenes: Tensor) -> DistillationBatch:
        """Scenes [B, 3, S, S] (S = input_px, ImageNet-normalised) -> batch on the device: scenes, patches
        [B, G*G, D_t], cls [B, D_t], all float32."""
        B, _, height, width = scenes.shape
        if (height, width) != (self.input_px, self.input_px):
            raise ValueError(
                f"teacher {self.teacher.name} computes targets from {self.input_px} px scenes (patch size "
                f"{self.teacher.patch_size} x canvas grid {self.canvas_grid}), got {height} x {width} px"
            )
        scenes = scenes.to(self.device, dtype=torch.float32)
        output = self.teacher(scenes)  # cls [B, D_t], patches [B, G, G, D_t]
        G, D = self.canvas_grid, self.teacher.dim
        if tuple(output.patches.shape) != (B, G, G, D) or tuple(output.cls.shape) != (B, D):
            raise ValueError(
                f"teacher {self.teacher.name} returned patches {tuple(output.patches.shape)} and cls "
                f"{tuple(output.cls.shape)}, expected [{B}, {G}, {G}, {D}] and [{B}, {D}]"
            )
        patches = output.patches.float().flatten(1, 2)  # [B, G*G, D_t]
        return DistillationBatch(scenes=scenes, patches=patches, cls=output.cls.float())


class TeacherInLoopDataset:
    """Scenes and a `TeacherTargets`: a distillation dataset whose targets are computed a batch at a time."""

    def __init__(self, scenes: Dataset, targets: TeacherTargets) -> None:
        self.scenes, self.targets = scenes, targets
        if len(self) == 0:
            raise ValueError("no scenes to compute teacher targets from")
        side = _image(scenes[0]).shape[-1]
        if side != targets.input_px:
            raise ValueError(
                f"scenes are {side} px, but teacher {targets.teacher.name} needs {targets.input_px} px "
                f"(patch size {targets.teacher.patch_size} x canvas grid {targets.canvas_grid})"
            )

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """(scene [3, S, S], patches [G*G, D_t], cls [D_t]) on the CPU; one teacher call per item."""
        batch = self.collate([index])
        return batch.scenes[0].cpu(), batch.patches[0].cpu(), batch.cls[0].cpu()

    def collate(self, indices: list[int]) -> DistillationBatch:
        """The scenes at `indices` and their targets, on the teacher's device (one teacher call)."""
        scenes = torch.stack([_image(self.scenes[i]) for i in indices])  # [B, 3, S, S]
        return self.targets(scenes)

    def to(self, device: torch.device | str) -> TeacherInLoopDataset:
        self.targets.to(device)
        return self


def _image(item: Scene | Tensor) -> Tensor:
    return item.image if isinstance(item, Scene) else item  # [3, S, S]


def load_configured_teacher(config: PretrainConfig) -> Teacher:
    """The teacher of `config.teacher` (checked by PretrainConfig), loaded as `saccade export-features` loads it."""
    assert config.teacher is not None
    if config.teacher == "hf":
        return load_teacher("hf", config.teacher_path)
    return load_teacher(config.teacher)
