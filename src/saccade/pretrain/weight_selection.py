"""Initialise a small CanViT backbone from a larger pretrained ViT by weight selection.

Weight selection (Xu et al., "Initializing Models with Larger Ones", ICLR 2024) starts a small transformer from
sub-tensors of a larger pretrained one of the same family, instead of from random numbers. Here the larger model is
the distillation teacher (the bundled DINOv2-S/14), which a pretraining run loads anyway, so the student starts
from the teacher's own way of processing pixels and only has to learn the canvas, the glimpse geometry and the
readouts from the few training photos.

What is taken, for a student with D channels, H heads and M MLP units from a teacher with D' >= D, H' >= H, M' >= M
and the same head width:

* blocks: the first `num_blocks` teacher blocks (first-N selection, the paper's choice for ViTs);
* residual channels: D evenly spaced teacher channels, the same set in every tensor, so the residual stream, the
  LayerNorms and the LayerScales of the student are a consistent slice of the teacher's;
* attention: H evenly spaced whole heads (their q / k / v rows and output-projection columns), so each student head
  is a teacher head; the teacher's key bias is dropped, which changes nothing (it adds the same q . b_k to every
  key of a query, and softmax ignores that);
* MLP: M evenly spaced hidden units;
* patch embedding: the selected output channels, with the kernel resized bilinearly to the student's patch size and
  scaled by (p' / p)^2 so a patch stretched to the new size gives the same response;
* the recurrent CLS init: the teacher's CLS token plus its position embedding, selected channels.

Not taken: the teacher's absolute position embeddings (the student's positions come from RoPE, which now rotates
q and k of heads that were trained without it), its final LayerNorm (the CanViT backbone has none), and anything
of the canvas, the VPE, the registers or the readouts, which keep their usual initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from saccade.model.canvit import CanViT
from saccade.teachers.dinov2_bundled import DinoV2

__all__ = ["evenly_spaced", "select_from_dinov2"]


def evenly_spaced(total: int, count: int) -> Tensor:
    """`count` indices spread evenly over range(total), starting at 0 (e.g. every other one for total = 2 count)."""
    if not 1 <= count <= total:
        raise ValueError(f"cannot select {count} of {total} indices")
    return torch.arange(count) * total // count


def _head_rows(heads: Tensor, head_dim: int) -> Tensor:
    """Row indices of whole heads in a [heads * head_dim, ...] projection."""
    return (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)


def _check_sizes(canvit: CanViT, teacher: DinoV2) -> None:
    student, source = canvit.config.backbone, teacher.spec
    problems = []
    if student.embed_dim // student.num_heads != source.embed_dim // source.num_heads:
        problems.append(
            f"head width {student.embed_dim // student.num_heads} differs from the teacher's "
            f"{source.embed_dim // source.num_heads}"
        )
    for name, small, large in (
        ("embed_dim", student.embed_dim, source.embed_dim),
        ("num_heads", student.num_heads, source.num_heads),
        ("num_blocks", student.num_blocks, source.num_blocks),
        ("mlp hidden units", student.mlp_hidden_dim, source.embed_dim * source.ffn_ratio),
    ):
        if small > large:
            problems.append(f"{name} {small} exceeds the teacher's {large}")
    if problems:
        raise ValueError("cannot select the student's weights from the teacher: " + "; ".join(problems))


@torch.no_grad()
def select_from_dinov2(canvit: CanViT, teacher: DinoV2) -> None:
    """Overwrite `canvit`'s backbone (and recurrent CLS init) with weights selected from `teacher` (see module doc)."""
    _check_sizes(canvit, teacher)
    student, source = canvit.config.backbone, teacher.spec
    head_dim = student.embed_dim // student.num_heads
    channels = evenly_spaced(source.embed_dim, student.embed_dim)  # [D]
    rows = _head_rows(evenly_spaced(source.num_heads, student.num_heads), head_dim)  # [D]
    hidden = evenly_spaced(source.embed_dim * source.ffn_ratio, student.mlp_hidden_dim)  # [M]

    for mine, theirs in zip(canvit.backbone.blocks, teacher.blocks, strict=False):  # first-N blocks
        for norm in ("norm1", "norm2"):
            getattr(mine, norm).weight.copy_(getattr(theirs, norm).weight[channels])
            getattr(mine, norm).bias.copy_(getattr(theirs, norm).bias[channels])
        q, k, v = (proj.weight[rows][:, channels] for proj in theirs.qkv)  # [D, D] each
        mine.attn.qkv.weight.copy_(torch.cat([q, k, v]))
        no_key_bias = torch.zeros(len(rows))
        mine.attn.qkv.bias.copy_(torch.cat([theirs.q.bias[rows], no_key_bias, theirs.v.bias[rows]]))
        mine.attn.proj.weight.copy_(theirs.proj.weight[channels][:, rows])
        mine.attn.proj.bias.copy_(theirs.proj.bias[channels])
        mine.mlp.fc1.weight.copy_(theirs.fc1.weight[hidden][:, channels])
        mine.mlp.fc1.bias.copy_(theirs.fc1.bias[hidden])
        mine.mlp.fc2.weight.copy_(theirs.fc2.weight[channels][:, hidden])
        mine.mlp.fc2.bias.copy_(theirs.fc2.bias[channels])
        mine.ls1.gamma.copy_(theirs.ls1[channels])
        mine.ls2.gamma.copy_(theirs.ls2[channels])

    proj = canvit.backbone.patch_embed.proj
    kernel = teacher.patch.weight[channels]  # [D, 3, p', p']
    resized = F.interpolate(kernel, size=proj.kernel_size, mode="bilinear", align_corners=False)
    proj.weight.copy_(resized * (source.patch_size / student.patch_size) ** 2)
    proj.bias.copy_(teacher.patch.bias[channels])
    canvit.init_recurrent_cls.copy_((teacher.cls + teacher.pos_cls)[..., channels])
