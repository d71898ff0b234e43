"""The kitchen's state: open orders, their tickets and versions, as a pure state machine.

Nothing here does I/O or reads the time: every method takes ``now`` and returns the messages to
send (``Effect``). The order service persists the orders this changed (``take_dirty``) *before*
it sends anything, so a ticket version that left the gateway is always on disk: after a crash the
same ``(ticket_id, version)`` is rebuilt with the same content, and a screen that dedupes shows it
once.

Tickets: one per (prep station, course) of an order, published when its first line is due to fire
(fire by prep time), plus one expo ticket per order spanning every station and course, published
at once. Any change a cook must see (void, modify, a held course fired, a redirect to a backup
screen, the table becoming ready) is a new ``version`` of the same ticket.

Order life: ``accepted`` → ``in_kitchen`` (a prep ticket is on a screen) → ``ready`` (every prep
ticket with live lines bumped, no course held) → ``closed`` (the expo bumped). Recall undoes a bump.
"""

from __future__ import annotations

import heapq
import itertools
from types import MappingProxyType
from typing import TYPE_CHECKING

from gateway.contract import KdsAction, OrderState, Ticket
from gateway.routing.records import (
    EXPO,
    RECORD,
    Changes,
    Effect,
    KitchenError,
    LineState,
    OrderRecord,
    SendStatus,
    SendTicket,
    TicketState,
    line_state,
    snapshot,
    ticket_ids_for,
)
from gateway.routing.render import is_live, render_ticket, status_update, ticket_status
from gateway.routing.timing import course_fire_times, schedule_lines, ticket_fire_at

__all__ = ["Changes", "Effect", "Kitchen", "KitchenError", "SendStatus", "SendTicket"]

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime
    from uuid import UUID

    from gateway.config import Course
    from gateway.routing.orders import PricedLine, PricedOrder


