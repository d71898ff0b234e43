"""Backoff: doubling, capped, jittered down by at most half."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.transport.backoff import Backoff


def test_doubles_up_to_the_cap_with_extreme_jitter() -> None:
    low = Backoff(0.1, 1.0, rand=lambda: 0.0)
    high = Backoff(0.1, 1.0, rand=lambda: 0.999999)
    lows = [round(low.next(), 3) for _ in range(6)]
    highs = [round(high.next(), 3) for _ in range(6)]
    assert lows == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert highs == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


@given(
    initial=st.floats(0.001, 10),
    factor=st.floats(1, 100),
    rands=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=30),
)
def test_every_delay_is_within_half_and_full_of_the_capped_step(
    initial: float, factor: float, rands: list[float]
) -> None:
    cap = initial * factor
    it = iter(rands)
    backoff = Backoff(initial, cap, rand=lambda: next(it))
    step = initial
    for _ in rands:
        delay = backoff.next()
        assert step / 2 <= delay <= step
        step = min(2 * step, cap)


@pytest.mark.parametrize(("initial", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_nonsense_is_refused(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial, cap)
