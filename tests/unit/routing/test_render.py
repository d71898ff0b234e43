"""What the kitchen sends, written directly: the same bytes as the contract's models, same ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, RFC_4122, uuid5
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract import (
    Dining,
    Money,
    OrderReply,
    OrderState,
    OrderStatusUpdate,
    ReplyStatus,
    Ticket,
    TicketItem,
    TicketStatus,
)
from gateway.routing.records import (
    EXPO,
    RECORD,
    LineState,
    OrderRecord,
    TicketState,
    snapshot,
    ticket_ids_for,
)
from gateway.routing.render import accepted_reply, is_live, render_ticket, status_update

if TYPE_CHECKING:
    from uuid import UUID

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
    [
        UTC,
        ZoneInfo("Europe/London"),  # offset 0 in winter, +1 in summer
        timezone(timedelta(0), "GMT"),
        timezone(timedelta(hours=5, minutes=30)),
    ]
)
times = st.builds(
    lambda s, us, tz: (T0 + timedelta(seconds=s, microseconds=us)).astimezone(tz),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, 120_000, 999_999]) | st.integers(0, 999_999),
    zones,
)


@st.composite
def tickets(draw: st.DrawFn) -> TicketState:
    station = draw(st.sampled_from(STATIONS))
    return TicketState(
        ticket_id=draw(st.uuids()),
        station=station,
        course=None if station == EXPO else draw(st.integers(1, 4)),
        target=draw(st.sampled_from(STATIONS)),
        version=draw(st.integers(1, 10**4)),
        version_at=draw(times),
        acked=draw(st.integers(0, 10**4)),
        bumped=draw(st.booleans()),
        redirected_from=draw(st.none() | st.sampled_from(STATIONS)),
        status=draw(st.sampled_from(list(TicketStatus))),
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
        device=draw(text),
        table=draw(text),
        dining=draw(st.sampled_from(list(Dining))),
        accepted_at=draw(times),
        lines=lines,
        state=draw(st.sampled_from(list(OrderState))),
        tickets=draw(st.lists(tickets(), max_size=5)),
        course_fire=draw(st.dictionaries(st.integers(-3, 10**6), st.none() | times, max_size=4)),
        seq=draw(st.integers(0, 2**62)),
    )
    t = draw(st.sampled_from(rec.tickets)) if rec.tickets else draw(tickets())
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


@settings(max_examples=300, deadline=None)
@given(case=records(), now=times)
def test_status_update_writes_what_the_model_writes(
    case: tuple[OrderRecord, TicketState], now: datetime
) -> None:
    rec, _ = case
    prep = [t for t in rec.tickets if t.station != EXPO and is_live(rec, t)]
    expected = OrderStatusUpdate(
        order_id=rec.order_id,
        table=rec.table,
        state=rec.state,
        stations_done=sorted({t.station for t in prep if t.bumped}),
        stations_open=sorted({t.station for t in prep if not t.bumped}),
        at=now,
    )
    sent = status_update(rec, now)
    assert sent.order_id == rec.order_id
    assert sent.body == expected.model_dump_json().encode()
    assert sent.update == expected


@settings(max_examples=200, deadline=None)
@given(order_id=st.uuids(), amount=st.integers(0, 10**12), currency=text)
def test_accepted_reply_writes_what_the_model_writes(
    order_id: UUID, amount: int, currency: str
) -> None:
    total = Money(amount=amount, currency=currency)
    expected = OrderReply(order_id=order_id, status=ReplyStatus.ACCEPTED, total=total)
    assert accepted_reply(order_id, total) == expected.model_dump_json().encode()


@settings(max_examples=300, deadline=None)
@given(
    order_id=st.uuids(),
    places=st.lists(st.tuples(text, st.none() | st.integers(-5, 10**6)), max_size=5),
)
def test_ticket_ids_are_the_uuid5_of_order_station_and_course(
    order_id: UUID, places: list[tuple[str, int | None]]
) -> None:
    ids = ticket_ids_for(order_id, places)
    assert ids == [uuid5(NAMESPACE_URL, f"ticket:{order_id}/{s}/{c}") for s, c in places]
    assert all(i.version == 5 and i.variant == RFC_4122 for i in ids)


@settings(max_examples=300, deadline=None)
@given(case=records())
def test_snapshot_writes_what_the_record_adapter_writes(
    case: tuple[OrderRecord, TicketState],
) -> None:
    rec, _ = case
    for t in rec.tickets:
        t.sent_body = b"{}"  # kept apart from snapshots
    body = snapshot(rec)
    assert body == RECORD.dump_json(rec)
    back = RECORD.validate_json(body)
    assert snapshot(back) == body
