"""gymnasium front ends of the glimpse environment (optional dependency: pip install 'saccade[rl]').

- `GlimpseEnv`: one scene per episode, drawn with the env's seeded `np_random` (or options={"scene": i}).
- `GlimpseVectorEnv`: `num_envs` scenes stepped by one model forward; all episodes have the same length,
  so they end together, and the step after the end resets them all (gymnasium's next-step autoreset).
Observation: Box(-inf, inf, (F,)) float32 (see saccade.policies.observation); action: Box(-1, 1, (3,))
mapped to a viewpoint inside the scene (saccade.envs.spaces); reward: the glimpse's gain on the objective.
Both run on the model's device and return numpy arrays; infos carry the objective's score after the step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor, nn

from saccade._checks import positive_int
from saccade.envs.batched import GlimpseBatchEnv, GlimpseEnvConfig
from saccade.envs.objectives import Objective

__all__ = ["GlimpseEnv", "GlimpseVectorEnv"]


def _spaces(core: GlimpseBatchEnv) -> tuple[spaces.Box, spaces.Box]:
    canvit = core.canvit
    dim = core.config.observation.observation_dim(
        canvas_dim=canvit.config.canvas_dim, cls_dim=canvit.config.backbone.embed_dim
    )
    observation = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
    action = spaces.Box(-1.0, 1.0, (3,), np.float32)
    return observation, action


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


class GlimpseEnv(gym.Env):
    """One scene per episode; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        model: nn.Module,
        scenes: Tensor,
        targets: Tensor,
        objective: Objective,
        config: GlimpseEnvConfig | None = None,
    ) -> None:
        self.core = GlimpseBatchEnv(model, scenes, targets, objective, config)
        self.observation_space, self.action_space = _spaces(self.core)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        scene = (options or {}).get("scene")
        if scene is None:
            scene = int(self.np_random.integers(self.core.num_scenes))
        observation = self.core.reset([int(scene)])
        return _numpy(observation[0]), {"scene": int(scene), "score": float(self.core.score[0])}

    def step(self, action):
        actions = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, 3))
        result = self.core.step_actions(actions)
        info = {"score": float(result.score[0]), "viewpoint": _numpy(self.core.history[0, -1])}
        return _numpy(result.observation[0]), float(result.reward[0]), result.done, False, info


class GlimpseVectorEnv(VectorEnv):
    """`num_envs` scenes at once (one model forward per step); see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        model: nn.Module,
        scenes: Tensor,
        targets: Tensor,
        objective: Objective,
        *,
        num_envs: int,
        config: GlimpseEnvConfig | None = None,
    ) -> None:
        positive_int("num_envs", num_envs)
        self.core = GlimpseBatchEnv(model, scenes, targets, objective, config)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.core)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        scenes = (options or {}).get("scenes")
        if scenes is None:
            scenes = self.np_random.integers(self.core.num_scenes, size=self.num_envs)
        observation = self.core.reset(torch.as_tensor(np.asarray(scenes), dtype=torch.long))
        self._needs_reset = False
        return _numpy(observation), {"scene": self.core.indices.numpy().copy(), "score": _numpy(self.core.score)}

    def step(self, actions):
        if self._needs_reset:  # next-step autoreset: this step only starts new episodes
            observation, info = self.reset()
            zeros = np.zeros(self.num_envs, dtype=bool)
            return observation, np.zeros(self.num_envs, np.float32), zeros, zeros.copy(), info
        result = self.core.step_actions(torch.as_tensor(np.asarray(actions, dtype=np.float32)))
        self._needs_reset = result.done
        terminated = np.full(self.num_envs, result.done, dtype=bool)
        info = {"score": _numpy(result.score)}
        return _numpy(result.observation), _numpy(result.reward), terminated, np.zeros_like(terminated), info
