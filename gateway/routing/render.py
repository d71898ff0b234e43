"""What the kitchen sends: a ticket version as screens show it, and an order's status for tablets.

Pure functions of the records (:mod:`gateway.routing.records`); the kitchen decides when.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.contract import OrderState, OrderStatusUpdate, Ticket, TicketItem, TicketStatus
from gateway.routing.records import EXPO, SendStatus

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.routing.records import OrderRecord, TicketState

__all__ = ["is_live", "render_ticket", "status_update", "ticket_status"]


def is_live(rec: OrderRecord, t: TicketState) -> bool:
    """Whether the ticket shows a line that is not voided."""
    return any(not ln.voided for ln in rec.lines_of(t))


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


def render_ticket(rec: OrderRecord, t: TicketState) -> Ticket:
    """The ticket's current version (``t.version_at`` must be set), lines in firing order."""
    base = t.version_at
    assert base is not None
    lines = rec.lines_of(t)
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
        for ln in sorted(lines, key=lambda x: (x.fire_at or base, x.line_id))
    ]
    fire_at = min((i.fire_at for i in items if not i.voided), default=base)
    return Ticket(
        ticket_id=t.ticket_id,
        version=t.version,
        order_id=rec.order_id,
        table=rec.table,
        station=t.target,
        course=t.course,
        dining=rec.dining,
        items=items,
        fire_at=fire_at,
        status=t.status,
        redirected_from=t.redirected_from,
        sent_at=base,
    )


def status_update(rec: OrderRecord, now: datetime) -> SendStatus:
    """The order's state and which prep stations are done, as of ``now``."""
    prep = [t for t in rec.tickets if t.station != EXPO and is_live(rec, t)]
    return SendStatus(
        OrderStatusUpdate(
            order_id=rec.order_id,
            table=rec.table,
            state=rec.state,
            stations_done=sorted({t.station for t in prep if t.bumped}),
            stations_open=sorted({t.station for t in prep if not t.bumped}),
            at=now,
        )
    )
