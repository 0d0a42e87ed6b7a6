"""saccade._checks: the value back when it fits, one error text when it does not."""

from __future__ import annotations

import pytest

from saccade._checks import non_negative_int, positive_int


def test_accepted_values_come_back():
    assert positive_int("steps", 3) == 3
    assert non_negative_int("warmup_steps", 0) == 0


@pytest.mark.parametrize("value", [0, -1, 1.0, "2", True, None])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match=rf"^ViTSpec\.num_blocks must be a positive int, got {value!r}$"):
        positive_int("ViTSpec.num_blocks", value)


@pytest.mark.parametrize("value", [-1, 0.0, False])
def test_non_negative_int_refuses(value):
    with pytest.raises(ValueError, match=rf"^num_prefix_tokens must be a non-negative int, got {value!r}$"):
        non_negative_int("num_prefix_tokens", value)
