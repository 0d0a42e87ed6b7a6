"""C2F and F2C: quadtree tables, tile masks, exact tiling per level, seeding, official sequences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saccade.geometry import grid_coords
from saccade.policies import make_policy
from saccade.policies.quadtree import level_of_step, quadtree_level, tile_masks, z_order_index

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "common.safetensors"


@pytest.fixture(scope="module")
def common() -> dict[str, torch.Tensor]:
    if not REFERENCE.exists():
        pytest.skip(f"reference fixture {REFERENCE} is absent")
    from safetensors.torch import load_file

    return load_file(REFERENCE)


def _rollout(name: str, *, batch_size: int = 2, seed: int = 0, num_levels: int = 3) -> torch.Tensor:
    policy = make_policy(
        name, batch_size=batch_size, num_levels=num_levels, generator=torch.Generator().manual_seed(seed)
    )
    assert policy.num_steps is not None
    return torch.stack([policy.step(t).to_yxs() for t in range(policy.num_steps)])  # [T, B, 3]


def _coverage(yxs: torch.Tensor, grid_size: int = 16) -> torch.Tensor:
    """[G, G] how many of the crops [K, 3] (y, x, scale) cover each cell centre of a G x G grid."""
    cells = grid_coords(grid_size)  # [G, G, 2]
    inside = (cells[None] - yxs[:, None, None, :2]).abs() <= yxs[:, None, None, 2:]  # [K, G, G, 2]
    return inside.all(dim=-1).sum(dim=0)  # [G, G]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_levels_tile_the_scene_exactly_once(level: int) -> None:
    tiles = quadtree_level(level)  # [4^l, 3]
    assert tiles.shape == (4**level, 3)
    torch.testing.assert_close(tiles[:, 2], torch.full((4**level,), 2.0**-level), atol=0, rtol=0)
    assert bool((_coverage(tiles) == 1).all())
    z_tiles = quadtree_level(level, order="z_order")
    assert sorted(map(tuple, z_tiles.tolist())) == sorted(map(tuple, tiles.tolist()))


def test_z_order_nests_quadrants() -> None:
    assert z_order_index(2)[:4].tolist() == [0, 1, 4, 5]  # the top-left quadrant first, row-major inside


@pytest.mark.reference
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_levels_match_the_official_tables(common: dict[str, torch.Tensor], level: int) -> None:
    torch.testing.assert_close(quadtree_level(level), common[f"policy.quadtree_level.{level}"], atol=0, rtol=0)
    torch.testing.assert_close(
        quadtree_level(level, order="z_order"), common[f"policy.quadtree_level_z_order.{level}"], atol=0, rtol=0
    )


@pytest.mark.reference
@pytest.mark.parametrize(("grid_size", "level"), [(4, 0), (4, 1), (4, 2), (8, 0), (8, 1), (8, 2)])
def test_tile_masks_match_the_official_masks(common: dict[str, torch.Tensor], grid_size: int, level: int) -> None:
    expected = common[f"policy.tile_masks.G{grid_size}.level{level}"]
    torch.testing.assert_close(tile_masks(grid_size, level).float(), expected, atol=0, rtol=0)


def test_tile_masks_follow_their_definition_and_partition_the_canvas() -> None:
    grid_size, level = 16, 3
    masks = tile_masks(grid_size, level)  # [64, 16, 16]
    tiles = quadtree_level(level)  # [64, 3]
    cells = grid_coords(grid_size)  # [16, 16, 2]
    by_definition = ((cells[None] - tiles[:, None, None, :2]).abs() <= tiles[:, None, None, 2:]).all(-1)
    assert torch.equal(masks, by_definition)
    assert bool((masks.sum(dim=0) == 1).all())
    with pytest.raises(ValueError, match=r"grid_size must be a positive multiple of 2\^level = 8, got 12"):
        tile_masks(12, 3)


@pytest.mark.parametrize(("name", "levels"), [("C2F", [0, 1, 2]), ("F2C", [2, 1, 0])])
def test_each_level_tiles_the_scene_once_per_item(name: str, levels: list[int]) -> None:
    yxs = _rollout(name, batch_size=4)  # [T, B, 3]
    assert yxs.shape == (21, 4, 3)  # 1 + 4 + 16
    start = 0
    for level in levels:
        block = yxs[start : start + 4**level]  # [4^l, B, 3]
        for item in range(4):
            torch.testing.assert_close(block[:, item, 2], torch.full((4**level,), 2.0**-level), atol=0, rtol=0)
            assert bool((_coverage(block[:, item]) == 1).all()), f"level {level}, item {item}"
        start += 4**level
    assert [level_of_step(t, levels)[0] for t in (0, 20)] == [levels[0], levels[-1]]


def test_items_are_shuffled_independently_and_four_levels_give_85_steps() -> None:
    yxs = _rollout("coarse_to_fine", batch_size=8)
    assert len({tuple(yxs[5:, item].flatten().tolist()) for item in range(8)}) > 1
    assert _rollout("coarse_to_fine", batch_size=1, num_levels=4).shape == (85, 1, 3)


@pytest.mark.parametrize("name", ["coarse_to_fine", "fine_to_coarse"])
def test_seeded_generators_replay_and_reset_draws_a_new_episode(name: str) -> None:
    torch.testing.assert_close(_rollout(name, seed=5), _rollout(name, seed=5), atol=0, rtol=0)
    assert not torch.equal(_rollout(name, seed=5), _rollout(name, seed=6))
    policy = make_policy(name, batch_size=2, generator=torch.Generator().manual_seed(5))
    first = torch.stack([policy.step(t).to_yxs() for t in range(21)])
    policy.reset()
    second = torch.stack([policy.step(t).to_yxs() for t in range(21)])
    assert not torch.equal(first, second)


@pytest.mark.reference
@pytest.mark.parametrize(
    ("name", "key"), [("C2F", "policy.c2f.seed1234.B2.T21"), ("F2C", "policy.f2c.seed1234.B2.T21")]
)
def test_official_seeded_sequences(common: dict[str, torch.Tensor], name: str, key: str) -> None:
    # The official draws go level by level in visiting order (C2F coarse first, F2C fine first).
    torch.testing.assert_close(_rollout(name, seed=1234), common[key], atol=1e-6, rtol=0)


def test_bad_inputs() -> None:
    policy = make_policy("C2F", batch_size=2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"step t=21 is beyond the policy's length of 21 steps"):
        policy.step(21)
    with pytest.raises(ValueError, match=r"step index t must be >= 0, got -1"):
        policy.step(-1)
    with pytest.raises(TypeError, match=r"step index t must be an int, got float"):
        policy.step(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_levels must be an int >= 1, got 0"):
        make_policy("F2C", batch_size=2, num_levels=0)
    with pytest.raises(ValueError, match=r"order must be 'row_major' or 'z_order', got 'spiral'"):
        quadtree_level(1, order="spiral")  # type: ignore[arg-type]
