"""R-IID, F-IID and RFS: the safe-box scale law, crops inside the scene, seeding, official sequences."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from saccade.geometry import Viewpoint
from saccade.policies import make_policy
from saccade.policies.random import RandomPolicy, check_scale_range, sample_safe_box

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "common.safetensors"


@pytest.fixture(scope="module")
def common() -> dict[str, torch.Tensor]:
    if not REFERENCE.exists():
        pytest.skip(f"reference fixture {REFERENCE} is absent")
    from safetensors.torch import load_file

    return load_file(REFERENCE)


def _scale_moment(k: int, s_min: float, s_max: float) -> float:
    """E[s^k] under p(s) ∝ 1 - s on [s_min, s_max], in closed form."""

    def antiderivative(s: float) -> float:  # ∫ s^k (1 - s) ds
        return s ** (k + 1) / (k + 1) - s ** (k + 2) / (k + 2)

    def norm(s: float) -> float:  # ∫ (1 - s) ds
        return s - s**2 / 2

    return (antiderivative(s_max) - antiderivative(s_min)) / (norm(s_max) - norm(s_min))


def _draw(s_min: float, s_max: float, *, batch_size: int = 20_000, num_steps: int = 10) -> list[Viewpoint]:
    policy = RandomPolicy(batch_size, s_min=s_min, s_max=s_max, generator=torch.Generator().manual_seed(0))
    return [policy.step(t) for t in range(num_steps)]


@pytest.mark.parametrize(("s_min", "s_max"), [(0.05, 1.0), (0.2, 0.6)])
def test_scale_and_area_means_match_the_closed_form(s_min: float, s_max: float) -> None:
    scales = torch.cat([v.scales for v in _draw(s_min, s_max)]).double()  # [N]
    n = len(scales)
    m1, m2, m4 = (_scale_moment(k, s_min, s_max) for k in (1, 2, 4))
    # 5 standard errors: a correct sampler fails with probability ~1e-6 (and the seed is fixed).
    assert abs(scales.mean().item() - m1) < 5 * math.sqrt((m2 - m1**2) / n)
    assert abs((scales**2).mean().item() - m2) < 5 * math.sqrt((m4 - m2**2) / n)
    assert s_min <= scales.min().item() and scales.max().item() <= s_max


def test_scale_distribution_is_proportional_to_one_minus_s() -> None:
    s_min, s_max = 0.05, 1.0
    scales = torch.cat([v.scales for v in _draw(s_min, s_max)]).double().sort().values  # [N]
    n = len(scales)
    cdf = ((1 - s_min) ** 2 - (1 - scales) ** 2) / ((1 - s_min) ** 2 - (1 - s_max) ** 2)  # [N]
    empirical = torch.arange(1, n + 1, dtype=torch.float64) / n
    assert (cdf - empirical).abs().max().item() < 1.95 / math.sqrt(n)  # Kolmogorov-Smirnov at 0.1%


def test_centres_are_uniform_in_the_safe_box_and_crops_stay_inside() -> None:
    viewpoints = _draw(0.05, 1.0)
    for viewpoint in viewpoints:
        assert bool(viewpoint.is_inside_scene(atol=1e-6).all())
    centers = torch.cat([v.centers for v in viewpoints]).double()  # [N, 2]
    half_side = 1 - torch.cat([v.scales for v in viewpoints]).double()  # [N]
    unit = centers / half_side[:, None]  # [N, 2] uniform in [-1, 1]^2 given s
    n = len(unit)
    assert unit.abs().max().item() <= 1 + 1e-5
    torch.testing.assert_close(unit.mean(0), torch.zeros(2, dtype=torch.float64), atol=5 / math.sqrt(3 * n), rtol=0)
    torch.testing.assert_close(unit.var(0), torch.full((2,), 1 / 3, dtype=torch.float64), atol=0.01, rtol=0)


def test_degenerate_range_gives_the_exact_scale() -> None:
    viewpoint = sample_safe_box(64, s_min=1.0, s_max=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(viewpoint.scales, torch.ones(64), atol=0, rtol=0)
    torch.testing.assert_close(viewpoint.centers, torch.zeros(64, 2), atol=0, rtol=0)


def test_full_then_random_starts_full_and_repeated_full_scene_stays_full() -> None:
    fiid = make_policy("F-IID", batch_size=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fiid.step(0).to_yxs(), torch.tensor([[0.0, 0.0, 1.0]] * 3), atol=0, rtol=0)
    assert bool((fiid.step(1).scales < 1).all())
    rfs = make_policy("RFS", batch_size=2)
    for t in range(4):
        torch.testing.assert_close(rfs.step(t).to_yxs(), torch.tensor([[0.0, 0.0, 1.0]] * 2), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["random", "full_then_random"])
def test_seeded_generators_replay_and_different_seeds_differ(name: str) -> None:
    def rollout(seed: int) -> torch.Tensor:
        policy = make_policy(name, batch_size=4, generator=torch.Generator().manual_seed(seed))
        return torch.stack([policy.step(t).to_yxs() for t in range(5)])  # [T, B, 3]

    torch.testing.assert_close(rollout(7), rollout(7), atol=0, rtol=0)
    assert not torch.equal(rollout(7), rollout(8))


def test_items_draw_their_own_viewpoints() -> None:
    viewpoint = make_policy("random", batch_size=8, generator=torch.Generator().manual_seed(0)).step(0)
    assert len(set(viewpoint.scales.tolist())) == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_draws_on_its_device() -> None:
    def rollout() -> torch.Tensor:
        generator = torch.Generator(device="cuda").manual_seed(3)
        policy = make_policy("random", batch_size=4, generator=generator)
        return torch.stack([policy.step(t).to_yxs() for t in range(3)])

    first = rollout()
    assert first.device.type == "cuda"
    torch.testing.assert_close(first, rollout(), atol=0, rtol=0)


@pytest.mark.reference
@pytest.mark.parametrize(
    ("name", "key", "batch_size", "num_steps"),
    [
        ("R-IID", "policy.random.seed1234.B4.T6", 4, 6),
        ("F-IID", "policy.full_then_random.seed1234.B3.T5", 3, 5),
        ("RFS", "policy.repeated_full_scene.B2.T3", 2, 3),
    ],
)
def test_official_seeded_sequences(
    common: dict[str, torch.Tensor], name: str, key: str, batch_size: int, num_steps: int
) -> None:
    policy = make_policy(name, batch_size=batch_size, generator=torch.Generator().manual_seed(1234))
    ours = torch.stack([policy.step(t).to_yxs() for t in range(num_steps)])  # [T, B, 3]
    torch.testing.assert_close(ours, common[key], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("s_min", "s_max", "error", "match"),
    [
        (0.0, 1.0, ValueError, r"s_min must lie in \(0, 1\], got 0.0"),
        (1.5, 1.0, ValueError, r"s_min must lie in \(0, 1\], got 1.5"),
        (0.1, 1.2, ValueError, r"s_max must lie in \(0, 1\], got 1.2"),
        (0.5, 0.2, ValueError, r"s_min must be <= s_max, got s_min=0.5 > s_max=0.2"),
        (float("nan"), 1.0, ValueError, r"s_min must lie in \(0, 1\], got nan"),
        ("0.1", 1.0, TypeError, r"s_min must be a real number, got str"),
    ],
)
def test_bad_scale_range(s_min: object, s_max: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_scale_range(s_min, s_max)
    with pytest.raises(error, match=match):
        make_policy("R-IID", batch_size=2, s_min=s_min, s_max=s_max)


def test_stateful_policies_are_stepped_in_order() -> None:
    policy = make_policy("random", batch_size=2, generator=torch.Generator().manual_seed(0))
    policy.step(0)
    with pytest.raises(ValueError, match=r"stepped in order: expected t=1, got t=3"):
        policy.step(3)
    policy.reset()
    policy.step(0)