class Kitchen:
    """Every open order; each method returns the effects to publish after persisting."""

    def __init__(self, courses: Iterable[Course], expo: str | None) -> None:
        """``expo`` is the expo station's id, or None if the site has none."""
        self._courses = tuple(courses)
        self._expo = expo
        self._orders: dict[UUID, OrderRecord] = {}
        self._by_ticket: dict[UUID, tuple[OrderRecord, TicketState]] = {}
        self._dirty: set[UUID] = set()
        self._closed: set[int] = set()  # seq numbers of orders closed since take_dirty
        self._acks: dict[UUID, tuple[OrderRecord, int]] = {}
        self._sent: dict[UUID, tuple[OrderRecord, TicketState]] = {}
        self._next_seq = 1
        self._due: list[tuple[datetime, int, UUID]] = []  # (next fire time, tie-break, order)
        self._seq = itertools.count()
        self.redirects: dict[str, str] = {}

    # --- queries --------------------------------------------------------------------------

    def __contains__(self, order_id: UUID) -> bool:
        """Whether an order is open."""
        return order_id in self._orders

    def __len__(self) -> int:
        """Number of open orders."""
        return len(self._orders)

    def order(self, order_id: UUID) -> OrderRecord | None:
        """An open order."""
        return self._orders.get(order_id)

    def next_fire_at(self) -> datetime | None:
        """When the earliest unsent ticket is due (None if nothing is scheduled)."""
        due = [
            fire_at
            for o in self._orders.values()
            for t in o.tickets
            if t.version == 0 and (fire_at := ticket_fire_at(o, t)) is not None
        ]
        return min(due, default=None)

    def resends(self) -> list[SendTicket]:
        """Every sent ticket version not yet acknowledged, with its bytes as sent.

        Resent after a restart. Not parsed again: ``restore`` kept a version's bytes only where
        they are the ticket's current version, sent to its current ``target``.
        """
        return [
            SendTicket(t.ticket_id, t.version, t.target, t.sent_body)
            for o in self._orders.values()
            for t in o.tickets
            if t.version > t.acked and t.sent_body is not None
        ]

    def unacked(self) -> list[Ticket]:
        """``resends`` as models (tests and tools)."""
        return [s.ticket for s in self.resends()]

    def open_tickets(self, station: str) -> int:
        """Sent, not bumped tickets currently delivered to ``station``."""
        return sum(
            1
            for o in self._orders.values()
            for t in o.tickets
            if t.target == station and t.version > 0 and not t.bumped
        )

    # --- persistence --------------------------------------------------------------------

    def unsaved(self) -> bool:
        """Whether anything changed since the last ``take_dirty`` (acks alone included)."""
        return bool(self._dirty or self._closed or self._acks or self._sent)

    def take_dirty(self) -> Changes:
        """What changed since the last call, to be committed before anything is sent."""
        orders = self._orders
        snaps = {orders[oid].seq: snapshot(orders[oid]) for oid in self._dirty}
        # An ack of an order whose snapshot is written anyway needs no row of its own.
        dirty = self._dirty
        acks = [(tid, r.seq, v) for tid, (r, v) in self._acks.items() if r.order_id not in dirty]
        tickets = [
            (tid, r.seq, t.version, t.sent_body)
            for tid, (r, t) in self._sent.items()
            if t.sent_body is not None
        ]
        changes = Changes(snaps, self._closed, acks, tickets)
        self._dirty, self._closed, self._acks, self._sent = set(), set(), {}, {}
        return changes

    def restore(
        self,
        snapshots: Iterable[bytes],
        acks: Mapping[UUID, int] = MappingProxyType({}),
        tickets: Mapping[UUID, bytes] = MappingProxyType({}),
        next_seq: int = 1,
    ) -> None:
        """Load open orders persisted by ``take_dirty`` (at start-up).

        ``tickets`` are their sent versions; ``acks`` the acknowledgements that came after an
        order's last snapshot; ``next_seq`` is above every order number ever persisted (closed
        orders included), so a new order never takes an old one's row.
        """
        self._next_seq = max(self._next_seq, next_seq)
        for raw in snapshots:
            rec = RECORD.validate_json(raw)
            self._add(rec)
            self._next_seq = max(self._next_seq, rec.seq + 1)
        for ticket_id, payload in tickets.items():
            found = self._by_ticket.get(ticket_id)
            if found is not None:
                sent = Ticket.model_validate_json(payload)
                if sent.version == found[1].version:
                    found[1].sent_body = payload
        for ticket_id, version in acks.items():
            found = self._by_ticket.get(ticket_id)
            if found is not None:
                t = found[1]
                t.acked = max(t.acked, min(version, t.version))

    def _add(self, rec: OrderRecord) -> None:
        self._orders[rec.order_id] = rec
        for t in rec.tickets:
            self._by_ticket[t.ticket_id] = (rec, t)
        self._push_due(rec)

    def _close(self, rec: OrderRecord) -> None:
        del self._orders[rec.order_id]
        for t in rec.tickets:
            self._by_ticket.pop(t.ticket_id, None)
        self._dirty.discard(rec.order_id)
        self._closed.add(rec.seq)
        for t in rec.tickets:
            self._acks.pop(t.ticket_id, None)
            self._sent.pop(t.ticket_id, None)

    # --- events -------------------------------------------------------------------------

    def accept(self, order: PricedOrder, device: str, now: datetime) -> list[Effect]:
        """Take a validated order into the kitchen; returns the first tickets to send."""
        courses = {ln.course for ln in order.lines}
        fire = course_fire_times(courses, self._courses, now)
        lines = [line_state(ln) for ln in order.lines]
        rec = OrderRecord(order.order_id, device, order.table, order.dining, now, lines, fire)
        rec.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._schedule_lines(rec)
        stations = sorted({(s, ln.course) for ln in lines for s in ln.stations})
        places: list[tuple[str, int | None]] = [*stations]
        if self._expo is not None:
            places.append((EXPO, None))
        ids = ticket_ids_for(rec.order_id, places)
        rec.tickets = [TicketState(i, s, c) for i, (s, c) in zip(ids, places, strict=True)]
        self._add(rec)
        self._dirty.add(rec.order_id)
        effects: list[Effect] = [status_update(rec, now)]
        if self._expo is not None:
            effects += self._new_version(rec, rec.tickets[-1], now)
        return effects + self.release_due(now, only=rec)

    def release_due(self, now: datetime, only: OrderRecord | None = None) -> list[Effect]:
        """Send every prep ticket whose first line is due to fire.

        Without ``only`` it looks only at orders whose next fire time has come (a heap), not at
        every open order: the service calls this several times a second.
        """
        if only is not None:
            return self._release(only, now)
        effects: list[Effect] = []
        while self._due and self._due[0][0] <= now:
            _, _, order_id = heapq.heappop(self._due)
            rec = self._orders.get(order_id)
            if rec is not None:  # entries of closed orders just expire
                effects += self._release(rec, now)
                self._push_due(rec)
        return effects

    def _release(self, rec: OrderRecord, now: datetime) -> list[Effect]:
        effects: list[Effect] = []
        released = False
        for t in rec.tickets:
            if t.version or t.station == EXPO:
                continue
            fire_at = ticket_fire_at(rec, t)
            if fire_at is not None and fire_at <= now:
                effects += self._new_version(rec, t, now)
                released = True
        if released and rec.state is OrderState.ACCEPTED:
            rec.state = OrderState.IN_KITCHEN
            effects.append(status_update(rec, now))
        return effects

    def _push_due(self, rec: OrderRecord) -> None:
        """Remember when this order next has a ticket to release (stale entries are harmless)."""
        times = [
            fire_at
            for t in rec.tickets
            if not t.version
            and t.station != EXPO
            and (fire_at := ticket_fire_at(rec, t)) is not None
        ]
        if times:
            heapq.heappush(self._due, (min(times), next(self._seq), rec.order_id))

    def fire_course(self, order_id: UUID, course: int, now: datetime) -> list[Effect]:
        """A server fires a held (or scheduled) course now."""
        rec = self._require(order_id)
        if course not in rec.course_fire:
            raise KitchenError("course", f"order has no course {course}")
        current = rec.course_fire[course]
        if current is not None and current <= now:
            return []  # already fired: firing twice is harmless, and idempotent
        # Courses after this one keep their auto-fire gap, now counted from this firing: a held
        # one starts its gap, a scheduled one comes forward (never later than it was).
        later = course_fire_times([c for c in rec.course_fire if c >= course], self._courses, now)
        for c, at in later.items():
            cur = rec.course_fire[c]
            if c == course or cur is None:
                rec.course_fire[c] = at
            elif at is not None and cur > now:
                rec.course_fire[c] = min(cur, at)
        retimed = self._schedule_lines(rec, now)
        self._dirty.add(rec.order_id)
        effects = self._reversion(rec, retimed, now)
        return effects + self._refresh_expo(rec, now) + self.release_due(now, only=rec)

    def _reversion(self, rec: OrderRecord, line_ids: set[str], now: datetime) -> list[Effect]:
        """A new version of each sent prep ticket that shows one of ``line_ids``."""
        effects: list[Effect] = []
        for t in rec.tickets:
            shows = any(x.line_id in line_ids for x in rec.lines_of(t))
            if t.station != EXPO and t.version and shows:
                effects += self._new_version(rec, t, now)
        return effects

    def void_line(self, order_id: UUID, line_id: str, now: datetime) -> list[Effect]:
        """Void a line; screens that show it get a new version."""
        rec = self._require(order_id)
        ln = self._line(rec, line_id)
        if ln.voided:
            return []
        ln.voided = True
        return self._line_changed(rec, ln, now, self._schedule_lines(rec, now))

    def modify_line(self, order_id: UUID, new: PricedLine, now: datetime) -> list[Effect]:
        """Replace a line's qty, modifiers or note (``new`` was validated by the caller)."""
        rec = self._require(order_id)
        ln = self._line(rec, new.line_id)
        if ln.voided:
            raise KitchenError("line_id", f"line '{ln.line_id}' is voided")
        if (new.course, (new.station, *new.also)) != (ln.course, ln.stations):
            raise KitchenError(
                "modifiers",
                "this change would move the line to another station or course; "
                "void it and order it again",
            )
        ln.qty, ln.modifiers, ln.note, ln.prep_s = new.qty, new.modifiers, new.note, new.prep_s
        for t in rec.tickets:
            if t.station != EXPO and t.course == ln.course and t.station in ln.stations:
                t.bumped = False  # the cook has something new to make on it
        return self._line_changed(rec, ln, now, self._schedule_lines(rec, now))

    def on_kds(
        self, ticket_id: UUID, version: int, action: KdsAction, line_id: str | None, now: datetime
    ) -> list[Effect]:
        """A screen's report; unknown tickets (closed orders) are ignored by the caller."""
        found = self._by_ticket.get(ticket_id)
        if found is None:
            return []
        rec, t = found
        if action is KdsAction.ACK:
            self._on_ack(rec, t, version)
            return []
        if version < t.version:
            # What the cook did was on content the ticket no longer has (a bump of v1 after
            # more food made v2, or an old bump a screen sends again after a reconnect): the
            # screen has been sent the newer version, and the cook acts on that one.
            return []
        if action is KdsAction.ITEM_DONE:
            ln = rec.line(line_id or "")
            if ln is not None and not ln.done:
                ln.done = True
                self._dirty.add(rec.order_id)
            return []
        return self._on_bump(rec, t, bumped=action is KdsAction.BUMP, now=now)

    def _on_ack(self, rec: OrderRecord, t: TicketState, version: int) -> None:
        if t.acked < version <= t.version:
            t.acked = version
            # An ack is one small row, not a new snapshot of the whole order: acks are the most
            # frequent event, and losing one only costs a resend.
            self._acks[t.ticket_id] = (rec, version)
            if rec.state is OrderState.VOIDED and self._all_acked(rec):
                self._close(rec)

    def _on_bump(
        self, rec: OrderRecord, t: TicketState, *, bumped: bool, now: datetime
    ) -> list[Effect]:
        """A bump (``bumped``) or a recall of a ticket."""
        if t.bumped == bumped:
            return []
        t.bumped = bumped
        self._dirty.add(rec.order_id)
        if t.station == EXPO and bumped:
            return self._close_order(rec, now)
        effects = self._update_readiness(rec, now)
        if self._expo is None and rec.state is OrderState.READY:
            # No expo to send the table out: the last prep bump does it.
            effects += self._close_order(rec, now)
        return effects

    def _close_order(self, rec: OrderRecord, now: datetime) -> list[Effect]:
        rec.state = OrderState.CLOSED
        update = status_update(rec, now)
        self._close(rec)
        return [update]

    @staticmethod
    def _all_acked(rec: OrderRecord) -> bool:
        return all(t.acked >= t.version for t in rec.tickets)

    def redirect(self, station: str, backup: str, now: datetime) -> list[Effect]:
        """Send ``station``'s open tickets, and its new ones, to ``backup`` until restored.

        Nothing moves when the backup is itself redirected (both screens of a pair are silent):
        sending tickets on to a third screen nobody chose is worse than waiting; the caller
        alerts people instead.
        """
        if backup in self.redirects:
            return []
        self.redirects[station] = backup
        effects: list[Effect] = []
        for rec in self._orders.values():
            for t in rec.tickets:
                if t.target == station and t.version and not t.bumped:
                    home = self._home(t)
                    t.target = backup
                    t.redirected_from = home if backup != home else None
                    effects += self._new_version(rec, t, now)
        return effects

    def _home(self, t: TicketState) -> str:
        home = self._expo if t.station == EXPO else t.station
        assert home is not None
        return home

    def restore_station(self, station: str) -> None:
        """The screen is back: new tickets go to it again (redirected ones stay put)."""
        self.redirects.pop(station, None)

    # --- internals ----------------------------------------------------------------------

    def _require(self, order_id: UUID) -> OrderRecord:
        rec = self._orders.get(order_id)
        if rec is None:
            raise KitchenError("order_id", "no open order with this id (unknown or closed)")
        return rec

    @staticmethod
    def _line(rec: OrderRecord, line_id: str) -> LineState:
        ln = rec.line(line_id)
        if ln is None:
            raise KitchenError("line_id", f"order has no line '{line_id}'")
        return ln

    def _schedule_lines(self, rec: OrderRecord, now: datetime | None = None) -> set[str]:
        """``schedule_lines``, then queue the order's next release if it is open."""
        changed = schedule_lines(rec, now)
        if rec.order_id in self._orders:
            self._push_due(rec)
        return changed

    def _line_changed(
        self, rec: OrderRecord, ln: LineState, now: datetime, retimed: set[str]
    ) -> list[Effect]:
        """New versions of every sent prep ticket showing ``ln`` or a re-timed line."""
        self._dirty.add(rec.order_id)
        effects: list[Effect] = self._reversion(rec, {ln.line_id} | retimed, now)
        if all(x.voided for x in rec.lines):
            rec.state = OrderState.VOIDED
            effects += self._refresh_expo(rec, now)
            effects.append(status_update(rec, now))
            # It stays open until every screen acked its voided version, so a restart in
            # between still resends "take it off the screen".
            if self._all_acked(rec):
                self._close(rec)
            return effects
        return effects + self._refresh_expo(rec, now) + self._update_readiness(rec, now)

    def _update_readiness(self, rec: OrderRecord, now: datetime) -> list[Effect]:
        live = [t for t in rec.tickets if t.station != EXPO and is_live(rec, t)]
        held = any(f is None for f in rec.course_fire.values())
        ready = not held and all(t.bumped for t in live)
        if ready and rec.state is not OrderState.READY:
            rec.state = OrderState.READY
        elif not ready and rec.state is OrderState.READY:
            rec.state = OrderState.IN_KITCHEN
        else:
            return []
        return [status_update(rec, now), *self._refresh_expo(rec, now)]

    def _refresh_expo(self, rec: OrderRecord, now: datetime) -> list[Effect]:
        expo = next((t for t in rec.tickets if t.station == EXPO), None)
        return [] if expo is None else self._new_version(rec, expo, now)

    def _new_version(self, rec: OrderRecord, t: TicketState, now: datetime) -> list[Effect]:
        if t.version == 0:
            # A new ticket goes where its station's tickets go now; later versions stay where
            # the cook already has it (a screen that comes back does not pull tickets back).
            home = self._home(t)
            t.target = self.redirects.get(home, home)
            if t.target != home:
                t.redirected_from = home
        t.version += 1
        t.version_at = now
        t.status = ticket_status(rec, t)
        self._dirty.add(rec.order_id)
        t.sent_body = body = render_ticket(rec, t)
        self._sent[t.ticket_id] = (rec, t)
        return [SendTicket(t.ticket_id, t.version, t.target, body)]
