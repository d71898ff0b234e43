"""What the kitchen sends: a ticket version as screens show it, and an order's status for tablets.

Pure functions of the records (:mod:`gateway.routing.records`); the kitchen decides when.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.contract import OrderState, TicketStatus
from gateway.routing.jsonw import BOOL, opt_int, opt_str, string, time
from gateway.routing.records import EXPO, SendStatus

if TYPE_CHECKING:
    from datetime import datetime
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
            f'{{"line_id":{string(ln.line_id)},"item":{string(ln.item)},"name":{string(ln.name)},'
            f'"qty":{int(ln.qty)},"modifiers":[{",".join(map(string, ln.modifiers))}],'
            f'"note":{opt_str(ln.note)},"course":{int(ln.course)},'
            f'"station":{string(ln.station)},"fire_at":{time(fire_at)},'
            f'"voided":{BOOL[ln.voided]},"done":{BOOL[ln.done]}}}'
        )
    return (
        f'{{"v":1,"ticket_id":"{t.ticket_id}","version":{int(t.version)},'
        f'"order_id":"{rec.order_id}","table":{string(rec.table)},"station":{string(t.target)},'
        f'"course":{opt_int(t.course)},"dining":{string(rec.dining.value)},'
        f'"items":[{",".join(items)}],'
        f'"fire_at":{time(first or base)},"status":{string(t.status.value)},'
        f'"redirected_from":{opt_str(t.redirected_from)},"sent_at":{time(base)}}}'
    ).encode()


def status_update(rec: OrderRecord, now: datetime) -> SendStatus:
    """The order's state and which prep stations are done, as of ``now``.

    Written as the JSON of an :class:`~gateway.contract.OrderStatusUpdate`, byte for byte (a
    property test holds it to that), for the reason ``render_ticket`` gives.
    """
    prep = [t for t in rec.tickets if t.station != EXPO and is_live(rec, t)]
    done = ",".join(map(string, sorted({t.station for t in prep if t.bumped})))
    still = ",".join(map(string, sorted({t.station for t in prep if not t.bumped})))
    body = (
        f'{{"v":1,"order_id":"{rec.order_id}","table":{string(rec.table)},'
        f'"state":{string(rec.state.value)},"stations_done":[{done}],"stations_open":[{still}],'
        f'"at":{time(now)}}}'
    ).encode()
    return SendStatus(rec.order_id, body)


def accepted_reply(order_id: UUID, total: Money) -> bytes:
    """The reply to an accepted order: the JSON of an :class:`~gateway.contract.OrderReply`."""
    return (
        f'{{"v":1,"order_id":"{order_id}","status":"accepted","errors":[],'
        f'"total":{{"amount":{int(total.amount)},"currency":{string(total.currency)}}}}}'
    ).encode()
