"""What the kitchen sends: a ticket version as screens show it, and an order's status for tablets.

Pure functions of the records (:mod:`gateway.routing.records`); the kitchen decides when.
"""

from __future__ import annotations

import functools
import json.encoder
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from gateway.contract import OrderState, TicketStatus
from gateway.routing.records import EXPO, SendStatus

if TYPE_CHECKING:
    from uuid import UUID

    from gateway.contract import Money
    from gateway.routing.records import OrderRecord, TicketState

__all__ = ["accepted_reply", "is_live", "render_ticket", "status_update", "ticket_status"]


def is_live(rec: OrderRecord, t: TicketState) -> bool:
    """Whether the ticket shows a line that is not voided."""
    # ``lines_of`` inlined, stopping at the first live line: this runs for every ticket on
    # every new version and status, and building the list was measurable.
    station, course = t.station, t.course
    expo = station == EXPO
    for ln in rec.lines:
        if not ln.voided and (
            expo or (ln.course == course and (ln.station == station or station in ln.also))
        ):
            return True
    return False


def ticket_status(rec: OrderRecord, t: TicketState) -> TicketStatus:
    """The status a new version of ``t`` carries."""
    if not is_live(rec, t):
        return TicketStatus.VOIDED
    if t.station != EXPO:
        return TicketStatus.FIRED
    if rec.state is OrderState.READY:
        return TicketStatus.READY
    if any(f is None for f in rec.course_fire.values()):
        return TicketStatus.HELD
    return TicketStatus.FIRED


def render_ticket(rec: OrderRecord, t: TicketState) -> bytes:
    """The ticket's current version as sent (``t.version_at`` must be set), lines in firing order.

    The compact JSON of a :class:`~gateway.contract.Ticket`, byte for byte what
    ``Ticket(...).model_dump_json()`` gives (a property test holds it to that), written
    directly: validating a model the kitchen built from checked state and then serialising it
    cost ~18 us per version, most of a ticket's share of the gateway's time per order.
    """
    base = t.version_at
    assert base is not None
    lines = sorted(rec.lines_of(t), key=lambda x: (x.fire_at or base, x.line_id))
    first: datetime | None = None
    items = []
    for ln in lines:
        fire_at = ln.fire_at or base
        if not ln.voided and (first is None or fire_at < first):
            first = fire_at
        items.append(
            f'{{"line_id":{_s(ln.line_id)},"item":{_s(ln.item)},"name":{_s(ln.name)},'
            f'"qty":{int(ln.qty)},"modifiers":[{",".join(map(_s, ln.modifiers))}],'
            f'"note":{_null if ln.note is None else _s(ln.note)},"course":{int(ln.course)},'
            f'"station":{_s(ln.station)},"fire_at":{_time(fire_at)},'
            f'"voided":{_bool[ln.voided]},"done":{_bool[ln.done]}}}'
        )
    course = _null if t.course is None else str(int(t.course))
    moved = _null if t.redirected_from is None else _s(t.redirected_from)
    return (
        f'{{"v":1,"ticket_id":"{t.ticket_id}","version":{int(t.version)},'
        f'"order_id":"{rec.order_id}","table":{_s(rec.table)},"station":{_s(t.target)},'
        f'"course":{course},"dining":{_s(rec.dining.value)},"items":[{",".join(items)}],'
        f'"fire_at":{_time(first or base)},"status":{_s(t.status.value)},'
        f'"redirected_from":{moved},"sent_at":{_time(base)}}}'
    ).encode()


def status_update(rec: OrderRecord, now: datetime) -> SendStatus:
    """The order's state and which prep stations are done, as of ``now``.

    Written as the JSON of an :class:`~gateway.contract.OrderStatusUpdate`, byte for byte (a
    property test holds it to that), for the reason ``render_ticket`` gives.
    """
    prep = [t for t in rec.tickets if t.station != EXPO and is_live(rec, t)]
    done = ",".join(map(_s, sorted({t.station for t in prep if t.bumped})))
    still = ",".join(map(_s, sorted({t.station for t in prep if not t.bumped})))
    body = (
        f'{{"v":1,"order_id":"{rec.order_id}","table":{_s(rec.table)},'
        f'"state":{_s(rec.state.value)},"stations_done":[{done}],"stations_open":[{still}],'
        f'"at":{_time(now)}}}'
    ).encode()
    return SendStatus(rec.order_id, body)


def accepted_reply(order_id: UUID, total: Money) -> bytes:
    """The reply to an accepted order: the JSON of an :class:`~gateway.contract.OrderReply`."""
    return (
        f'{{"v":1,"order_id":"{order_id}","status":"accepted","errors":[],'
        f'"total":{{"amount":{int(total.amount)},"currency":{_s(total.currency)}}}}}'
    ).encode()


# --- JSON as pydantic writes it ----------------------------------------------------------------

# A JSON string with the escapes pydantic's serializer uses (quote, backslash, control
# characters; everything else as UTF-8). C-implemented.
_s = json.encoder.encode_basestring
_null = "null"
_bool = {False: "false", True: "true"}
_ZERO = timedelta(0)
_DATETIME = TypeAdapter(datetime)


def _time(at: datetime) -> str:
    """A datetime as pydantic writes it: ISO 8601, ``Z`` for UTC."""
    # The offset is part of the key: the same instant in another zone is written differently.
    return _time_in(at, at.utcoffset())


# A batch writes the same few instants many times (a version's sent_at is its lines' fire_at,
# the order's statuses share it); formatting one cost ~2-3 us.
@functools.lru_cache(maxsize=512)
def _time_in(at: datetime, offset: timedelta | None) -> str:
    if offset == _ZERO:
        return f'"{at.replace(tzinfo=None).isoformat()}Z"'
    # Not the kitchen's clock (always UTC): let pydantic write it.
    return _DATETIME.dump_json(at).decode()
