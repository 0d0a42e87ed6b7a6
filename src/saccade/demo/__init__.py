"""The main job: `saccade demo` runs everything end to end and writes a report folder."""

from saccade.demo.config import DEMO_PRESETS, DemoConfig
from saccade.demo.run import run_demo

__all__ = ["DEMO_PRESETS", "DemoConfig", "run_demo"]
