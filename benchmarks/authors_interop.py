"""Side-environment check (not a test, not in CI): published folders go both ways between saccade and the authors'
canvit-pytorch 0.2.1 with the same outputs.

usage: PYTHONPATH=/path/to/canvit-pytorch python benchmarks/authors_interop.py [--json FILE] [--keep DIR]

The authors' package (`pip install --no-deps --target DIR canvit-pytorch==0.2.1 canvit-core==0.2.1`) is never a
dependency of saccade; only this script imports it.

1. saccade -> theirs: a tiny saccade CanViTForPretraining (the `canvit-tiny` preset) with randomised weights and
   fitted standardizers is written by `saccade.publish.publish` and loaded by their
   `CanViTForPretraining.from_pretrained(folder)`.
2. theirs -> saccade: their model, randomised the same way, fitted with their `fit`, written by their
   `save_pretrained`, is loaded by `saccade.load_pretrained`.

Their backbone registry knows only vits16 / vitb16, so the preset's backbone `vit-tiny` (64 wide, 2 heads, 4 blocks,
the shape of the reference fixture, whose authors registered it as `fixture_public_vit`) is registered in it for
this process only. Each pair runs the same glimpses (sampled once, the same tensors to both models) at 5 viewpoints,
batch 2; the script prints the largest abs difference of the canvas, recurrent CLS, glimpse patches, VPE token and
the teacher readouts (standardized and destandardized) over all steps, and of the two packages' glimpse sampling,
then exits 1 if any model output differs by more than 1e-5.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import saccade
from saccade.publish import TrainingRecord, publish

TOLERANCE = 1e-5
BACKBONE = "vit-tiny"
TEACHER_DIM, GRID, GLIMPSE_PX, SCENE_PX = 48, 4, 32, 64
# (row, col, scale) per step for items 0 and 1: the reference fixture's viewpoints.
VIEWPOINTS = (
    ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0)),
    ((-0.3, 0.4, 0.5), (0.55, -0.2, 0.35)),
    ((0.7, -0.8, 0.1), (-0.85, 0.9, 0.05)),
    ((0.25, 0.25, 0.75), (0.6, 0.6, 0.6)),
    ((-0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
)


def register_backbone() -> None:
    """Their registry gets saccade's `vit-tiny` spec (a module-level dict: this process only)."""
    from canvit_core.backbone import BACKBONES, ViTSpec

    BACKBONES[BACKBONE] = ViTSpec(**dataclasses.asdict(saccade.model.config.BACKBONES[BACKBONE]))


@torch.no_grad()
def randomise(model: nn.Module, generator: torch.Generator) -> None:
    """No parameter at a trivial value (LayerNorm 1 / 0, LayerScale ~0, bias 0): every tensor moves the outputs."""
    for name, parameter in model.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator)
        if name.endswith(".gamma"):
            parameter.copy_(0.1 + 0.05 * noise)
        elif ("norm" in name or "ln_" in name) and name.endswith("weight"):
            parameter.mul_(1 + 0.3 * noise)
        elif name.endswith("bias"):
            parameter.copy_(0.1 * noise)
        elif name.startswith(("canvit.init_", "canvit.backbone_registers", "init_", "backbone_registers")):
            parameter.copy_(0.5 * noise)


def viewpoints(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centers [2, 2] as (y, x), scales [2]) of one step."""
    rows = VIEWPOINTS[step]
    return torch.tensor([[y, x] for y, x, _ in rows]), torch.tensor([s for _, _, s in rows])


def saccade_run(model: saccade.CanViTForPretraining, glimpses: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Every output of saccade's model per step, on the given glimpses."""
    outputs: dict[str, list[torch.Tensor]] = {}
    state = model.canvit.init_state(batch_size=2, canvas_grid=GRID)
    for step, glimpse in enumerate(glimpses):
        centers, scales = viewpoints(step)
        out = model.canvit(glimpse, state, saccade.Viewpoint(centers=centers, scales=scales))
        state = out.state
        patches, cls = model.predict_teacher_patches(state), model.predict_teacher_cls(state)
        _record(outputs, model, out, patches, cls)
    return outputs


