"""Tickets written as JSON directly: the same bytes as the contract's pydantic model writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Dining
from gateway.contract import OrderState, Ticket, TicketItem, TicketStatus
from gateway.routing.records import EXPO, LineState, OrderRecord, TicketState
from gateway.routing.render import is_live, render_ticket

T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
STATIONS = ["grill", "fry", "cold", EXPO]


def reference(rec: OrderRecord, t: TicketState) -> Ticket:
    """The ticket as the contract's models build it: what ``render_ticket`` must write."""
    base = t.version_at
    assert base is not None
    lines = sorted(rec.lines_of(t), key=lambda x: (x.fire_at or base, x.line_id))
    items = [
        TicketItem(
            line_id=ln.line_id,
            item=ln.item,
            name=ln.name,
            qty=ln.qty,
            modifiers=list(ln.modifiers),
            note=ln.note,
            course=ln.course,
            station=ln.station,
            fire_at=ln.fire_at or base,
            voided=ln.voided,
            done=ln.done,
        )
        for ln in lines
    ]
    return Ticket(
        ticket_id=t.ticket_id,
        version=t.version,
        order_id=rec.order_id,
        table=rec.table,
        station=t.target,
        course=t.course,
        dining=rec.dining,
        items=items,
        fire_at=min((i.fire_at for i in items if not i.voided), default=base),
        status=t.status,
        redirected_from=t.redirected_from,
        sent_at=base,
    )


# Any text where people type (names, notes, tables): quotes, backslashes, control characters,
# non-ASCII. Surrogates cannot come from JSON decoded by pydantic, nor from TOML.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
zones = st.sampled_from(
    [UTC, timezone.utc, timezone(timedelta(0), "GMT"), timezone(timedelta(hours=5, minutes=30))]
)
times = st.builds(
    lambda s, us, tz: (T0 + timedelta(seconds=s, microseconds=us)).astimezone(tz),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, 120_000, 999_999]) | st.integers(0, 999_999),
    zones,
)


@st.composite
def records(draw: st.DrawFn) -> tuple[OrderRecord, TicketState]:
    lines = [
        LineState(
            line_id=f"L{k}",
            item=draw(st.sampled_from(["calamari", "soup", "x.y-z_1"])),
            name=draw(text),
            qty=draw(st.integers(1, 10**6)),
            modifiers=tuple(draw(st.lists(st.sampled_from(["no_salt", "extra", "gf"])))),
            note=draw(st.none() | text),
            course=draw(st.integers(1, 4)),
            station=draw(st.sampled_from(STATIONS[:3])),
            also=tuple(draw(st.lists(st.sampled_from(STATIONS[:3]), max_size=2))),
            prep_s=60,
            fire_at=draw(st.none() | times),
            voided=draw(st.booleans()),
            done=draw(st.booleans()),
        )
        for k in range(draw(st.integers(0, 6)))
    ]
    rec = OrderRecord(
        order_id=draw(st.uuids()),
        device="tab-1",
        table=draw(text),
        dining=draw(st.sampled_from(list(Dining))),
        accepted_at=T0,
        lines=lines,
        course_fire={},
        state=draw(st.sampled_from(list(OrderState))),
    )
    station = draw(st.sampled_from(STATIONS))
    t = TicketState(
        ticket_id=draw(st.uuids()),
        station=station,
        course=None if station == EXPO else draw(st.integers(1, 4)),
        target=draw(st.sampled_from(STATIONS)),
        version=draw(st.integers(1, 10**4)),
        version_at=draw(times),
        redirected_from=draw(st.none() | st.sampled_from(STATIONS)),
        status=draw(st.sampled_from(list(TicketStatus))),
    )
    return rec, t


@settings(max_examples=400, deadline=None)
@given(case=records())
def test_render_ticket_writes_what_the_model_writes(case: tuple[OrderRecord, TicketState]) -> None:
    rec, t = case
    body = render_ticket(rec, t)
    assert body == reference(rec, t).model_dump_json().encode()
    assert Ticket.model_validate_json(body) == reference(rec, t)


@settings(max_examples=300, deadline=None)
@given(case=records())
def test_is_live_is_whether_the_ticket_shows_a_line_not_voided(
    case: tuple[OrderRecord, TicketState],
) -> None:
    rec, t = case
    assert is_live(rec, t) == any(not ln.voided for ln in rec.lines_of(t))
