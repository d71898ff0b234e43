"""Ticket versions sent to a screen and not yet acknowledged: resent with capped backoff.

Bounded by the open orders (one entry per ticket, its latest version). A resend repeats the
version's bytes as first sent, so a screen that dedupes ``(ticket_id, version)`` shows it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.events import TicketOut

if TYPE_CHECKING:
    from uuid import UUID

    from gateway.config import SiteConfig
    from gateway.events import Outbox
    from gateway.routing.service import OrderStats

__all__ = ["UnackedTickets"]

_RESEND_PER_TICK = 200


@dataclass(slots=True)
class _Unacked:
    """A sent ticket version awaiting its screen's ack: its bytes, not its model (memory)."""

    version: int
    station: str
    body: bytes
    due: float
    interval: float


class UnackedTickets:
    """Sent ticket versions awaiting their screen's ack, each resent when due until it comes."""

    def __init__(self, cfg: SiteConfig, outbox: Outbox, stats: OrderStats) -> None:
        """Resend through ``outbox`` at ``cfg.delivery``'s intervals, counting in ``stats``."""
        self._cfg = cfg
        self._outbox = outbox
        self._stats = stats
        self._unacked: dict[UUID, _Unacked] = {}

    def __len__(self) -> int:
        """Number of tickets awaiting an ack."""
        return len(self._unacked)

    def track(self, out: TicketOut, due: float) -> None:
        """Await an ack of this version (it replaces an earlier one); first resend at ``due``."""
        first = self._cfg.delivery.resend_after_s
        self._unacked[out.ticket_id] = _Unacked(out.version, out.station, out.body, due, first)

    def acked(self, ticket_id: UUID, version: int) -> None:
        """A screen acknowledged ``version`` of a ticket (an ack of an older one is not enough)."""
        u = self._unacked.get(ticket_id)
        if u is not None and u.version <= version:
            del self._unacked[ticket_id]

    def all_due(self, mono: float) -> None:
        """Make every ticket due at ``mono`` (monotonic seconds)."""
        for u in self._unacked.values():
            u.due = mono

    def resend_due(self, mono: float) -> None:
        """Resend the tickets due by ``mono``, a capped number per call, and back off each."""
        cap = self._cfg.delivery.resend_max_interval_s
        budget = _RESEND_PER_TICK
        for ticket_id, u in self._unacked.items():
            if u.due <= mono:
                if budget == 0:
                    # A capped burst: resending everything at once when screens lag behind would
                    # only deepen the backlog they are lagging on (a retry storm).
                    break
                budget -= 1
                self._outbox.send(TicketOut.sent(ticket_id, u.version, u.station, u.body))
                self._stats.tickets_resent += 1
                u.interval = min(u.interval * 2, cap)
                u.due = mono + u.interval