def authors_run(model, glimpses: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Every output of their model per step, on the given glimpses."""
    from canvit_pytorch import Viewpoint

    outputs: dict[str, list[torch.Tensor]] = {}
    state = model.init_state(batch_size=2, canvas_grid_size=GRID)
    for step, glimpse in enumerate(glimpses):
        centers, scales = viewpoints(step)
        out = model(glimpse=glimpse, state=state, viewpoint=Viewpoint(centers=centers, scales=scales))
        state = out.state
        patches, cls = model.predict_teacher_patches(state.canvas), model.predict_teacher_cls(state.recurrent_cls)
        _record(outputs, model, out, patches, cls)
    return outputs


def _record(outputs: dict[str, list[torch.Tensor]], model, out, patches: torch.Tensor, cls: torch.Tensor) -> None:
    """Append one step's outputs (either implementation: the same attribute names) to `outputs`."""
    record = {
        "canvas": out.state.canvas,
        "recurrent_cls": out.state.recurrent_cls,
        "glimpse_patches": out.glimpse_patches,
        "vpe": out.vpe,
        "teacher_patches": patches,
        "teacher_cls": cls,
        "teacher_patches_destandardized": model.teacher_patch_standardizer.destandardize(patches),
        "teacher_cls_destandardized": model.teacher_cls_standardizer.destandardize(cls),
    }
    for key, value in record.items():
        outputs.setdefault(key, []).append(value)


def compare(ours: dict[str, list[torch.Tensor]], theirs: dict[str, list[torch.Tensor]], *, identical) -> dict:
    """Whether the two models hold identical tensors; per output, the max abs difference over all steps and the
    largest abs value (the scale the difference is measured against)."""
    differences = {
        key: max(float((a - b).abs().max()) for a, b in zip(ours[key], theirs[key], strict=True)) for key in ours
    }
    magnitudes = {key: max(float(a.abs().max()) for a in ours[key]) for key in ours}
    return {"tensors_identical": tensors_identical(*identical), "max_abs": differences, "largest_abs": magnitudes}


def glimpses_and_sampling(generator: torch.Generator) -> tuple[list[torch.Tensor], float]:
    """Glimpses of 2 smooth random scenes sampled by saccade, and the max abs difference from theirs."""
    from canvit_pytorch import Viewpoint, sample_at_viewpoint

    coarse = torch.randn(2, 3, SCENE_PX // 8, SCENE_PX // 8, generator=generator)
    scenes = nn.functional.interpolate(coarse, size=SCENE_PX, mode="bilinear", align_corners=False)
    scenes = scenes + 0.1 * torch.randn(scenes.shape, generator=generator)
    glimpses, difference = [], 0.0
    for step in range(len(VIEWPOINTS)):
        centers, scales = viewpoints(step)
        ours = saccade.sample_glimpse(scenes, saccade.Viewpoint(centers=centers, scales=scales), GLIMPSE_PX)
        theirs = sample_at_viewpoint(
            spatial=scenes, viewpoint=Viewpoint(centers=centers, scales=scales), glimpse_size_px=GLIMPSE_PX
        )
        difference = max(difference, float((ours - theirs).abs().max()))
        glimpses.append(ours)
    return glimpses, difference


def tensors_identical(ours: nn.Module, theirs: nn.Module) -> bool:
    a, b = ours.state_dict(), theirs.state_dict()
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def saccade_to_authors(folder: Path, glimpses: list[torch.Tensor]) -> dict:
    import canvit_pytorch

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = saccade.CanViTForPretraining(
        saccade.preset("canvit-tiny"), teacher_dim=TEACHER_DIM, teacher_patch_grid=GRID
    )
    randomise(model, generator)
    model.teacher_patch_standardizer.fit(2 + 3 * torch.randn(16, GRID * GRID, TEACHER_DIM, generator=generator))
    model.teacher_cls_standardizer.fit(-1 + 2 * torch.randn(16, TEACHER_DIM, generator=generator))
    model.eval()
    record = TrainingRecord(data="none (random weights)", teacher="none", steps=0, seed=0)
    publish(model, folder, record=record)
    loaded = canvit_pytorch.CanViTForPretraining.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        return compare(saccade_run(model, glimpses), authors_run(loaded, glimpses), identical=(model, loaded))


def authors_to_saccade(folder: Path, glimpses: list[torch.Tensor]) -> dict:
    import canvit_pytorch

    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    config = canvit_pytorch.CanViTConfig(
        backbone_name=BACKBONE,
        canvas_num_heads=2,
        canvas_head_dim=48,
        num_canvas_registers=4,
        num_backbone_registers=2,
        rw_stride=1,
    )
    model = canvit_pytorch.CanViTForPretraining(canvit_config=config, teacher_dim=TEACHER_DIM, teacher_patch_grid=GRID)
    randomise(model, generator)
    model.teacher_patch_standardizer.fit(2 + 3 * torch.randn(16, GRID * GRID, TEACHER_DIM, generator=generator))
    model.teacher_cls_standardizer.fit(-1 + 2 * torch.randn(16, 1, TEACHER_DIM, generator=generator))
    model.eval().save_pretrained(folder)
    loaded = saccade.load_pretrained(
        folder, backbone_specs={BACKBONE: dataclasses.asdict(model.canvit.config.backbone_spec)}
    )
    with torch.no_grad():
        return compare(saccade_run(loaded, glimpses), authors_run(model, glimpses), identical=(loaded, model))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--keep", help="write the two folders here instead of a temporary folder")
    args = parser.parse_args()
    try:
        import canvit_pytorch
    except ImportError:
        print(
            "canvit_pytorch is not importable: set PYTHONPATH to a folder holding canvit-pytorch 0.2.1", file=sys.stderr
        )
        return 2
    torch.set_num_threads(1)
    register_backbone()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        glimpses, sampling = glimpses_and_sampling(torch.Generator().manual_seed(2))
        report = {
            "canvit_pytorch": getattr(canvit_pytorch, "__version__", None) or _distribution_version("canvit-pytorch"),
            "torch": torch.__version__,
            "glimpse_sampling_max_abs": sampling,
            "saccade_to_authors": saccade_to_authors(root / "published-by-saccade", glimpses),
            "authors_to_saccade": authors_to_saccade(root / "saved-by-authors", glimpses),
        }
    worst = max(max(report[way]["max_abs"].values()) for way in ("saccade_to_authors", "authors_to_saccade"))
    report["worst_max_abs"], report["tolerance"] = worst, TOLERANCE
    report["ok"] = worst <= TOLERANCE and all(
        report[w]["tensors_identical"] for w in ("saccade_to_authors", "authors_to_saccade")
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["ok"] else 1


def _distribution_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
