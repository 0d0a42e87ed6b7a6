"""The glimpse environments: gymnasium's checker, reward = score after - score before, seeding, vector form."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from saccade.envs import (
    DistillationObjective,
    GlimpseBatchEnv,
    GlimpseEnvConfig,
    action_to_viewpoint,
    step_candidates,
    viewpoint_to_action,
)
from saccade.episode_config import EPISODES
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.policies.candidates import candidate_grid
from tests.envs.fixtures import ENV_CONFIG, tiny_model, tiny_scenes

PRETRAINED = Path(__file__).parents[2] / "runs" / "pretrain-small" / "model"

gym = pytest.importorskip("gymnasium")
from saccade.envs.gym_env import GlimpseEnv, GlimpseVectorEnv  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def scenes():
    return tiny_scenes(8)


def _env(model, scenes) -> GlimpseEnv:
    return GlimpseEnv(model, scenes.scenes, scenes.targets, DistillationObjective(model), ENV_CONFIG)


def test_gymnasium_env_checker_passes(model, scenes) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(_env(model, scenes), skip_render_check=True)


def test_reward_is_the_rise_of_the_standardized_cosine(model, scenes) -> None:
    env = _env(model, scenes)
    _, info = env.reset(seed=3)
    objective = DistillationObjective(model)
    targets = objective.prepare(scenes.targets[info["scene"] : info["scene"] + 1])
    before = info["score"]
    assert before == pytest.approx(float(objective.score(env.core.state, targets)[0]), abs=1e-6)
    for action in ([0.0, 0.0, 1.0], [-1.0, 1.0, -1.0], [0.3, -0.2, 0.0]):
        _, reward, _, _, step_info = env.step(np.array(action, dtype=np.float32))
        after = float(objective.score(env.core.state, targets)[0])
        assert step_info["score"] == pytest.approx(after, abs=1e-6)
        assert reward == float(torch.tensor(step_info["score"]) - torch.tensor(before))
        before = step_info["score"]


@pytest.mark.skipif(not (PRETRAINED / "model.safetensors").is_file(), reason=f"needs the pretrained model {PRETRAINED}")
def test_a_first_full_scene_glimpse_helps_a_pretrained_model() -> None:
    # Reward sign on a model whose readout is sensible: the small pretrained CanViT, 8 fresh crops of held-out photos.
    # It is weak: a first glimpse does not help every scene, but it helps on average and on most scenes.
    from saccade.data.bundled import bundled_files
    from saccade.data.crops import CropConfig, load_photos, random_crops, teacher_features
    from saccade.model.checkpoint import load_pretrained
    from saccade.teachers.dinov2_bundled import load_bundled_dinov2

    try:
        teacher = load_bundled_dinov2()
        photos = load_photos([path for _, path in bundled_files("heldout")])
    except (ImportError, FileNotFoundError) as error:
        pytest.skip(f"bundled teacher or photos unavailable: {error}")
    model = load_pretrained(PRETRAINED)
    grid = model.teacher_patch_grid
    crops = CropConfig(num_crops=8, size_px=16 * grid, teacher_px=teacher.patch_size * grid, seed=5)
    scenes, _ = random_crops(photos, crops)
    patches, _ = teacher_features(teacher, scenes, teacher_px=crops.teacher_px)
    env = GlimpseBatchEnv(
        model,
        scenes,
        patches,
        DistillationObjective(model),
        GlimpseEnvConfig(episode=dataclasses.replace(EPISODES["cpu"], canvas_grid=grid)),
    )
    env.reset(range(8))
    best = env.measure_candidates(candidate_grid()).amax(dim=1)  # [8] the best first glimpse of each scene
    result = env.step(Viewpoint.full_scene(8))
    assert float(best.mean()) > 0.1 and int((best > 0).sum()) >= 6, best
    assert float(result.reward.mean()) > 0, result.reward


def test_determinism_by_seed(model, scenes) -> None:
    def episode(seed: int) -> list[float]:
        env = _env(model, scenes)
        env.action_space.seed(seed)
        observation, _ = env.reset(seed=seed)
        rewards = [float(observation.sum())]
        for _ in range(ENV_CONFIG.episode.num_glimpses):
            rewards.append(env.step(env.action_space.sample())[1])
        return rewards

    assert episode(7) == episode(7)
    assert episode(7) != episode(8)


def test_episode_ends_after_num_glimpses_and_must_be_reset(model, scenes) -> None:
    env = _env(model, scenes)
    env.reset(seed=0)
    done = [env.step(np.zeros(3, np.float32))[2] for _ in range(ENV_CONFIG.episode.num_glimpses)]
    assert done == [False] * (ENV_CONFIG.episode.num_glimpses - 1) + [True]
    with pytest.raises(ValueError, match="the episode is over after 3 glimpses"):
        env.step(np.zeros(3, np.float32))


def test_vector_env_matches_single_envs_and_autoresets(model, scenes) -> None:
    objective = DistillationObjective(model)
    vector = GlimpseVectorEnv(model, scenes.scenes, scenes.targets, objective, num_envs=3, config=ENV_CONFIG)
    observations, info = vector.reset(seed=0, options={"scenes": [1, 4, 6]})
    assert observations.shape == (3, *vector.single_observation_space.shape)
    actions = np.array([[0.0, 0.0, 1.0], [0.5, -0.5, 0.0], [-1.0, -1.0, -1.0]], np.float32)
    _, rewards, terminated, truncated, _ = vector.step(actions)
    for row, scene in enumerate((1, 4, 6)):
        single = _env(model, scenes)
        single.reset(options={"scene": scene})
        _, reward, *_ = single.step(actions[row])
        assert rewards[row] == pytest.approx(reward, abs=1e-5)
    for _ in range(ENV_CONFIG.episode.num_glimpses - 1):
        _, _, terminated, _, _ = vector.step(actions)
    assert terminated.all() and not truncated.any()
    _, rewards, terminated, _, info = vector.step(actions)  # next-step autoreset
    assert not terminated.any() and (rewards == 0).all() and info["scene"].shape == (3,)


def test_measured_candidates_fold_into_the_batch(model, scenes) -> None:
    images = scenes.scenes[:3].float()
    state = model.canvit.init_state(batch_size=3, canvas_grid=4)
    candidates = candidate_grid((0, 1))
    folded = step_candidates(model, images, state, candidates, glimpse_px=32, max_batch=4)  # several chunks
    for k in range(len(candidates)):
        viewpoint = Viewpoint.from_yxs(candidates[k : k + 1].repeat(3, 1))
        one = model.canvit(sample_glimpse(images, viewpoint, 32), state, viewpoint).state
        torch.testing.assert_close(folded.canvas[k :: len(candidates)], one.canvas, atol=1e-5, rtol=1e-5)


def test_batch_env_step_to_candidates_equals_stepping_there(model, scenes) -> None:
    objective = DistillationObjective(model)
    env = GlimpseBatchEnv(model, scenes.scenes, scenes.targets, objective, ENV_CONFIG)
    candidates = candidate_grid()
    env.reset([0, 1, 2])
    gains = env.measure_candidates(candidates)
    choice = torch.tensor([0, 7, 20])
    result = env.step_to_candidates(choice)
    torch.testing.assert_close(result.reward, gains[torch.arange(3), choice], atol=1e-5, rtol=0)
    other = GlimpseBatchEnv(model, scenes.scenes, scenes.targets, objective, ENV_CONFIG)
    other.reset([0, 1, 2])
    stepped = other.step(Viewpoint.from_yxs(candidates[choice]))
    torch.testing.assert_close(result.score, stepped.score, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(env.observe(), other.observe(), atol=1e-5, rtol=1e-5)


def test_actions_map_to_viewpoints_inside_the_scene_and_back() -> None:
    actions = torch.tensor([[-1.0, 1.0, -1.0], [0.0, 0.0, 1.0], [0.5, -0.25, 0.2], [3.0, -3.0, 0.0]])
    viewpoint = action_to_viewpoint(actions, min_scale=0.25, max_scale=1.0)
    assert bool(viewpoint.is_inside_scene().all())
    torch.testing.assert_close(viewpoint.to_yxs()[0], torch.tensor([-0.75, 0.75, 0.25]))
    torch.testing.assert_close(viewpoint.scales[1], torch.tensor(1.0))
    back = viewpoint_to_action(viewpoint, min_scale=0.25, max_scale=1.0)
    torch.testing.assert_close(back[[0, 2]], actions[[0, 2]], atol=1e-6, rtol=0)
    torch.testing.assert_close(back[3], torch.tensor([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match=r"actions must be \[B, 3\]"):
        action_to_viewpoint(torch.zeros(3), min_scale=0.25, max_scale=1.0)
    with pytest.raises(ValueError, match="0 < min_scale <= max_scale <= 1"):
        action_to_viewpoint(actions, min_scale=0.0, max_scale=1.0)


def test_stable_baselines3_ppo_runs_on_the_env(model, scenes) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    agent = sb3.PPO("MlpPolicy", _env(model, scenes), n_steps=6, batch_size=6, n_epochs=1, device="cpu", seed=0)
    agent.learn(total_timesteps=12)
    action, _ = agent.predict(_env(model, scenes).reset(seed=0)[0], deterministic=True)
    assert action.shape == (3,)
