"""Fire by prep time and course timing (gateway.routing.timing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Course
from gateway.contract import Dining, OrderLine, OrderRequest
from gateway.routing.orders import OrderValidator, PricedLine, PricedOrder
from gateway.routing.rules import RouteTable
from gateway.routing.timing import course_fire_times, fire_offsets, line_fire_times
from gateway.site_file import load_site

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-site.toml"
T0 = datetime(2026, 1, 1, 19, 0, tzinfo=UTC)
DEMO_COURSES = (
    Course(number=1, name="starters"),
    Course(number=2, name="mains", auto_fire_after_s=900),
    Course(number=3, name="desserts"),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@cache
def validator() -> OrderValidator:
    cfg = load_site(DEMO)
    return OrderValidator(cfg, RouteTable(cfg))


def priced(*lines: tuple[str, tuple[str, ...]]) -> tuple[PricedLine, ...]:
    req = OrderRequest(
        order_id=uuid4(),
        table="T1",
        items=[
            OrderLine(line_id=f"L{n}", item=item, qty=1, modifiers=list(mods))
            for n, (item, mods) in enumerate(lines)
        ],
        placed_at=T0,
        dining=Dining.DINE_IN,
    )
    result = validator().validate(req)
    assert isinstance(result, PricedOrder), result
    return result.lines


# --- fire_offsets --------------------------------------------------------------------------


def test_longest_prep_starts_first_and_the_rest_wait() -> None:
    assert fire_offsets([900, 240, 600]) == [0, 660, 300]


def test_edge_cases() -> None:
    assert fire_offsets([]) == []
    assert fire_offsets([300]) == [0]
    assert fire_offsets([0, 0]) == [0, 0]
    assert fire_offsets([120, 120, 60]) == [0, 0, 60]


def test_negative_prep_counts_as_zero() -> None:
    assert fire_offsets([-60, 120]) == [120, 0]


@given(st.lists(st.integers(0, 4 * 3600), max_size=50))
def test_offsets_make_every_line_finish_together(preps: list[int]) -> None:
    offsets = fire_offsets(preps)
    assert len(offsets) == len(preps)
    assert all(o >= 0 for o in offsets)
    if preps:
        assert len({o + p for o, p in zip(offsets, preps, strict=True)}) == 1
        assert offsets[preps.index(max(preps))] == 0
        assert min(offsets) == 0


# --- course_fire_times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("courses", "expected"),
    [
        ({1, 2, 3}, {1: T0, 2: at(900), 3: None}),
        ({1, 2}, {1: T0, 2: at(900)}),
        ({2, 3}, {2: T0, 3: None}),  # the lowest course present fires at once, even mains
        ({1, 3}, {1: T0, 3: None}),  # desserts have no gap: held for fire_course
        ({3}, {3: T0}),
        ([2, 2, 1, 1], {1: T0, 2: at(900)}),
        (set(), {}),
    ],
)
def test_demo_courses(courses: set[int], expected: dict[int, datetime | None]) -> None:
    assert course_fire_times(courses, DEMO_COURSES, T0) == expected


def test_gap_is_counted_from_the_previous_course_present() -> None:
    courses = [
        Course(number=1, name="a"),
        Course(number=2, name="b", auto_fire_after_s=600),
        Course(number=3, name="c", auto_fire_after_s=300),
    ]
    assert course_fire_times({1, 2, 3}, courses, T0) == {1: T0, 2: at(600), 3: at(900)}
    # Course 2 absent: course 3 counts its gap from course 1.
    assert course_fire_times({1, 3}, courses, T0) == {1: T0, 3: at(300)}


def test_a_held_course_holds_every_later_one() -> None:
    courses = [
        Course(number=1, name="a"),
        Course(number=2, name="b"),
        Course(number=3, name="c", auto_fire_after_s=300),
    ]
    assert course_fire_times({1, 2, 3}, courses, T0) == {1: T0, 2: None, 3: None}


def test_zero_gap_fires_with_the_previous_course() -> None:
    courses = [Course(number=1, name="a"), Course(number=2, name="b", auto_fire_after_s=0)]
    assert course_fire_times({1, 2}, courses, T0) == {1: T0, 2: T0}


def test_unknown_course_is_held_unless_it_is_the_first() -> None:
    assert course_fire_times({1, 7}, DEMO_COURSES, T0) == {1: T0, 7: None}
    assert course_fire_times({7}, DEMO_COURSES, T0) == {7: T0}


_courses = st.lists(
    st.builds(
        Course,
        number=st.integers(1, 9),
        name=st.just("c"),
        auto_fire_after_s=st.none() | st.floats(0, 7200),
    ),
    max_size=9,
    unique_by=lambda c: c.number,
)


@given(st.sets(st.integers(1, 9), min_size=1), _courses)
def test_lowest_course_is_never_held_and_times_only_move_forward(
    present: set[int], courses: list[Course]
) -> None:
    fire = course_fire_times(present, courses, T0)
    assert set(fire) == present
    assert fire[min(present)] == T0
    gaps = {c.number: c.auto_fire_after_s for c in courses}
    previous: datetime | None = T0
    for n in sorted(present)[1:]:
        current = fire[n]
        if previous is None or gaps.get(n) is None:
            assert current is None  # held, and holds everything after it
        else:
            assert current is not None
            assert current >= previous
        previous = current


# --- line_fire_times -----------------------------------------------------------------------


def test_line_fire_times_for_a_course() -> None:
    ribeye, burger, salmon = priced(("ribeye", ()), ("burger", ("rare",)), ("salmon", ()))
    fire = line_fire_times([ribeye, burger, salmon], at(900))
    # ribeye 900 s, burger 600 - 120 (rare) = 480 s, salmon 540 s: all done at 1800 s.
    assert fire == {"L0": at(900), "L1": at(900 + 420), "L2": at(900 + 360)}


def test_a_modifier_changes_when_a_line_fires() -> None:
    rare, well_done = priced(("ribeye", ("rare",)), ("ribeye", ("well_done",)))
    assert (rare.prep_s, well_done.prep_s) == (780, 1080)
    assert line_fire_times([rare, well_done], T0) == {"L0": at(300), "L1": T0}


def test_no_lines_no_times() -> None:
    assert line_fire_times([], T0) == {}


def test_lines_of_several_courses_are_refused() -> None:
    soup, ribeye = priced(("soup", ()), ("ribeye", ()))
    with pytest.raises(ValueError, match="one course"):
        line_fire_times([soup, ribeye], T0)


@given(st.lists(st.integers(0, 3600), min_size=1, max_size=20))
def test_every_line_of_a_course_finishes_together(preps: list[int]) -> None:
    (template,) = priced(("water", ()))
    lines = [replace(template, line_id=f"L{n}", prep_s=p) for n, p in enumerate(preps)]
    fire = line_fire_times(lines, T0)
    finish = {fire[ln.line_id] + timedelta(seconds=ln.prep_s) for ln in lines}
    assert finish == {at(max(preps))}
    assert min(fire.values()) == T0
