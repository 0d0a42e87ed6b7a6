"""The main job: `saccade demo` runs everything end to end and writes a report folder."""

from saccade.demo.config import DEMO_PRESETS, DemoConfig
from saccade.demo.run import make_start_file, run_demo

__all__ = ["DEMO_PRESETS", "DemoConfig", "make_start_file", "run_demo"]
