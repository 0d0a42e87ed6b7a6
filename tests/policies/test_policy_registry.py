"""The policy contract over the whole registry, paper aliases, make_policy and the fixed policy."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from saccade.geometry import Viewpoint
from saccade.model.canvit import CanViT
from saccade.model.config import preset
from saccade.policies import PAPER_NAMES, POLICIES, FixedPolicy, GainRegressor, Policy, make_policy
from saccade.policies.learned import GainRegressorConfig

BATCH = 3
PATH = torch.tensor([[[0.0, 0.0, 1.0]] * BATCH, [[0.25, -0.5, 0.5]] * BATCH])  # [T=2, B, 3]


def _extra_kwargs(name: str) -> dict[str, Any]:
    if POLICIES[name] is POLICIES["fixed"]:
        return {"viewpoints": PATH}
    if POLICIES[name] is POLICIES["entropy_coarse_to_fine"]:
        return {"canvas_to_probs": lambda state: torch.full((BATCH, 3, 4, 4), 1.0 / 3)}
    if POLICIES[name] is POLICIES["oracle"]:
        return {"score_candidates": lambda state, history, candidates: torch.rand(BATCH, len(candidates))}
    if POLICIES[name] is POLICIES["learned"]:
        dims = {"canvas_dim": 96, "cls_dim": 64}  # canvit-tiny
        return {"regressor": GainRegressor(GainRegressorConfig(**dims, hidden_dim=8))}
    return {}


def _state(name: str) -> Any:
    """The model state handed to step(): only the learned policy reads it."""
    if POLICIES[name] is POLICIES["learned"]:
        return CanViT(preset("canvit-tiny")).init_state(batch_size=BATCH, canvas_grid=4)
    return object()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_returns_one_valid_viewpoint_per_item(name: str) -> None:
    policy = make_policy(name, batch_size=BATCH, generator=torch.Generator().manual_seed(0), **_extra_kwargs(name))
    assert isinstance(policy, Policy)
    assert policy.batch_size == BATCH
    num_steps = 6 if policy.num_steps is None else policy.num_steps
    for t in range(num_steps):
        viewpoint = policy.step(t, state=_state(name))
        assert isinstance(viewpoint, Viewpoint)
        assert viewpoint.batch_size == BATCH
        assert viewpoint.centers.dtype == torch.float32 and viewpoint.scales.dtype == torch.float32
        assert bool(viewpoint.is_inside_scene().all())
    if policy.num_steps is not None:
        with pytest.raises(ValueError, match=rf"step t={num_steps} is beyond the policy's length"):
            policy.step(num_steps, state=object())


def test_paper_aliases_name_the_same_policies() -> None:
    assert set(PAPER_NAMES) == {"R-IID", "F-IID", "RFS", "C2F", "F2C", "EG-C2F"}
    for alias, name in PAPER_NAMES.items():
        assert POLICIES[alias] is POLICIES[name]


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
