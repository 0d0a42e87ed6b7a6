"""Probes on frozen features (paper App. D.3-D.4): segmentation and classification heads, their training, files.

`heads` defines the probes and their safetensors files, `features` the frozen feature sources (a CanViT over a
rollout, or a passive teacher), `train` the paper's probe-training recipe.
"""

from saccade.probes.features import CanViTFeatures, FeatureSource, TeacherFeatureSource
from saccade.probes.heads import (
    ClassificationProbe,
    ProbeConfig,
    SegmentationProbe,
    build_probe,
    load_probe,
    read_probe_info,
    save_probe,
)
from saccade.probes.train import ProbeTrainConfig, ProbeTrainResult, train_probe

__all__ = [
    "CanViTFeatures",
    "ClassificationProbe",
    "FeatureSource",
    "ProbeConfig",
    "ProbeTrainConfig",
    "ProbeTrainResult",
    "SegmentationProbe",
    "TeacherFeatureSource",
    "build_probe",
    "load_probe",
    "read_probe_info",
    "save_probe",
    "train_probe",
]
