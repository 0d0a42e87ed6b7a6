"""The policy contract over the whole registry (one context for every spec), paper names, make_policy and the
fixed policy."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from saccade.geometry import Viewpoint
from saccade.model.canvit import CanViT
from saccade.model.config import preset
from saccade.policies import (
    PAPER_NAMES,
    POLICIES,
    FixedPolicy,
    GainRegressor,
    Policy,
    PolicyContext,
    make_policy,
    resolve_policy,
    run_seeds,
    select_policies,
)
from saccade.policies.learned import GainRegressorConfig

BATCH = 3
GLIMPSES = 5
PATH = torch.tensor([[[0.0, 0.0, 1.0]] * BATCH, [[0.25, -0.5, 0.5]] * BATCH])  # [T=2, B, 3]


@pytest.fixture(scope="module")
def tiny() -> CanViT:
    torch.manual_seed(0)
    return CanViT(preset("canvit-tiny")).eval()


@pytest.fixture()
def context(tiny: CanViT) -> PolicyContext:
    """One context that covers every need of every registered policy."""
    dims = {"canvas_dim": tiny.config.canvas_dim, "cls_dim": tiny.config.backbone.embed_dim}
    return PolicyContext(
        batch_size=BATCH,
        num_glimpses=GLIMPSES,
        canvas_grid=4,
        generator=torch.Generator().manual_seed(0),
        decoder=lambda state: torch.full((BATCH, 3, 4, 4), 1.0 / 3),
        scorer=lambda state, history, candidates: torch.rand(BATCH, len(candidates)),
        regressor=GainRegressor(GainRegressorConfig(**dims, hidden_dim=8)),
        viewpoints=PATH,
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_returns_one_valid_viewpoint_per_item(name: str, context: PolicyContext, tiny: CanViT) -> None:
    spec = POLICIES[name]
    policy = spec.build(context)
    assert isinstance(policy, Policy) and spec.name == name
    assert policy.batch_size == BATCH
    state = tiny.init_state(batch_size=BATCH, canvas_grid=4)
    num_steps = GLIMPSES if policy.num_steps is None else min(policy.num_steps, GLIMPSES)
    for t in range(num_steps):
        viewpoint = policy.step(t, state=state)
        assert isinstance(viewpoint, Viewpoint)
        assert viewpoint.batch_size == BATCH
        assert viewpoint.centers.dtype == torch.float32 and viewpoint.scales.dtype == torch.float32
        assert bool(viewpoint.is_inside_scene().all())
        if t == 0 and spec.starts_with_full_scene:
            torch.testing.assert_close(viewpoint.to_yxs(), Viewpoint.full_scene(BATCH).to_yxs(), atol=0, rtol=0)
    if policy.num_steps is not None:
        assert policy.num_steps >= min(GLIMPSES, len(PATH)), "the context's episode length sets the quadtree depth"
        with pytest.raises(ValueError, match=rf"step t={policy.num_steps} is beyond the policy's length"):
            policy.step(policy.num_steps, state=state)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_random_order_is_what_the_generator_changes(name: str, context: PolicyContext, tiny: CanViT) -> None:
    """A random-order policy's viewpoints depend on the seed; a deterministic one's do not."""
    state = tiny.init_state(batch_size=BATCH, canvas_grid=4)

    def path(seed: int) -> torch.Tensor:
        torch.manual_seed(0)  # the oracle's stand-in scorer draws from the global stream
        policy = POLICIES[name].build(dataclasses.replace(context, generator=torch.Generator().manual_seed(seed)))
        return torch.stack([policy.step(t, state=state).to_yxs() for t in range(2)])  # [2, B, 3]

    assert POLICIES[name].random_order == any(not torch.equal(path(0), path(seed)) for seed in (1, 2, 3))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_missing_need_is_named(name: str, context: PolicyContext) -> None:
    spec = POLICIES[name]
    bare = PolicyContext(batch_size=BATCH, num_glimpses=GLIMPSES)
    if not spec.needs:
        assert spec.skip_note(bare.provided) is None and isinstance(spec.build(bare), Policy)
        return
    with pytest.raises(ValueError, match=rf"^{spec.label} needs "):
        spec.build(bare)
    assert spec.skip_note(context.provided) is None


def test_paper_names_resolve_at_the_boundary() -> None:
    assert set(PAPER_NAMES) == {"R-IID", "F-IID", "RFS", "C2F", "F2C", "EG-C2F"}
    for paper, name in PAPER_NAMES.items():
        assert resolve_policy(paper) == resolve_policy(name) == name and POLICIES[name].label == paper
    with pytest.raises(ValueError, match=r"unknown policy 'spiral'; choose one of \["):
        resolve_policy("spiral")


def test_runs_and_skips_follow_the_spec() -> None:
    assert {name for name, spec in POLICIES.items() if spec.random_order} == {
        "random", "full_then_random", "coarse_to_fine", "fine_to_coarse"
    }  # fmt: skip
    assert run_seeds(POLICIES["coarse_to_fine"], num_runs=3, seed=7) == [7, 8, 9]
    assert run_seeds(POLICIES["repeated_full_scene"], num_runs=3, seed=7) == [7]
    kept, notes = select_policies(("C2F", "EG-C2F", "RFS"), provided=())
    assert kept == ("coarse_to_fine", "repeated_full_scene")
    assert notes == (
        "EG-C2F skipped: it needs a decoder of per-cell class scores from the canvas (e.g. a segmentation probe), "
        "which was not given",
    )
    assert select_policies(("EG-C2F",), provided={"decoder"}) == (("entropy_coarse_to_fine",), ())


def test_context_and_spec_checks_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        PolicyContext(batch_size=0)
    with pytest.raises(ValueError, match=r"PolicyContext.num_glimpses must be a positive int, got 0"):
        PolicyContext(batch_size=1, num_glimpses=0)
    with pytest.raises(TypeError, match=r"PolicyContext.decoder must be callable or None, got int"):
        PolicyContext(batch_size=1, decoder=3)
    with pytest.raises(ValueError, match=r"a pretraining rollout is drawn .* cannot need \['decoder'\]"):
        dataclasses.replace(POLICIES["entropy_coarse_to_fine"], pretraining_rollout=True)
    grid = PolicyContext(batch_size=1, num_glimpses=5, canvas_grid=7, decoder=lambda state: state)
    with pytest.raises(ValueError, match=r"EG-C2F over 5 glimpses reaches quadtree level 1, and .* 7 x 7"):
        POLICIES["entropy_coarse_to_fine"].build(grid)


def test_make_policy_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'spiral'; choose one of \["):
        make_policy("spiral", batch_size=2)
    for batch_size in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=rf"batch_size must be a positive int, got {batch_size!r}"):
            make_policy("random", batch_size=batch_size)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int"):
        make_policy("C2F", batch_size=2, generator=1234)
    with pytest.raises(TypeError, match=r"canvas_to_probs"):
        make_policy("EG-C2F", batch_size=2)


def test_device_argument_places_the_viewpoints() -> None:
    policy = make_policy("C2F", batch_size=2, generator=torch.Generator().manual_seed(0), device="cpu")
    assert policy.step(0).centers.device == torch.device("cpu")


def test_fixed_policy_accepts_a_tensor_or_a_list_of_viewpoints() -> None:
    from_tensor = make_policy("fixed", batch_size=BATCH, viewpoints=PATH)
    from_list = FixedPolicy(BATCH, viewpoints=[Viewpoint.from_yxs(row) for row in PATH])
    assert from_tensor.num_steps == from_list.num_steps == 2
    for t in range(2):
        torch.testing.assert_close(from_tensor.step(t).to_yxs(), PATH[t], atol=0, rtol=0)
        torch.testing.assert_close(from_list.step(t).to_yxs(), PATH[t], atol=0, rtol=0)


def test_fixed_policy_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"viewpoints have batch 3 \(\[T, B, 3\] = \(2, 3, 3\)\), expected 2"):
        make_policy("fixed", batch_size=2, viewpoints=PATH)
    with pytest.raises(ValueError, match=r"must be a float \[T, B, 3\] \(y, x, scale\) tensor, got .* \(2, 3\)"):
        make_policy("fixed", batch_size=2, viewpoints=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"at least one step, got an empty list"):
        make_policy("fixed", batch_size=2, viewpoints=[])
    with pytest.raises(TypeError, match=r"viewpoints\[1\] must be a Viewpoint, got Tensor"):
        make_policy("fixed", batch_size=1, viewpoints=[Viewpoint.full_scene(1), torch.zeros(1, 3)])
    with pytest.raises(ValueError, match=r"Viewpoint.scales must lie in \(0, 1\]"):
        make_policy("fixed", batch_size=1, viewpoints=torch.tensor([[[0.0, 0.0, 1.5]]]))
    with pytest.raises(ValueError, match=r"step t=2 is beyond the policy's length of 2 steps"):
        make_policy("fixed", batch_size=BATCH, viewpoints=PATH).step(2)
