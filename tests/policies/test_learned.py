"""Greedy policies: candidate grid, observation features, the oracle against brute force, the learned policy
(training a few steps, safetensors round trip, strict loading) and its use in rollouts."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tests.envs.fixtures import ENV_CONFIG, GRID, tiny_model, tiny_scenes

from saccade.envs import DistillationObjective, GlimpseBatchEnv, MeasuredGains
from saccade.episode import rollout
from saccade.geometry import Viewpoint
from saccade.glimpse import sample_glimpse
from saccade.policies import GainRegressor, GreedyPolicy, load_gain_regressor, make_policy, save_gain_regressor
from saccade.policies.candidates import candidate_grid
from saccade.policies.learned import GainRegressorConfig
from saccade.policies.observation import ObservationConfig, candidate_features, coverage_maps, observation_features
from saccade.policy_training.collect import collect_gains
from saccade.policy_training.fit import fit_regressor

OBSERVATION = ENV_CONFIG.observation


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def scenes():
    return tiny_scenes(12)


def _regressor(model, **overrides) -> GainRegressor:
    config = model.config
    fields = dict(
        canvas_dim=config.canvas_dim, cls_dim=config.backbone.embed_dim, observation=OBSERVATION, hidden_dim=32
    )
    torch.manual_seed(0)
    return GainRegressor(GainRegressorConfig(**{**fields, **overrides}))


def test_candidate_grid_holds_the_quadtree_and_half_offsets() -> None:
    quadtree = candidate_grid()
    assert quadtree.shape == (21, 3)
    torch.testing.assert_close(quadtree[0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(quadtree[1:5, 2], torch.full((4,), 0.5))
    offsets = candidate_grid(half_offsets=True)
    assert offsets.shape == (59, 3)
    assert bool(Viewpoint.from_yxs(offsets).is_inside_scene().all())
    for row in quadtree:  # every quadtree tile is among the offset cells
        assert bool(((offsets - row).abs().amax(dim=1) < 1e-6).any())
    with pytest.raises(ValueError, match="candidate levels must be ints in"):
        candidate_grid((0, -1))


def test_observation_and_candidate_features_have_the_documented_sizes(model) -> None:
    state = model.canvit.init_state(batch_size=2, canvas_grid=GRID)
    history = torch.tensor([[[0.0, 0.0, 1.0], [-0.5, -0.5, 0.5]], [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]])  # [2, 2, 3]
    D_cv, D_bb = model.config.canvas_dim, model.config.backbone.embed_dim
    obs = observation_features(state, history, OBSERVATION)
    assert obs.shape == (2, OBSERVATION.observation_dim(canvas_dim=D_cv, cls_dim=D_bb))
    features = candidate_features(state, history, candidate_grid(), OBSERVATION)
    assert features.shape == (2, 21, OBSERVATION.candidate_dim(canvas_dim=D_cv))
    visits, zoom = coverage_maps(history, 4)  # 4 x 4 coverage cells
    assert visits[0].reshape(4, 4)[0, 0] == 2 and visits[0].reshape(4, 4)[3, 3] == 1
    assert zoom[0].reshape(4, 4)[0, 0] == 1 and zoom[0].reshape(4, 4)[3, 3] == 0
    assert visits[1].reshape(4, 4)[3, 3] == 2 and zoom[1].reshape(4, 4)[0, 0] == -1


def test_greedy_policy_takes_the_best_scored_candidate() -> None:
    candidates = candidate_grid((0, 1))
    scores = torch.tensor([[0.0, 1.0, 3.0, 2.0, -1.0], [5.0, 0.0, 0.0, 0.0, 0.0]])
    policy = GreedyPolicy(2, score_candidates=lambda state, history, c: scores, candidates=candidates)
    viewpoint = policy.step(0, state=object())
    torch.testing.assert_close(viewpoint.to_yxs(), candidates[[2, 0]])
    assert policy.history.shape == (2, 1, 3)
    with pytest.raises(ValueError, match=r"must return \[B, K\] = \[2, 5\] scores, got \(2, 4\)"):
        GreedyPolicy(2, score_candidates=lambda *_: torch.zeros(2, 4), candidates=candidates).step(0, object())
    with pytest.raises(ValueError, match="pass it to step"):
        policy.step(1)


def test_greedy_policy_held_to_the_coarse_to_fine_schedule() -> None:
    candidates = candidate_grid((0, 1))
    scores = torch.tensor([[9.0, 1.0, 3.0, 2.0, 4.0]])  # the full scene scores best but is only open at t = 0
    policy = GreedyPolicy(1, score_candidates=lambda *_: scores, candidates=candidates, order="coarse_to_fine")
    assert policy.num_steps == 5
    picks = [policy.step(t, object()).to_yxs()[0] for t in range(5)]
    expected = candidates[[0, 4, 2, 3, 1]]  # level 0, then the level-1 tiles by score, each once
    torch.testing.assert_close(torch.stack(picks), expected)
    with pytest.raises(ValueError, match="needs the quadtree candidates"):
        GreedyPolicy(1, score_candidates=lambda *_: scores, candidates=candidate_grid((0, 1), half_offsets=True),
                     order="coarse_to_fine")  # fmt: skip


def test_oracle_picks_the_best_candidate_by_brute_force(model, scenes) -> None:
    objective = DistillationObjective(model)
    images, targets = scenes.scenes[:3].float(), objective.prepare(scenes.targets[:3])
    candidates = candidate_grid()
    state = model.canvit.init_state(batch_size=3, canvas_grid=GRID)
    first = Viewpoint.from_yxs(torch.tensor([[0.0, 0.0, 1.0]] * 3))
    state = model.canvit(sample_glimpse(images, first, 32), state, first).state  # one glimpse in, then decide
    before = objective.score(state, targets)
    brute = torch.stack(
        [
            objective.score(model.canvit(sample_glimpse(images, vp, 32), state, vp).state, targets) - before
            for vp in (Viewpoint.from_yxs(row.repeat(3, 1)) for row in candidates)
        ],
        dim=1,
    )  # [3, K]
    gains = MeasuredGains(model, images, targets, objective, glimpse_px=32, max_batch=8)
    torch.testing.assert_close(gains(state, torch.zeros(3, 1, 3), candidates), brute, atol=1e-5, rtol=1e-5)
    oracle = make_policy("oracle", batch_size=3, score_candidates=gains, candidates=candidates)
    chosen = oracle.step(0, state)
    torch.testing.assert_close(chosen.to_yxs(), candidates[brute.argmax(dim=1)])


def test_a_tiny_learned_policy_trains_round_trips_and_rolls_out(model, scenes, tmp_path) -> None:
    env = GlimpseBatchEnv(model, scenes.scenes, scenes.targets, DistillationObjective(model), ENV_CONFIG)
    regressor = _regressor(model)
    generator = torch.Generator().manual_seed(0)
    weights = {"oracle": 0.5, "coarse_to_fine": 0.25, "random": 0.25}
    samples = collect_gains(
        env, torch.arange(8), regressor.candidates(), behaviour_weights=weights, epsilon=0.1, generator=generator,
        rollout_batch=4, progress=False,
    )  # fmt: skip
    assert samples.gains.shape == (8 * ENV_CONFIG.episode.num_glimpses, 21)
    before = [p.detach().clone() for p in regressor.parameters()]
    result = fit_regressor(regressor, samples, steps=5, batch_size=8, eval_every=2, generator=generator, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, regressor.parameters(), strict=True))
    assert len(result.val_regret_per_step) == ENV_CONFIG.episode.num_glimpses

    path = save_gain_regressor(regressor, tmp_path / "policy.safetensors", info={"glimpse_px": 32})
    loaded = load_gain_regressor(path)
    assert loaded.config == regressor.config
    torch.testing.assert_close(
        loaded(samples.observations[:4], samples.candidate_features[:4]),
        regressor(samples.observations[:4], samples.candidate_features[:4]),
        atol=0,
        rtol=0,
    )
    policy = make_policy("learned", batch_size=4, regressor=loaded)
    steps = rollout(model, scenes.scenes[:4].float(), policy, num_glimpses=3, glimpse_px=32, canvas_grid=GRID)
    assert len(steps) == 3 and all(bool(step.viewpoint.is_inside_scene().all()) for step in steps)
    assert policy.history.shape == (4, 3, 3)


def test_loading_a_learned_policy_is_strict(model, tmp_path) -> None:
    path = save_gain_regressor(_regressor(model), tmp_path / "policy.safetensors")
    tensors = load_file(path)
    with safe_open(str(path), framework="pt") as reader:  # keep the metadata, drop one tensor, add another
        metadata = reader.metadata()
    del tensors["head.weight"]
    tensors["extra"] = torch.zeros(1)
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=r"(?s)1 missing key\(s\): head\.weight.*1 unexpected key\(s\): extra"):
        load_gain_regressor(tmp_path / "broken.safetensors")
    save_file(load_file(path), str(tmp_path / "anonymous.safetensors"))
    with pytest.raises(ValueError, match="is not a saccade learned policy"):
        load_gain_regressor(tmp_path / "anonymous.safetensors")
    with pytest.raises(FileNotFoundError, match="no learned policy file"):
        load_gain_regressor(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="regressor must be a GainRegressor"):
        make_policy("learned", batch_size=2, regressor=object())


def test_learned_policy_rejects_a_state_of_another_model(model) -> None:
    regressor = _regressor(model, canvas_dim=model.config.canvas_dim + 1)
    state = model.canvit.init_state(batch_size=1, canvas_grid=GRID)
    with pytest.raises(ValueError, match="reads a CanViT with canvas width"):
        make_policy("learned", batch_size=1, regressor=regressor).step(0, state)


def test_observation_config_validates() -> None:
    with pytest.raises(ValueError, match=r"ObservationConfig\.pool_grid must be a positive int, got 0"):
        ObservationConfig(pool_grid=0)
