"""Adding a policy is one registry row: a random-order policy that needs a decoder, added inside the test, gets
num_runs runs (seeds seed + run) in evaluation and policy evaluation, is skipped with one note when no decoder
is given, and is refused as a pretraining rollout (a needs-free twin trains)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from tests.envs.fixtures import GRID, TEACHER_DIM, tiny_model
from tests.envs.fixtures import tiny_scenes as policy_scenes
from tests.evaluate.fakes import tiny_scenes
from tests.pretrain.run_synthetic import config as synthetic_config

from saccade import CanViT, preset
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.runner import EvalConfig, evaluate_policies
from saccade.policies import POLICIES, PolicyContext, PolicySpec
from saccade.policies.learned import GainRegressor, GainRegressorConfig
from saccade.policy_training.config import PolicyEvalConfig
from saccade.policy_training.evaluate import evaluate_policy_curves
from saccade.pretrain.config import PretrainConfig
from saccade.pretrain.data import synthetic_dataset
from saccade.pretrain.trainer import pretrain
from saccade.probes import ProbeConfig, build_probe

EPISODE = EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=GRID, num_glimpses=3)
RUNS = 3


class DecodedShuffle:
    """C2F's random tile order; from t = 1 on it decodes the state before each glimpse (so it needs a decoder)."""

    def __init__(self, ctx: PolicyContext, decodes: list[tuple[int, ...]]) -> None:
        self.inner = POLICIES["coarse_to_fine"].build(ctx)
        self.batch_size, self.num_steps = ctx.batch_size, self.inner.num_steps
        self.decoder, self.decodes = ctx.decoder, decodes

    def reset(self) -> None:
        self.inner.reset()

    def step(self, t, state=None):
        if t > 0 and state is not None and self.decoder is not None:
            self.decodes.append(tuple(self.decoder(state).shape))  # [B, C, G, G]
        return self.inner.step(t)


@pytest.fixture()
def added(monkeypatch):
    """Register DS (random order, needs a decoder) and record the seed of every build and every decode."""
    seeds: list[int] = []
    decodes: list[tuple[int, ...]] = []

    def build(ctx: PolicyContext) -> DecodedShuffle:
        seeds.append(ctx.generator.initial_seed())
        return DecodedShuffle(ctx, decodes)

    spec = PolicySpec(
        name="decoded_shuffle",  # type: ignore[arg-type]  # a name outside PolicyName, as a new row would add
        paper_name="DS",
        description="C2F tiles in a random order, decoding the canvas as it goes",
        random_order=True,
        starts_with_full_scene=True,
        pretraining_rollout=False,
        needs=frozenset({"decoder"}),
        factory=lambda batch_size, **kwargs: pytest.fail("harnesses build from a context"),
        builder=build,
    )
    monkeypatch.setitem(POLICIES, spec.name, spec)
    return spec, seeds, decodes


def probe(task: str, dim: int):
    torch.manual_seed(0)
    return build_probe(ProbeConfig(task=task, in_dim=dim, num_classes=3)).eval()


def test_evaluation_runs_it_num_runs_times_and_skips_it_without_a_decoder(added):
    _, seeds, decodes = added
    torch.manual_seed(0)
    model = CanViT(preset("canvit-tiny")).eval().requires_grad_(False)
    config = EvalConfig(policies=("DS", "RFS"), episode=EPISODE, num_runs=RUNS, batch_size=8, seed=5)
    curves = evaluate_policies(
        model, probe("segmentation", 96), tiny_scenes("segmentation"), config, task="segmentation", num_classes=3,
        progress=False,
    )  # fmt: skip
    runs = {curve.policy: curve.runs.shape[0] for curve in curves}
    assert runs == {"DS": RUNS, "RFS": 1}
    assert sorted(set(seeds)) == [5, 6, 7]  # run r: seed + r, one generator for all the batches of a run
    assert decodes and all(shape[1:] == (3, GRID, GRID) for shape in decodes)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves = evaluate_policies(
            model, probe("classification", 64), tiny_scenes("classification"), config, task="classification",
            num_classes=3, progress=False,
        )  # fmt: skip
    assert [str(w.message) for w in caught] == [
        "DS skipped: it needs a decoder of per-cell class scores from the canvas (e.g. a segmentation probe), "
        "which was not given"
    ]
    assert {curve.policy for curve in curves} == {"RFS"}


def test_policy_evaluation_runs_it_num_runs_times(added):
    _, seeds, decodes = added
    model = tiny_model()
    dims = {"canvas_dim": model.canvit.config.canvas_dim, "cls_dim": model.canvit.config.backbone.embed_dim}
    regressor = GainRegressor(GainRegressorConfig(**dims, hidden_dim=8)).eval()
    config = PolicyEvalConfig(episode=EPISODE, num_runs=RUNS, batch_size=4, num_resamples=50, seed=2)
    (curve,) = evaluate_policy_curves(model, regressor, policy_scenes(6), config, policies=("DS",), progress=False)
    assert curve.scenes.shape == (RUNS, 6, EPISODE.num_glimpses) and curve.num_runs == RUNS
    assert seeds == [seed for seed in (2, 3, 4) for _ in range(2)]  # 2 batches per run, seed + run
    # the policy evaluation's decoder: the predicted teacher channels per canvas cell
    assert decodes and all(shape[1:] == (TEACHER_DIM, GRID, GRID) for shape in decodes)


def test_pretraining_refuses_it_and_trains_a_needs_free_twin(added, tmp_path, monkeypatch):
    spec, seeds, _ = added
    with pytest.raises(ValueError, match=r"rollouts: 'DS' is not a pretraining rollout"):
        PretrainConfig(rollouts=("DS",))
    with pytest.raises(ValueError, match=r"cannot need \['decoder'\]"):
        dataclasses.replace(spec, pretraining_rollout=True)
    twin = dataclasses.replace(spec, name="shuffle", paper_name=None, needs=frozenset(), pretraining_rollout=True)
    monkeypatch.setitem(POLICIES, twin.name, twin)
    config = dataclasses.replace(synthetic_config(str(tmp_path), 1), rollouts=("shuffle",))
    summary = pretrain(config, synthetic_dataset(16, scene_px=64, grid=4, dim=16, seed=0), progress=False)
    assert len(seeds) == 1 and summary is not None
