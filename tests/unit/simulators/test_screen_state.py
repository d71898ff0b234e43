"""What a screen shows: dedupe by (ticket_id, version), replace, stale, bounded memory; prep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from gateway.contract import KdsAction, Ticket, TicketItem, TicketStatus
from gateway.site_file import load_site
from simulators.cli import find_config
from simulators.screen_state import PrepTimes, RecentChanges, StationBoard, Verdict

T0 = datetime(2026, 1, 1, 19, 0, tzinfo=UTC)


def make(
    version: int,
    ticket_id: UUID,
    status: TicketStatus = TicketStatus.FIRED,
    lines: list[TicketItem] | None = None,
) -> Ticket:
    lines = lines or [
        TicketItem(
            line_id="L1",
            item="burger",
            name="Burger",
            qty=1,
            modifiers=[],
            course=2,
            station="grill",
            fire_at=T0,
        )
    ]
    return Ticket(
        ticket_id=ticket_id,
        version=version,
        order_id=uuid4(),
        table="T1",
        station="grill",
        course=2,
        dining="dine_in",
        items=lines,
        fire_at=T0,
        status=status,
        sent_at=T0,
    )


def test_versions_new_duplicate_update_stale() -> None:
    board = StationBoard()
    tid = uuid4()
    assert board.offer(make(1, tid)) is Verdict.NEW
    assert board.offer(make(1, tid)) is Verdict.DUPLICATE
    assert board.offer(make(3, tid)) is Verdict.UPDATE
    assert board.offer(make(2, tid)) is Verdict.STALE
    assert board.offer(make(3, tid)) is Verdict.DUPLICATE
    assert board.open[tid].version == 3


def test_bumped_ticket_is_remembered_and_reopened_by_a_newer_version() -> None:
    board = StationBoard()
    tid = uuid4()
    board.offer(make(1, tid))
    assert board.close(tid) is not None
    assert board.close(tid) is None
    assert board.offer(make(1, tid)) is Verdict.DUPLICATE  # a late resend is not shown again
    assert board.offer(make(2, tid)) is Verdict.UPDATE
    assert tid in board.open


def test_voided_version_closes_the_ticket() -> None:
    board = StationBoard()
    tid = uuid4()
    board.offer(make(1, tid))
    assert board.offer(make(2, tid, TicketStatus.VOIDED)) is Verdict.UPDATE
    assert tid not in board.open
    assert board.version(tid) == 2


def test_closed_memory_is_bounded() -> None:
    board = StationBoard(max_closed=2)
    ids = [uuid4() for _ in range(3)]
    for tid in ids:
        board.offer(make(1, tid))
        board.close(tid)
    assert board.version(ids[0]) is None  # purged, like a real screen after ~800 orders
    assert board.version(ids[2]) == 1


def test_recent_changes_keep_the_latest_per_ticket_and_per_line() -> None:
    board = StationBoard()
    a, b = uuid4(), uuid4()
    board.offer(make(1, a))
    board.offer(make(1, b))
    changes = RecentChanges()
    changes.note(a, 1, KdsAction.ITEM_DONE, "L1", at=1.0)
    changes.note(a, 1, KdsAction.BUMP, None, at=2.0)
    changes.note(b, 1, KdsAction.BUMP, None, at=3.0)
    changes.note(a, 1, KdsAction.RECALL, None, at=4.0)  # replaces a's bump
    assert changes.to_send_again(board, since=0.0) == [
        (a, 1, KdsAction.ITEM_DONE, "L1"),
        (b, 1, KdsAction.BUMP, None),
        (a, 1, KdsAction.RECALL, None),
    ]
    # Only what was done since the given time.
    assert changes.to_send_again(board, since=3.0) == [
        (b, 1, KdsAction.BUMP, None),
        (a, 1, KdsAction.RECALL, None),
    ]


def test_a_change_to_a_replaced_version_is_not_sent_again() -> None:
    board = StationBoard()
    tid = uuid4()
    board.offer(make(1, tid))
    changes = RecentChanges()
    changes.note(tid, 1, KdsAction.BUMP, None, at=1.0)
    board.close(tid)
    assert changes.to_send_again(board, since=0.0) == [(tid, 1, KdsAction.BUMP, None)]
    board.offer(make(2, tid))  # more food: the v1 bump no longer counts
    assert changes.to_send_again(board, since=0.0) == []


def test_recent_changes_are_bounded() -> None:
    board = StationBoard()
    ids = [uuid4() for _ in range(3)]
    changes = RecentChanges(max_changes=2)
    for n, tid in enumerate(ids):
        board.offer(make(1, tid))
        changes.note(tid, 1, KdsAction.BUMP, None, at=float(n))
    assert len(changes) == 2
    assert [c[0] for c in changes.to_send_again(board, since=0.0)] == ids[1:]


def test_prep_times_follow_fire_at_and_modifiers() -> None:
    prep = PrepTimes.from_site(load_site(find_config(Path("examples/demo-site.toml"))))
    lines = [
        TicketItem(
            line_id="L1",
            item="ribeye",
            name="Ribeye",
            qty=1,
            modifiers=["rare"],
            course=2,
            station="grill",
            fire_at=T0,
        ),
        TicketItem(
            line_id="L2",
            item="burger",
            name="Burger",
            qty=1,
            modifiers=[],
            course=2,
            station="grill",
            fire_at=T0 + timedelta(seconds=300),
        ),
        TicketItem(
            line_id="L3",
            item="chicken",
            name="Chicken",
            qty=1,
            modifiers=[],
            course=2,
            station="grill",
            fire_at=T0,
            voided=True,
        ),
        TicketItem(
            line_id="L4",
            item="mystery",
            name="?",
            qty=1,
            modifiers=[],
            course=2,
            station="grill",
            fire_at=T0,
        ),
    ]
    done = prep.line_done_after(make(1, uuid4(), lines=lines))
    assert done == {"L1": 900 - 120, "L2": 300 + 600, "L4": 300}
