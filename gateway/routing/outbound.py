"""What the order service hands the outbox: the kitchen's effects as outbound events, and alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.events import AlertOut, Notice, StatusOut, TicketOut
from gateway.routing.records import SendTicket

if TYPE_CHECKING:
    from uuid import UUID

    from gateway.events import OutboundEvent
    from gateway.routing.records import Effect

__all__ = ["alert", "latest_status_only", "outbound"]


def outbound(effects: list[Effect]) -> list[OutboundEvent]:
    """The kitchen's effects as the events to publish, in the same order."""
    return [
        (
            TicketOut.sent(e.ticket_id, e.version, e.station, e.body)
            if isinstance(e, SendTicket)
            else StatusOut.sent(e.order_id, e.body)
        )
        for e in effects
    ]


def latest_status_only(outs: list[OutboundEvent]) -> list[OutboundEvent]:
    """Drop an order's status updates that a later one in the same batch supersedes.

    Each update carries the whole current state, so "accepted" followed at once by "in_kitchen"
    only needs the second: one message less per order on the busiest path.
    """
    last: dict[UUID, int] = {}
    for n, out in enumerate(outs):
        if isinstance(out, StatusOut):
            last[out.order_id] = n
    if len(last) == sum(isinstance(o, StatusOut) for o in outs):
        return outs
    return [
        o
        for n, o in enumerate(outs)
        if not isinstance(o, StatusOut) or last[o.order_id] == n
    ]


def alert(level: str, kind: str, subject: str, message: str) -> AlertOut:
    """A notice for the people in the kitchen: ``level`` is a priority, or ``clear`` to end it."""
    return AlertOut(Notice(level, kind, subject, message))
