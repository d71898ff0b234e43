"""What one kitchen screen shows, and when its cook finishes (pure, no I/O, no clock).

A screen shows each ``(ticket_id, version)`` at most once. A version it has seen is a duplicate
(the gateway resent it because our ack was lost: ack again, show nothing); a higher version
replaces the ticket; a lower one is stale and ignored. Closed tickets (bumped or voided) are
remembered only up to ``max_closed``, as real screens purge old orders (``DOMAIN.md``). A
screen also keeps its recent bumps, recalls and item_done reports (``RecentChanges``), to send
them again when a gateway comes back online (docs/contract.md).
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.contract import KdsAction, TicketStatus

if TYPE_CHECKING:
    from collections.abc import Mapping
    from uuid import UUID

    from gateway.config import SiteConfig
    from gateway.contract import Ticket

__all__ = ["PrepTimes", "RecentChanges", "StationBoard", "Verdict"]

#: Prep time assumed for an item the screen's copy of the menu does not know.
_UNKNOWN_ITEM_PREP_S = 300.0


class Verdict(StrEnum):
    """What a screen does with a ticket version it receives."""

    NEW = "new"  # first version seen of this ticket: show it
    UPDATE = "update"  # a higher version: replace the one shown
    DUPLICATE = "duplicate"  # this version was seen already: ack again, show nothing
    STALE = "stale"  # a lower version than the one shown: ignore


class StationBoard:
    """The tickets on one station's screen.

    Attributes:
        open: tickets shown and not yet bumped or voided, by id (latest version).
    """

    def __init__(self, max_closed: int = 800) -> None:
        """Remember the versions of at most ``max_closed`` closed tickets."""
        self.open: dict[UUID, Ticket] = {}
        self._closed: OrderedDict[UUID, int] = OrderedDict()
        self._max_closed = max_closed

    def version(self, ticket_id: UUID) -> int | None:
        """The latest version seen of a ticket, or None if unknown (or long forgotten)."""
        ticket = self.open.get(ticket_id)
        return ticket.version if ticket is not None else self._closed.get(ticket_id)

    def offer(self, ticket: Ticket) -> Verdict:
        """Take a received ticket version and say what to do with it."""
        known = self.version(ticket.ticket_id)
        if known is not None and ticket.version == known:
            return Verdict.DUPLICATE
        if known is not None and ticket.version < known:
            return Verdict.STALE
        if ticket.status is TicketStatus.VOIDED:
            self.open.pop(ticket.ticket_id, None)
            self._remember_closed(ticket.ticket_id, ticket.version)
        else:
            self._closed.pop(ticket.ticket_id, None)
            self.open[ticket.ticket_id] = ticket
        return Verdict.NEW if known is None else Verdict.UPDATE

    def close(self, ticket_id: UUID) -> Ticket | None:
        """Take a ticket off the screen (bumped); returns it, or None if it was not open."""
        ticket = self.open.pop(ticket_id, None)
        if ticket is not None:
            self._remember_closed(ticket_id, ticket.version)
        return ticket

    def _remember_closed(self, ticket_id: UUID, version: int) -> None:
        self._closed[ticket_id] = version
        self._closed.move_to_end(ticket_id)
        while len(self._closed) > self._max_closed:
            self._closed.popitem(last=False)


class RecentChanges:
    """A screen's latest bump or recall per ticket and item_done per line, newest last.

    A broker that acknowledged one of them and then crashed may have lost it; the screen sends
    them again whenever a gateway says ``online``. At most ``max_changes``: the oldest go first.
    """

    def __init__(self, max_changes: int = 800) -> None:
        """Keep at most ``max_changes`` changes."""
        self._changes: OrderedDict[tuple[UUID, str | None], tuple[int, KdsAction, float]] = (
            OrderedDict()
        )
        self._max = max_changes

    def __len__(self) -> int:
        """Number of changes kept."""
        return len(self._changes)

    def note(
        self, ticket_id: UUID, version: int, action: KdsAction, line_id: str | None, at: float
    ) -> None:
        """A change the screen sent at ``at`` (any clock); it replaces the ticket's earlier one."""
        key = (ticket_id, line_id if action is KdsAction.ITEM_DONE else None)
        self._changes.pop(key, None)  # to the end: the oldest change goes first when full
        self._changes[key] = (version, action, at)
        if len(self._changes) > self._max:
            self._changes.popitem(last=False)

    def to_send_again(
        self, board: StationBoard, since: float
    ) -> list[tuple[UUID, int, KdsAction, str | None]]:
        """``(ticket_id, version, action, line_id)`` of the changes made at or after ``since``.

        Only those about the newest version ``board`` has of their ticket: the cook's work on an
        older version does not count for the new content (and the gateway would ignore it).
        """
        return [
            (ticket_id, version, action, line_id)
            for (ticket_id, line_id), (version, action, at) in self._changes.items()
            if at >= since and board.version(ticket_id) == version
        ]


class PrepTimes:
    """How long each line of a ticket takes to cook, in kitchen seconds, from the site's menu."""

    def __init__(self, prep_s: Mapping[str, float], modifier_delta_s: Mapping[str, float]) -> None:
        """Take prep time per item id and the change each modifier id makes to it."""
        self._prep = dict(prep_s)
        self._delta = dict(modifier_delta_s)

    @classmethod
    def from_site(cls, cfg: SiteConfig) -> PrepTimes:
        """Read prep times and modifier deltas from a site config."""
        return cls(
            {i.id: float(i.prep_s) for i in cfg.items},
            {m.id: float(m.prep_delta_s) for m in cfg.modifiers},
        )

    def line_done_after(self, ticket: Ticket) -> dict[str, float]:
        """Kitchen seconds from the ticket's ``sent_at`` until each open line is cooked.

        A line starts at its own ``fire_at`` (fire by prep time delays the quick ones), so the
        table's dishes finish together; voided and already-done lines are left out.
        """
        out: dict[str, float] = {}
        for line in ticket.items:
            if line.voided or line.done:
                continue
            start = max(0.0, (line.fire_at - ticket.sent_at).total_seconds())
            cook = self._prep.get(line.item, _UNKNOWN_ITEM_PREP_S)
            cook += sum(self._delta.get(m, 0.0) for m in line.modifiers)
            out[line.line_id] = start + max(0.0, cook)
        return out
