"""`saccade demo`: the main job, end to end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import tyro

from saccade.cli._checks import output_folder
from saccade.config_files import config_to_dict
from saccade.demo.config import DEMO_PRESETS, DemoConfig


@dataclass(frozen=True, kw_only=True)
class DemoCommand:
    """End to end on the bundled offline data: unlabeled scenes (--data) and their teacher features, pretraining of
    a CanViT on the teacher's frozen ViT-S, probes on the bundled Fashion-MNIST benchmark, every policy per glimpse,
    the paper's three claims judged on held-out scenes, then report.html and results.json in --output-dir.
    Finished stages are skipped on a rerun. Every setting of the stages is a flag (--pretrain.steps,
    --evaluate.probe.steps, ...)."""

    BATCH_FLAG: ClassVar[str] = "--pretrain.batch-size"

    settings: Annotated[DemoConfig, tyro.conf.arg(name="")]
    quick: bool = False
    """Start from the tiny settings (under 5 minutes on 2 cores, what CI runs) instead of the full job."""
    make_start: bool = False
    """Make the full job's start instead (`make demo-start`, about 30 minutes on 2 cores): from the recipe of the
    bundled start (the backbone frozen), the scenes and pretraining stages only, then the model without its backbone
    in --output-dir/start.safetensors (saccade.pretrain.start_file)."""


def demo_defaults(argv: list[str]) -> dict[str, Any]:
    """The preset's settings: quick with --quick, the bundled start's recipe with --make-start, else full."""
    if "--quick" in argv and "--make-start" in argv:
        raise ValueError("--quick and --make-start pick different presets: give one")
    name = "quick" if "--quick" in argv else "start" if "--make-start" in argv else "full"
    return config_to_dict(DEMO_PRESETS[name])


def run_demo(command: DemoCommand) -> int:
    from saccade.demo import make_start_file, run_demo

    output_folder(command.settings.output_dir, flag="--output-dir")
    (make_start_file if command.make_start else run_demo)(command.settings)
    return 0
