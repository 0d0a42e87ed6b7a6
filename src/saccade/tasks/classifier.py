"""Image classification with a released model in one line: a readout (LayerNorm + Linear) on the recurrent CLS.

Two ways to get the readout:
- fused (`from_pretrained(model, probe=...)`): a pretraining checkpoint's CLS readout predicts the teacher's
  standardized CLS, so a linear probe trained on the teacher's CLS (the authors' DINOv3 ImageNet-1k probe) applies
  after destandardization. The three affine maps fuse into one Linear, computed in float64:
  W = W_probe diag(std) W_proj, b = W_probe (std * b_proj + mean) + b_probe, std = sqrt(var + eps), exactly the
  CLS standardizer's inverse; the readout's LayerNorm is kept.
- fine-tuned (`from_pretrained(model)` on a classifier folder): config.json `canvit_config`, `n_classes`; weights
  `canvit.*`, `readout.norm.*`, `readout.proj.*` (the authors' `CanViTForImageClassification`).

    classifier = Classifier.from_pretrained("canvit/canvitb16-add-vpe-pretrain-g128px-s512px-in21k-dv3b16-2026-02-02",
                                            probe="canvit/dinov3-vitb16-lvd1689m-in1k-512x512-linear-clf-probe")
    classifier.top_k("photo.jpg")  # [[(class index, probability), ...]] after the last glimpse
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from saccade.episode_config import EpisodeConfig
from saccade.model.canvit import CanViT, RecurrentState
from saccade.model.checkpoint import load_state_dict_strict
from saccade.model.compat import parse_authors_config
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import LinearReadout
from saccade.probes.released import TeacherLinearProbe
from saccade.tasks.episode import task_episode
from saccade.tasks.rollout import decode_episode
from saccade.tasks.scenes import ImageLike, to_scene

__all__ = ["Classifier", "fuse_teacher_probe"]


class Classifier(nn.Module):
    """A CanViT, a LayerNorm + Linear readout of its recurrent CLS, and the episode they run."""

    def __init__(self, canvit: CanViT, readout: LinearReadout, episode: EpisodeConfig) -> None:
        super().__init__()
        if readout.norm.normalized_shape[0] != canvit.config.backbone.embed_dim:
            raise ValueError(
                f"the readout reads {readout.norm.normalized_shape[0]}-wide features, the recurrent CLS is "
                f"{canvit.config.backbone.embed_dim} wide"
            )
        self.canvit, self.readout, self.episode = canvit, readout, episode

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        probe: str | None = None,
        revision: str | None = None,
        probe_revision: str | None = None,
        **episode: int,
    ) -> Classifier:
        """A fine-tuned classifier folder, or a pretraining checkpoint fused with a teacher-CLS `probe` (see the
        module). Local folders, Hub ids or mirror names; glimpse_px, scene_px, canvas_grid, num_glimpses override
        the episode (saccade.tasks.episode)."""
        if probe is not None:
            return cls._fused(model, probe, revision=revision, probe_revision=probe_revision, episode=episode)
        return cls._fine_tuned(model, revision=revision, episode=episode)

    @classmethod
    def _fused(cls, model: str, probe: str, *, revision, probe_revision, episode: dict) -> Classifier:
        from saccade.loading import load
        from saccade.probes.released import load_teacher_linear_probe

        loaded = load(model, revision=revision)
        if not isinstance(loaded.model, CanViTForPretraining):
            raise ValueError(
                f"{model}: a teacher probe fuses with a pretraining checkpoint's CLS readout, and this folder holds "
                f"a {type(loaded.model).__name__}"
            )
        readout = fuse_teacher_probe(loaded.model, load_teacher_linear_probe(probe, revision=probe_revision))
        teacher_grid = loaded.model.teacher_patch_grid
        geometry = task_episode(model, recorded=loaded.episode, teacher_patch_grid=teacher_grid, **episode)
        return cls(loaded.model.canvit, readout, geometry).eval()

    @classmethod
    def _fine_tuned(cls, model: str, *, revision, episode: dict) -> Classifier:
        from saccade.hub import resolve_folder

        folder = resolve_folder(model, revision=revision)
        config = json.loads((folder / "config.json").read_text())
        if "n_classes" not in config:
            raise ValueError(
                f"{folder / 'config.json'} is not a fine-tuned classifier (no n_classes); for a pretraining "
                "checkpoint, give the teacher probe to fuse with probe=..."
            )
        authors = parse_authors_config(config["canvit_config"])  # the bare 0.2 CanViTConfig fields
        if authors is None:
            raise ValueError(f"{folder / 'config.json'}: canvit_config is not the authors' 0.2 CanViTConfig")
        canvit = CanViT(authors.canvit_config)
        readout = LinearReadout(canvit.config.backbone.embed_dim, config["n_classes"])
        holder = nn.Module()
        holder.canvit, holder.readout = canvit, readout
        weights = folder / "model.safetensors"
        load_state_dict_strict(holder, load_file(weights), source=str(weights))
        return cls(canvit, readout, task_episode(model, **episode)).eval()

    @property
    def num_classes(self) -> int:
        return self.readout.proj.out_features

    def logits(self, state: RecurrentState) -> Tensor:
        """Recurrent CLS -> [B, classes] float32 logits (the readout turns autocast off)."""
        return self.readout(state.recurrent_cls[:, 0])

    @torch.no_grad()
    def iter_predict(
        self, image: ImageLike, *, policy: str = "C2F", generator: torch.Generator | None = None
    ) -> Iterator[Tensor]:
        """[B, classes] logits after each glimpse; the image is resized (short side) and centre-cropped."""
        scenes = to_scene(image, self.episode.scene_px, fit="crop").to(next(self.parameters()).device)
        yield from decode_episode(self.canvit, scenes, self.logits, self.episode, policy=policy, generator=generator)

    def predict(self, image: ImageLike, **kwargs) -> Tensor:
        """[T, B, classes] logits after every glimpse."""
        return torch.stack(list(self.iter_predict(image, **kwargs)))

    def top_k(self, image: ImageLike, k: int = 5, **kwargs) -> list[list[tuple[int, float]]]:
        """Per image, the k most probable (class index, probability) after the last glimpse."""
        *_, last = self.iter_predict(image, **kwargs)
        probabilities, classes = last.softmax(dim=-1).topk(min(k, self.num_classes), dim=-1)  # [B, k]
        return [list(zip(row.tolist(), p.tolist(), strict=True)) for row, p in zip(classes, probabilities, strict=True)]


@torch.no_grad()
def fuse_teacher_probe(model: CanViTForPretraining, probe: TeacherLinearProbe) -> LinearReadout:
    """The CLS readout of `model` fused with a probe on the teacher's raw CLS (see the module), float64 inside."""
    teacher_dim = model.teacher_dim
    if probe.weight.shape[1] != teacher_dim:
        raise ValueError(
            f"the probe reads {probe.weight.shape[1]}-wide teacher features, the model predicts {teacher_dim}"
        )
    proj, standardizer = model.teacher_cls_readout.proj, model.teacher_cls_standardizer
    std = torch.sqrt(standardizer.var[0].double() + standardizer.eps)  # [D_t]
    mean = standardizer.mean[0].double()  # [D_t]
    w_probe, b_probe = probe.weight.double(), probe.bias.double()  # [C, D_t], [C]
    weight = w_probe @ (std[:, None] * proj.weight.double())  # [C, D_bb]
    bias = w_probe @ (std * proj.bias.double() + mean) + b_probe  # [C]
    readout = LinearReadout(proj.in_features, probe.num_classes)
    readout.norm.load_state_dict(model.teacher_cls_readout.norm.state_dict())
    readout.proj.weight.copy_(weight.to(proj.weight.dtype))
    readout.proj.bias.copy_(bias.to(proj.bias.dtype))
    return readout
