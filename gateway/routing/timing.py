"""When each line starts: fire by prep time within a course, and when each course fires.

Pure functions of their arguments (``schedule_lines`` sets the fire times on the order's lines):
the caller passes the time an order was accepted or a course fired, so tests need no clock and a
restart recomputes exactly the same schedule.

Fire by prep time: within a course, the line with the longest prep starts as soon as the course
fires and every other line waits ``max_prep - its prep`` seconds, so a table's dishes finish
together instead of the salad wilting while the steak cooks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from gateway.config import Course
    from gateway.routing.orders import PricedLine
    from gateway.routing.records import OrderRecord, TicketState

__all__ = [
    "course_fire_times",
    "fire_offsets",
    "line_fire_times",
    "schedule_lines",
    "ticket_fire_at",
]


def fire_offsets(prep_times: Sequence[int]) -> list[int]:
    """Seconds after its course fires at which each line should start, so all finish together.

    Args:
        prep_times: each line's prep time in seconds (``PricedLine.prep_s``, never negative).

    Returns:
        One offset per line, in the same order: 0 for the longest prep, ``max - prep`` for the rest.
        A negative prep time counts as 0 (a line cannot finish before it starts).
    """
    preps = [max(0, p) for p in prep_times]
    longest = max(preps, default=0)
    return [longest - p for p in preps]


def course_fire_times(
    courses_in_order: Collection[int], cfg_courses: Sequence[Course], accepted_at: datetime
) -> dict[int, datetime | None]:
    """When each course of an order fires, or None while it is held for a server's ``fire_course``.

    The lowest course in the order fires at once. Each later course fires ``auto_fire_after_s``
    (its own setting) after the previous course *in this order* fires, if that is set and the
    previous course has a time; otherwise it is held. A course the site does not define has no
    gap, so it is held (the validator rejects unknown courses before they get here).

    Args:
        courses_in_order: the course numbers the order's lines use (duplicates are fine).
        cfg_courses: the site's courses.
        accepted_at: when the gateway accepted the order.

    Returns:
        Course number to fire time (None = held), for exactly the courses in the order.
    """
    gaps = {c.number: c.auto_fire_after_s for c in cfg_courses}
    fire: dict[int, datetime | None] = {}
    previous: datetime | None = None
    for n, course in enumerate(sorted(set(courses_in_order))):
        gap = gaps.get(course)
        at: datetime | None
        if n == 0:
            at = accepted_at
        elif previous is None or gap is None:
            at = None
        else:
            at = previous + timedelta(seconds=gap)
        fire[course] = at
        previous = at
    return fire


def line_fire_times(lines: Sequence[PricedLine], course_fired_at: datetime) -> dict[str, datetime]:
    """Fire time of every line of one course, by prep time.

    Args:
        lines: the lines of one course (their ``prep_s`` already includes modifiers).
        course_fired_at: when the course fired.

    Returns:
        ``line_id`` to the time the line should start.

    Raises:
        ValueError: the lines belong to more than one course (a caller bug that would otherwise
            time dishes of different courses to finish together).
    """
    courses = {ln.course for ln in lines}
    if len(courses) > 1:
        msg = f"lines of one course expected, got courses {sorted(courses)}"
        raise ValueError(msg)
    offsets = fire_offsets([ln.prep_s for ln in lines])
    return {
        ln.line_id: course_fired_at + timedelta(seconds=off)
        for ln, off in zip(lines, offsets, strict=True)
    }


def schedule_lines(rec: OrderRecord, now: datetime | None = None) -> set[str]:
    """(Re)compute the fire times of an order's lines; returns the ids of those that changed.

    Offsets come from every live line of the course (a voided dish must not hold back the
    others), but a line that has already started (its fire time is past ``now``) keeps it.
    """
    changed: set[str] = set()
    for course, fired_at in rec.course_fire.items():
        lines = [ln for ln in rec.lines if ln.course == course and not ln.voided]
        if fired_at is None:
            times: list[datetime | None] = [None] * len(lines)
        else:
            offsets = fire_offsets([ln.prep_s for ln in lines])
            times = [fired_at + timedelta(seconds=o) for o in offsets]
        for ln, at in zip(lines, times, strict=True):
            started = now is not None and ln.fire_at is not None and ln.fire_at <= now
            if not started and ln.fire_at != at:
                ln.fire_at = at
                changed.add(ln.line_id)
    return changed


def ticket_fire_at(rec: OrderRecord, t: TicketState) -> datetime | None:
    """When a ticket's first live line fires (None if none is scheduled: a held course)."""
    times = [ln.fire_at for ln in rec.lines_of(t) if not ln.voided and ln.fire_at]
    return min(times, default=None)
