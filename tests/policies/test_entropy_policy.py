"""EG-C2F: per-cell entropy, tile means, greedy unvisited choice, official decisions, bad decoders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from saccade.policies import make_policy
from saccade.policies.entropy import EntropyCoarseToFine, predictive_entropy, tile_mean_entropy
from saccade.policies.quadtree import quadtree_level, tile_masks

REFERENCE = Path(__file__).parents[1] / "data" / "reference"
STATE = object()  # EG-C2F only forwards the state to the decoder; these tests decode without a model


def _load(name: str) -> dict[str, torch.Tensor]:
    if not (REFERENCE / name).exists():
        pytest.skip(f"reference fixture {REFERENCE / name} is absent")
    from safetensors.torch import load_file

    return load_file(REFERENCE / name)


def _confident(batch_size: int, grid_size: int, num_classes: int = 4) -> torch.Tensor:
    """[B, C, G, G] one-hot probabilities: zero entropy everywhere."""
    probs = torch.zeros(batch_size, num_classes, grid_size, grid_size)
    probs[:, 0] = 1.0
    return probs


def _plant(probs: torch.Tensor, item: int, level: int, tile: int) -> None:
    """Make every cell of row-major tile `tile` of `level` uniform (maximal entropy) for batch `item`."""
    mask = tile_masks(probs.shape[-1], level)[tile]  # [G, G]
    probs[item][:, mask] = 1.0 / probs.shape[1]


def test_entropy_from_probabilities_and_logits_agree() -> None:
    logits = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    from_logits = predictive_entropy(logits, from_logits=True)  # [2, 4, 4]
    torch.testing.assert_close(predictive_entropy(logits.softmax(dim=1)), from_logits, atol=1e-6, rtol=0)
    assert float(predictive_entropy(_confident(1, 4)).abs().max()) == 0.0  # 0 log 0 = 0
    uniform = torch.full((1, 5, 2, 2), 0.2)
    torch.testing.assert_close(predictive_entropy(uniform), torch.full((1, 2, 2), float(torch.log(torch.tensor(5.0)))))


def test_tile_means_equal_masked_means() -> None:
    entropy = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    for level in range(4):
        masks = tile_masks(8, level).float()  # [n, 8, 8]
        expected = (entropy[:, None] * masks).sum((-2, -1)) / masks.sum((-2, -1))  # [3, n]
        torch.testing.assert_close(tile_mean_entropy(entropy, level), expected, atol=1e-6, rtol=0)


def test_planted_high_entropy_tile_is_visited_first() -> None:
    probs = _confident(2, 8)
    _plant(probs, item=0, level=1, tile=2)  # bottom-left quadrant
    _plant(probs, item=1, level=1, tile=3)  # bottom-right quadrant
    policy = make_policy("EG-C2F", batch_size=2, canvas_to_probs=lambda state: probs)
    torch.testing.assert_close(policy.step(0).to_yxs(), torch.tensor([[0.0, 0.0, 1.0]] * 2), atol=0, rtol=0)
    first = policy.step(1, STATE).to_yxs()
    torch.testing.assert_close(first, torch.tensor([[0.5, -0.5, 0.5], [0.5, 0.5, 0.5]]), atol=0, rtol=0)
    # The planted tile stays the most uncertain but is not visited twice; ties go to row-major order.
    second = policy.step(2, STATE).to_yxs()
    torch.testing.assert_close(second, torch.tensor([[-0.5, -0.5, 0.5], [-0.5, -0.5, 0.5]]), atol=0, rtol=0)


def test_a_planted_fine_tile_is_visited_first_in_its_level_and_every_tile_once() -> None:
    probs = _confident(1, 8)
    _plant(probs, item=0, level=2, tile=9)  # row 2, col 1
    policy = EntropyCoarseToFine(1, canvas_to_probs=lambda state: probs)
    assert policy.num_steps == 21
    yxs = torch.stack([policy.step(t, STATE).to_yxs()[0] for t in range(21)])  # [21, 3]
    torch.testing.assert_close(yxs[5], torch.tensor([0.25, -0.25, 0.25]), atol=0, rtol=0)
    for level, block in ((1, yxs[1:5]), (2, yxs[5:21])):
        assert sorted(map(tuple, block.tolist())) == sorted(map(tuple, quadtree_level(level).tolist()))


@pytest.mark.reference
def test_official_entropy_example() -> None:
    common = _load("common.safetensors")
    entropy = predictive_entropy(common["policy.entropy_example.logits"], from_logits=True)
    torch.testing.assert_close(entropy, common["policy.entropy_example.entropy"], atol=1e-6, rtol=0)


@pytest.mark.reference
def test_official_decision_entropies_and_viewpoints() -> None:
    recorded = _load("eg_c2f.safetensors")
    decisions = [recorded[f"eg_c2f.step{t}.decision_logits"] for t in range(1, 8)]  # [B, C, G, G] each
    for t, logits in enumerate(decisions, start=1):
        expected = recorded[f"eg_c2f.step{t}.decision_mean_entropy"]  # [B, 4^l]
        level = {4: 1, 16: 2}[expected.shape[1]]
        ours = tile_mean_entropy(predictive_entropy(logits, from_logits=True), level)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)

    replay: Iterator[torch.Tensor] = iter(decisions)
    policy = make_policy("EG-C2F", batch_size=2, canvas_to_probs=lambda state: next(replay), from_logits=True)
    ours = torch.stack([policy.step(t, STATE).to_yxs() for t in range(8)])  # [T, B, 3]
    torch.testing.assert_close(ours, recorded["eg_c2f.viewpoints"], atol=1e-6, rtol=0)


def test_bad_decoders_and_states() -> None:
    def policy_with(probs: object) -> EntropyCoarseToFine:
        policy = EntropyCoarseToFine(2, canvas_to_probs=lambda state: probs)
        policy.step(0)
        return policy

    with pytest.raises(ValueError, match=r"power-of-two canvas grid G >= 2\^level = 2, got G x G = 12 x 12"):
        policy_with(_confident(2, 12)).step(1, STATE)
    with pytest.raises(ValueError, match=r"power-of-two canvas grid G >= 2\^level = 2, got G x G = 1 x 1"):
        policy_with(_confident(2, 1)).step(1, STATE)
    with pytest.raises(ValueError, match=r"canvas_to_probs returned batch 3, but the policy has batch_size=2"):
        policy_with(_confident(3, 8)).step(1, STATE)
    with pytest.raises(ValueError, match=r"must return a float \[B, C, G, G\] tensor, got \(2, 8, 8\)"):
        policy_with(torch.zeros(2, 8, 8)).step(1, STATE)
    with pytest.raises(ValueError, match=r"pass the model state to step\(1, state\)"):
        policy_with(_confident(2, 8)).step(1)
    with pytest.raises(ValueError, match=r"expected t=1, got t=2"):
        policy_with(_confident(2, 8)).step(2, STATE)
    with pytest.raises(TypeError, match=r"canvas_to_probs must be callable, got Tensor"):
        EntropyCoarseToFine(2, canvas_to_probs=torch.zeros(1))  # type: ignore[arg-type]
