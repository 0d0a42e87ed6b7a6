"""Data for distillation: scenes (image folders, the bundled offline photos), teacher-feature shards, statistics.

Modules: `scenes` (preprocessing, image-folder datasets), `bundled` (the offline photo set and its split),
`export` (teacher -> resumable shards, torchrun-aware), `shards` (format, memory-mapped reader, pairs),
`stats` (standardizer statistics from shards).
"""

from __future__ import annotations

from saccade.data.bundled import BUNDLED_PHOTOS, bundled_scenes
from saccade.data.export import ExportConfig, ExportReport, export_features
from saccade.data.scenes import FileScenes, ImageFolderScenes, Scene, UnreadableImageError
from saccade.data.shards import (
    DistillationPairs,
    ShardDataset,
    ShardError,
    TeacherFeatures,
    TeacherTargets,
    collate_pairs,
)
from saccade.data.stats import fill_pretraining_standardizers, fit_standardizers

__all__ = [
    "BUNDLED_PHOTOS",
    "DistillationPairs",
    "ExportConfig",
    "ExportReport",
    "FileScenes",
    "ImageFolderScenes",
    "Scene",
    "ShardDataset",
    "ShardError",
    "TeacherFeatures",
    "TeacherTargets",
    "UnreadableImageError",
    "bundled_scenes",
    "collate_pairs",
    "export_features",
    "fill_pretraining_standardizers",
    "fit_standardizers",
]
