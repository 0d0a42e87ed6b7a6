"""A tiny CanViTForPretraining with fitted standardizers and smooth synthetic scenes, for the env and policy tests."""

from __future__ import annotations

import torch

from saccade.envs import GlimpseEnvConfig
from saccade.episode_config import EpisodeConfig
from saccade.model.config import preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.policies.observation import ObservationConfig
from saccade.policy_training.data import SceneSet, load_scenes

GRID = 4  # canvas grid = teacher grid; scenes are 16 * GRID = 64 px
TEACHER_DIM = 32  # the synthetic teacher's width
EPISODE = EpisodeConfig(scene_px=16 * GRID, glimpse_px=32, canvas_grid=GRID, num_glimpses=3)
ENV_CONFIG = GlimpseEnvConfig(episode=EPISODE, observation=ObservationConfig(max_glimpses=3, coverage_grid=4))


def tiny_model(seed: int = 0) -> CanViTForPretraining:
    torch.manual_seed(seed)
    model = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=TEACHER_DIM, teacher_patch_grid=GRID)
    scenes = tiny_scenes(32)
    model.teacher_patch_standardizer.fit(scenes.targets.flatten(1, 2))
    model.teacher_cls_standardizer.fit(scenes.targets.mean(dim=(1, 2)))
    return model.eval().requires_grad_(False)


def tiny_scenes(count: int = 8, seed: int = 0) -> SceneSet:
    return load_scenes("synthetic", canvas_grid=GRID, num_scenes=count, seed=seed)
