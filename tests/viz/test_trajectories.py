"""Glimpse-path pictures: a PNG is written, shows the scene and the boxes, and bad inputs are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from saccade.policies import make_policy

pytest.importorskip("matplotlib")

from saccade.viz.trajectories import draw_glimpse_path


def test_draws_a_c2f_path_to_png(tmp_path: Path) -> None:
    from matplotlib.image import imread

    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))  # normalized scenes
    policy = make_policy("C2F", batch_size=2, generator=torch.Generator().manual_seed(0))
    viewpoints = [policy.step(t) for t in range(21)]
    path = draw_glimpse_path(image, viewpoints, tmp_path / "sub" / "c2f.png", item=1, title="C2F")
    assert path.exists() and path.stat().st_size > 5_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)  # [h, w, 4]
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and float(pixels[..., :3].std()) > 0.05


def test_accepts_an_hwc_uint8_array_and_a_yxs_tensor(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    path = draw_glimpse_path(image, torch.tensor([[0.0, 0.0, 1.0], [0.5, -0.5, 0.25]]), tmp_path / "a.png")
    assert path.stat().st_size > 1_000


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image tensor must be \[3, H, W\] or \[B, 3, H, W\], got \(1, 8, 8\)"):
        draw_glimpse_path(torch.zeros(1, 8, 8), torch.tensor([[0.0, 0.0, 1.0]]), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"viewpoints must be \[T, 3\] or \[T, B, 3\] \(y, x, scale\), got \(2,\)"):
        draw_glimpse_path(torch.zeros(3, 8, 8), torch.zeros(2), tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"image must be a torch.Tensor or a numpy array, got list"):
        draw_glimpse_path([[0.0]], torch.tensor([[0.0, 0.0, 1.0]]), tmp_path / "x.png")  # type: ignore[arg-type]
