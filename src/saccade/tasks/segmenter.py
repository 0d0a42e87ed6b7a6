"""Semantic segmentation with a released model in one line: CanViT + a linear probe on its canvas.

    segmenter = Segmenter.from_pretrained("canvit/canvitb16-add-vpe-pretrain-g128px-s512px-in21k-dv3b16-2026-02-02",
                                          probe="canvit/probe-ade20k-40k-s512-c32-in21k")
    labels = segmenter.segment("photo.jpg")  # [1, H, W] class indices after the last glimpse

`iter_predict` / `predict` give the logits after every glimpse, bilinearly upsampled to the input image's H x W,
in float32 also under autocast (the authors' `CanViTForSemanticSegmentation.predict`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saccade.episode_config import EpisodeConfig
from saccade.model.canvit import CanViT, RecurrentState, as_canvit
from saccade.probes.heads import SegmentationProbe
from saccade.tasks.episode import task_episode
from saccade.tasks.rollout import decode_episode
from saccade.tasks.scenes import ImageLike, to_scene

__all__ = ["Segmenter"]


class Segmenter(nn.Module):
    """A CanViT, a segmentation probe on its canvas, and the episode they run."""

    def __init__(self, canvit: CanViT, probe: SegmentationProbe, episode: EpisodeConfig) -> None:
        super().__init__()
        if probe.config.in_dim != canvit.config.canvas_dim:
            raise ValueError(
                f"the probe reads {probe.config.in_dim}-wide features, the canvas is {canvit.config.canvas_dim} wide"
            )
        self.canvit, self.probe, self.episode = canvit, probe, episode

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        probe: str,
        revision: str | None = None,
        probe_revision: str | None = None,
        **episode: int,
    ) -> Segmenter:
        """A pretrained model and a probe: local folders, Hub ids or mirror names (saccade.hub). Keyword arguments
        glimpse_px, scene_px, canvas_grid, num_glimpses override the episode (saccade.tasks.episode)."""
        from saccade.loading import load
        from saccade.probes.released import load_released_segmentation_probe

        loaded = load(model, revision=revision)
        teacher_grid = getattr(loaded.model, "teacher_patch_grid", None)
        geometry = task_episode(model, recorded=loaded.episode, teacher_patch_grid=teacher_grid, **episode)
        head = load_released_segmentation_probe(probe, revision=probe_revision)
        return cls(as_canvit(loaded.model), head, geometry).eval()

    @property
    def num_classes(self) -> int:
        return self.probe.config.num_classes

    def logits(self, state: RecurrentState) -> Tensor:
        """Canvas -> [B, C, G, G] float32 logits (the probe turns autocast off)."""
        return self.probe(state.canvas_patch_grid())

    @torch.no_grad()
    def iter_predict(
        self, image: ImageLike, *, policy: str = "C2F", generator: torch.Generator | None = None
    ) -> Iterator[Tensor]:
        """[B, C, H, W] logits after each glimpse, at the input's H x W (a file's or PIL image's own size)."""
        size = _image_size(image)
        scenes = to_scene(image, self.episode.scene_px, fit="squeeze").to(_device(self))
        for logits in decode_episode(
            self.canvit, scenes, self.logits, self.episode, policy=policy, generator=generator, decoder=self.logits
        ):
            yield F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def predict(self, image: ImageLike, **kwargs) -> Tensor:
        """[T, B, C, H, W] logits after every glimpse (T x C full-size maps: mind the memory at 512 px)."""
        return torch.stack(list(self.iter_predict(image, **kwargs)))

    def segment(self, image: ImageLike, **kwargs) -> Tensor:
        """[B, H, W] class indices after the last glimpse."""
        *_, last = self.iter_predict(image, **kwargs)
        return last.argmax(dim=1)


def _image_size(image: ImageLike) -> tuple[int, int]:
    """(H, W) of a path, a PIL image or a tensor [..., H, W]."""
    if isinstance(image, Tensor):
        return tuple(image.shape[-2:])
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.height, image.width
    with Image.open(image) as opened:
        return opened.height, opened.width


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
