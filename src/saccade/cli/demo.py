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


def demo_defaults(argv: list[str]) -> dict[str, Any]:
    """The preset's settings: quick with --quick, else full."""
    return config_to_dict(DEMO_PRESETS["quick" if "--quick" in argv else "full"])


def run_demo(command: DemoCommand) -> int:
    from saccade.demo import run_demo as run

    output_folder(command.settings.output_dir, flag="--output-dir")
    run(command.settings)
    return 0
