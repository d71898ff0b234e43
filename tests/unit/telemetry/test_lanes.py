"""The sink's two-lane cursor: every reading written exactly once, the backlog in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.telemetry.lanes import Cursor


def test_a_cursor_keeps_its_order() -> None:
    with pytest.raises(ValueError, match="done <= split <= live"):
        Cursor(5, 3, 9)


def test_nothing_pending_plans_nothing() -> None:
    cur, take = Cursor(7, 7, 7).plan(head=7, split_after=100, last=None)
    assert take is None
    assert cur == Cursor(7, 7, 7)


def test_a_small_lag_stays_one_lane() -> None:
    cur, take = Cursor(10, 10, 10).plan(head=50, split_after=100, last=None)
    assert not cur.splitting
    assert take is not None
    assert (take.lane, take.after, take.upto) == ("live", 10, 50)
    assert cur.advance(take, 50) == Cursor(50, 50, 50)


def test_a_long_lag_splits_and_the_lanes_alternate() -> None:
    cur, take = Cursor(0, 0, 0).plan(head=1000, split_after=100, last=None)
    assert cur == Cursor(0, 1000, 1000)
    assert take is not None
    assert take.lane == "backlog"  # nothing live yet: the backlog goes
    cur = cur.advance(take, 100)
    cur, take = cur.plan(head=1010, split_after=100, last="backlog")
    assert take is not None
    assert (take.lane, take.after, take.upto) == ("live", 1000, 1010)
    cur = cur.advance(take, 1010)
    assert cur.delivered(1005)
    assert not cur.delivered(500)
    cur, take = cur.plan(head=1020, split_after=100, last="live")
    assert take is not None
    assert (take.lane, take.after, take.upto) == ("backlog", 100, 1000)
    assert cur.advance(take, 1000) == Cursor(1010, 1010, 1010)  # the lanes join


@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(1, 150), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 300),
)
def test_every_seq_is_written_once_and_the_backlog_in_order(
    steps: list[tuple[int, int, bool]], split_after: int
) -> None:
    cur, head, last = Cursor(), 0, None
    written: list[int] = []
    backlog: list[int] = []
    for arrive, limit, _ in [*steps, *[(0, 10_000, False)] * 10]:
        head += arrive
        cur, take = cur.plan(head, split_after, last)
        if take is None:
            continue
        got = list(range(take.after + 1, take.upto + 1))[:limit]
        through = take.upto if len(got) < limit else got[-1]
        for seq in got:
            assert not cur.delivered(seq)
        written += got
        if take.lane == "backlog":
            backlog += got
        cur = cur.advance(take, through)
        last = take.lane
        for seq in got:
            assert cur.delivered(seq)
    assert sorted(written) == list(range(1, head + 1))
    assert backlog == sorted(backlog)
    assert cur == Cursor(head, head, head)
