"""Pictures of glimpse paths: the scene with each glimpse's crop box drawn in visiting order (PNG).

Boxes are coloured by time (viridis, early = dark) and numbered from 0 at their centres, which a thin
line joins in order. matplotlib is an optional dependency (`pip install 'saccade[viz]'`), imported
inside the function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from saccade.data.scenes import IMAGENET_MEAN, IMAGENET_STD
from saccade.geometry import Viewpoint

__all__ = ["draw_glimpse_path"]

# ImageNet normalisation used for CanViT scenes (spec §2): undone before drawing.


def scene_rgb(image: Tensor | np.ndarray, *, item: int, denormalize: bool) -> np.ndarray:
    """[H, W, 3] float in [0, 1] from a tensor [3, H, W] / [B, 3, H, W] or an array H x W x 3."""
    if isinstance(image, Tensor):
        if image.ndim == 4:
            image = image[item]
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image tensor must be [3, H, W] or [B, 3, H, W], got {tuple(image.shape)}")
        rgb = image.detach().float().cpu().permute(1, 2, 0).numpy()  # [H, W, 3]
        is_uint8 = False
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be H x W x 3, got {image.shape}")
        is_uint8 = image.dtype == np.uint8
        rgb = image.astype(np.float32)
    else:
        raise TypeError(f"image must be a torch.Tensor or a numpy array, got {type(image).__name__}")
    if is_uint8:
        rgb = rgb / 255.0  # uint8 pixels are drawn as they are
    elif denormalize:
        rgb = rgb * np.asarray(IMAGENET_STD, dtype=np.float32) + np.asarray(IMAGENET_MEAN, dtype=np.float32)
    return np.clip(rgb, 0.0, 1.0)


def _path_yxs(viewpoints: Sequence[Viewpoint] | Tensor, *, item: int) -> np.ndarray:
    """[T, 3] (y, x, scale) of one batch item from a list of Viewpoint, a [T, 3] or a [T, B, 3] tensor."""
    if isinstance(viewpoints, Tensor):
        if viewpoints.ndim == 3:
            viewpoints = viewpoints[:, item]
        if viewpoints.ndim != 2 or viewpoints.shape[1] != 3:
            raise ValueError(f"viewpoints must be [T, 3] or [T, B, 3] (y, x, scale), got {tuple(viewpoints.shape)}")
        yxs = viewpoints
    elif isinstance(viewpoints, Sequence) and all(isinstance(v, Viewpoint) for v in viewpoints):
        if any(not 0 <= item < v.batch_size for v in viewpoints):
            raise ValueError(f"item {item} is outside the batch of the given viewpoints")
        yxs = torch.stack([v.to_yxs()[item] for v in viewpoints]) if viewpoints else torch.zeros(0, 3)
    else:
        raise TypeError(f"viewpoints must be a list of Viewpoint or a tensor, got {type(viewpoints).__name__}")
    if len(yxs) == 0:
        raise ValueError("viewpoints must hold at least one step")
    return yxs.detach().float().cpu().numpy()


def draw_glimpse_path(
    image: Tensor | np.ndarray,
    viewpoints: Sequence[Viewpoint] | Tensor,
    path_png: str | Path,
    *,
    item: int = 0,
    denormalize: bool = True,
    title: str | None = None,
) -> Path:
    """Draw batch item `item`'s glimpse boxes, numbered and coloured by time, over the scene; save a PNG.

    Args:
        image: the scene, a tensor [3, H, W] (or [B, 3, H, W], then `image[item]`) or an H x W x 3 array.
        viewpoints: T viewpoints, a list of Viewpoint or a [T, 3] / [T, B, 3] (y, x, scale) tensor.
        denormalize: undo the ImageNet mean / std normalisation of float images (uint8 is drawn as is).
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rgb = scene_rgb(image, item=item, denormalize=denormalize)  # [H, W, 3]
    yxs = _path_yxs(viewpoints, item=item)  # [T, 3]
    H, W = rgb.shape[:2]
    num_steps = len(yxs)
    colors = colormaps["viridis"](np.linspace(0.0, 1.0, num_steps) if num_steps > 1 else [0.0])  # [T, 4]

    fig = Figure(figsize=(6.0 * W / max(H, W) + 1.2, 6.0 * H / max(H, W)), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=(0, W, H, 0), interpolation="nearest")
    # Scene frame [-1, 1]^2 -> pixels: y maps to rows (H), x to columns (W).
    rows = (yxs[:, 0] + 1.0) * H / 2
    cols = (yxs[:, 1] + 1.0) * W / 2
    ax.plot(cols, rows, color="white", linewidth=0.8, alpha=0.7)
    for t, ((y, x, s), color) in enumerate(zip(yxs, colors, strict=True)):
        top, left = (y - s + 1.0) * H / 2, (x - s + 1.0) * W / 2
        ax.add_patch(Rectangle((left, top), s * W, s * H, fill=False, edgecolor=color, linewidth=1.6))
        # The step number marks the glimpse centre (quadtree centres never coincide across levels).
        ax.text(
            cols[t], rows[t], str(t), color="white", fontsize=7, va="center", ha="center", zorder=3,
            bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0, "alpha": 0.85},
        )  # fmt: skip
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_axis_off()
    time_scale = ScalarMappable(norm=Normalize(0, max(num_steps - 1, 1)), cmap="viridis")
    fig.colorbar(time_scale, ax=ax, fraction=0.046, pad=0.04, label="glimpse t")
    if title:
        ax.set_title(title)
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
