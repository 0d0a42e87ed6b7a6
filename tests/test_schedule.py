"""saccade._schedule.warmup_cosine: the values nanoGPT's get_lr would give."""

from __future__ import annotations

import pytest

from saccade._schedule import warmup_cosine


def test_linear_warmup_then_half_a_cosine_then_zero():
    schedule = {"warmup_steps": 10, "total_steps": 110, "peak": 2.0, "start": 0.2}
    assert warmup_cosine(0, **schedule) == 0.2
    assert warmup_cosine(5, **schedule) == pytest.approx(1.1)
    assert warmup_cosine(10, **schedule) == 2.0
    assert warmup_cosine(60, **schedule) == pytest.approx(1.0)
    assert warmup_cosine(110, **schedule) == pytest.approx(0.0, abs=1e-15)
    assert warmup_cosine(500, **schedule) == pytest.approx(0.0, abs=1e-15)


def test_defaults_give_a_multiplier_and_no_warmup_starts_at_the_peak():
    assert warmup_cosine(0, warmup_steps=0, total_steps=4) == 1.0
    assert [warmup_cosine(s, warmup_steps=0, total_steps=4) for s in range(5)] == pytest.approx(
        [1.0, 0.8535534, 0.5, 0.1464466, 0.0], abs=1e-7
    )


def test_warmup_longer_than_the_run_never_decays():
    assert warmup_cosine(3, warmup_steps=10, total_steps=2, start=0.1) == pytest.approx(0.37)
