"""saccade's task wrappers against the authors' on the same folders and viewpoints (issue 21; not run by CI).

Writes, in the authors' released layouts, a randomly initialised CanViT-S pretraining checkpoint (fitted
standardizers), an ADE20K-style canvas probe, a teacher-CLS ImageNet-style linear probe and a fine-tuned classifier,
then compares per glimpse (the same C2F viewpoints, drawn by saccade):
- saccade `Segmenter.predict` with the authors' `CanViTForSemanticSegmentation.predict` (logits at the image size);
- saccade `Classifier.from_pretrained(model, probe=...)` with `CanViTForImageClassification.from_pretrained_with_probe`;
- saccade `Classifier.from_pretrained(fine-tuned folder)` with `CanViTForImageClassification.from_pretrained`.

Needs the authors' package importable, e.g. `pip install --no-deps --ignore-requires-python --target /tmp/side
canvit-pytorch==0.2.1 canvit-core==0.2.1`, then:

    PYTHONPATH=/tmp/side python benchmarks/authors_tasks_parity.py [--out runs/authors-tasks-parity.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

import saccade
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies import make_policy
from saccade.probes.heads import ProbeConfig, SegmentationProbe
from saccade.tasks import Classifier, Segmenter, to_scene

SCENE_PX, GLIMPSE_PX, GRID, GLIMPSES, CLASSES, TEACHER_DIM = 128, 64, 8, 5, 7, 32


def write_folders(root: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    model = CanViTForPretraining(saccade.preset("canvit-s16"), teacher_dim=TEACHER_DIM, teacher_patch_grid=GRID)
    model.teacher_cls_standardizer.fit(torch.randn(64, TEACHER_DIM) * 2 + 0.5)
    model.teacher_patch_standardizer.fit(torch.randn(64, GRID * GRID, TEACHER_DIM))
    canvit_config = {k: v for k, v in model.config.to_dict().items() if k != "backbone"}  # the authors' 0.2 fields
    pretrained = root / f"canvits16-add-vpe-pretrain-g{GLIMPSE_PX}px-s{SCENE_PX}px-test-dv3b16"
    config = {"canvit_config": canvit_config, "teacher_dim": TEACHER_DIM, "teacher_patch_grid": GRID}
    _folder(pretrained, config, model.state_dict())  # the parameter names are the authors' 0.2 ones
    probe = SegmentationProbe(ProbeConfig(task="segmentation", in_dim=model.config.canvas_dim, num_classes=CLASSES))
    with torch.no_grad():
        for tensor in probe.parameters():
            tensor.normal_(std=0.1)
        probe.conv.weight.mul_(100 / model.config.canvas_dim**0.5)  # logits of order one, as a trained probe's
        probe.bn.running_mean.normal_()
        probe.bn.running_var.uniform_(0.5, 2)
    seg = root / f"probe-ade20k-40k-s{SCENE_PX}-c{GRID}-test"
    config = {"embed_dim": model.config.canvas_dim, "num_classes": CLASSES, "dropout": 0.1, "use_ln": True}
    _folder(seg, config, probe.state_dict())
    clf = root / "dinov3-test-in1k-linear-clf-probe"
    _folder(clf, None, {"weight": torch.randn(CLASSES, TEACHER_DIM), "bias": torch.randn(CLASSES)})
    tuned = root / f"canvits16-add-vpe-finetune-g{GLIMPSE_PX}px-s{SCENE_PX}px-test"
    weights = {f"canvit.{k}": v for k, v in model.canvit.state_dict().items()}
    dim = model.config.backbone.embed_dim
    weights |= {"readout.norm.weight": torch.rand(dim) + 0.5, "readout.norm.bias": torch.randn(dim) * 0.1}
    weights |= {"readout.proj.weight": torch.randn(CLASSES, dim) / dim**0.5, "readout.proj.bias": torch.randn(CLASSES)}
    _folder(tuned, {"canvit_config": canvit_config, "n_classes": CLASSES}, weights)
    return {"pretrained": pretrained, "seg": seg, "clf": clf, "tuned": tuned}


def _folder(folder: Path, config: dict | None, tensors: dict) -> None:
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))


def viewpoints(batch: int) -> list:
    """The C2F viewpoints saccade's wrappers draw with generator seed 0."""
    policy = make_policy("C2F", batch_size=batch, generator=torch.Generator().manual_seed(0), num_levels=2)
    policy.reset()  # as a rollout does before its first glimpse
    return [policy.step(t) for t in range(GLIMPSES)]


def authors_logits(model, scenes, views, step) -> list[torch.Tensor]:
    from canvit_pytorch import Viewpoint, sample_at_viewpoint

    state = model.init_state(batch_size=scenes.shape[0], canvas_grid_size=GRID)
    out = []
    with torch.no_grad():
        for view in views:
            viewpoint = Viewpoint(centers=view.centers.float(), scales=view.scales.float())
            glimpse = sample_at_viewpoint(spatial=scenes, viewpoint=viewpoint, glimpse_size_px=GLIMPSE_PX)
            logits, state = step(model, glimpse, state, viewpoint)
            out.append(logits)
    return out


def main() -> None:
    from canvit_pytorch import CanViTForImageClassification, CanViTForSemanticSegmentation

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the differences as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    image = torch.randint(0, 256, (2, 3, 96, 150), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(Path(tmp))
        views = viewpoints(2)
        episode = {"num_glimpses": GLIMPSES}
        report = {}

        ours = Segmenter.from_pretrained(str(folders["pretrained"]), probe=str(folders["seg"]), **episode)
        theirs = CanViTForSemanticSegmentation.from_pretrained_with_probe(
            pretrained_repo=str(folders["pretrained"]), probe_repo=str(folders["seg"])
        ).eval()
        mine = ours.predict(image, generator=torch.Generator().manual_seed(0))  # [T, B, C, H, W]
        scenes = to_scene(image, SCENE_PX, fit="squeeze")
        size = tuple(image.shape[-2:])
        reference = authors_logits(
            theirs, scenes, views,
            lambda m, g, s, v: m.predict(glimpse=g, state=s, viewpoint=v, target_size=size),
        )  # fmt: skip
        report["segmenter largest |logit|"] = float(mine.abs().max())
        report["segmenter per-glimpse logits"] = max(
            float((a - b).abs().max()) for a, b in zip(mine, reference, strict=True)
        )

        for name, ours, theirs in (
            (
                "fused classifier logits",
                Classifier.from_pretrained(str(folders["pretrained"]), probe=str(folders["clf"]), **episode),
                CanViTForImageClassification.from_pretrained_with_probe(
                    pretrained_repo=str(folders["pretrained"]), probe_repo=str(folders["clf"])
                ),
            ),
            (
                "fine-tuned classifier logits",
                Classifier.from_pretrained(str(folders["tuned"]), **episode),
                CanViTForImageClassification.from_pretrained(str(folders["tuned"])),
            ),
        ):
            mine = ours.predict(image, generator=torch.Generator().manual_seed(0))  # [T, B, classes]
            scenes = to_scene(image, SCENE_PX, fit="crop")
            reference = authors_logits(
                theirs.eval(), scenes, views, lambda m, g, s, v: m(glimpse=g, state=s, viewpoint=v)
            )
            report[name] = max(float((a - b).abs().max()) for a, b in zip(mine, reference, strict=True))
    for name, value in report.items():
        verdict = "" if "largest" in name else f" ({'ok' if value <= 1e-5 else 'ABOVE 1e-5'})"
        print(f"{name}: {value:.3g}{verdict}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
