"""What the simulators saw: plain, bounded records that tests and the demo read.

Long demo runs keep the last ``max_records`` entries and the counters; tests pass
``record_all=True`` to keep everything.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.contract import CommandReply, OrderReply, ReplyStatus, Ticket

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID

    from simulators.orders import GeneratedOrder

__all__ = [
    "CommandRecord",
    "EvenFraction",
    "ReplyRecord",
    "ScreenCounters",
    "SentOrder",
    "ShownTicket",
    "TabletCounters",
    "TabletResult",
]


class EvenFraction:
    """Says yes to exactly ``fraction`` of calls, spread evenly (error diffusion, no randomness).

    Tests can then assert exact counts: 100 orders at 0.2 malformed are 20 malformed ones.
    """

    def __init__(self, fraction: float) -> None:
        """Answer yes to ``fraction`` (0..1) of calls."""
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        self.fraction = fraction
        self._acc = 0.0

    def take(self) -> bool:
        """Whether this call is one of the chosen."""
        self._acc += self.fraction
        if self._acc >= 1 - 1e-9:
            self._acc -= 1
            return True
        return False


@dataclass(slots=True)
class SentOrder:
    """An order a tablet sent.

    Attributes:
        order: what was sent (payload, expected lines for valid orders).
        device: the tablet that sent it.
        placed_at: real wall-clock time of the first send (UTC).
        first_sent: ``time.monotonic()`` of the first send (latency is measured from it).
        sends: publishes of it so far, including intentional resends and retries.
        response_topic: MQTT 5 Response Topic it was sent with, if any.
        correlation_data: MQTT 5 Correlation Data it was sent with, if any.
        voided: line ids a ``void_line`` command was sent for.
        fired: courses a ``fire_course`` command was sent for.
    """

    order: GeneratedOrder
    device: str
    placed_at: datetime
    first_sent: float
    sends: int = 1
    response_topic: str | None = None
    correlation_data: bytes | None = None
    voided: set[str] = field(default_factory=set)
    fired: set[int] = field(default_factory=set)


@dataclass(slots=True)
class ReplyRecord:
    """The final reply to one order, and how often it came.

    Attributes:
        reply: the first reply received.
        first_at: ``time.monotonic()`` when it arrived.
        count: replies received for this order id (resends legitimately get it again).
        consistent: every later reply said the same as the first.
        response_topic_ok: for orders sent with a Response Topic, whether every reply came on
            it with the right Correlation Data; None for orders sent without.
    """

    reply: OrderReply
    first_at: float
    count: int = 1
    consistent: bool = True
    response_topic_ok: bool | None = None

    @property
    def accepted(self) -> bool:
        """Whether the gateway accepted the order."""
        return self.reply.status is ReplyStatus.ACCEPTED


@dataclass(slots=True)
class CommandRecord:
    """A command a tablet sent (``fire_course`` or ``void_line``) and its reply.

    Attributes:
        command_id: the command's idempotency key.
        order_id: the order it is about.
        kind: ``fire_course`` or ``void_line``.
        device: the tablet that sends it.
        payload: the exact bytes (resends reuse them).
        line_id: the voided line (``void_line``).
        course: the fired course (``fire_course``).
        sends: publishes so far (0 while it waits for its time).
        reply: the first reply, None until one came.
        replies: replies received.
    """

    command_id: UUID
    order_id: UUID
    kind: str
    device: str
    payload: bytes
    line_id: str | None = None
    course: int | None = None
    sends: int = 0
    reply: CommandReply | None = None
    replies: int = 0


@dataclass(slots=True)
class TabletCounters:
    """Counters of a tablet fleet (never bounded, never reset)."""

    orders: int = 0
    valid: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    publishes: int = 0
    resends: int = 0
    retries: int = 0
    publish_waits: int = 0
    replies: int = 0
    duplicate_replies: int = 0
    inconsistent_replies: int = 0
    unmatched_replies: int = 0
    replies_without_id: int = 0
    bad_payloads: int = 0
    accepted: int = 0
    rejected: int = 0
    unexpected_status: int = 0
    response_topic_ok: int = 0
    response_topic_bad: int = 0
    commands: int = 0
    command_retries: int = 0
    command_replies: int = 0
    command_rejected: int = 0


@dataclass(slots=True)
class TabletResult:
    """Everything a tablet fleet sent and received.

    Attributes:
        orders: orders by id, oldest first (bounded unless ``record_all``).
        replies: the final reply per order id.
        commands: commands by id.
        counters: totals over the whole run.
        sending_started: ``time.monotonic()`` when the first order was due (after a burst's
            orders were built), for benchmarks.
        sending_done: ``time.monotonic()`` when the last order of the schedule was published.
    """

    orders: OrderedDict[UUID, SentOrder] = field(default_factory=OrderedDict)
    replies: dict[UUID, ReplyRecord] = field(default_factory=dict)
    commands: dict[UUID, CommandRecord] = field(default_factory=dict)
    counters: TabletCounters = field(default_factory=TabletCounters)
    sending_started: float | None = None
    sending_done: float | None = None

    def note_reply(
        self, reply: OrderReply, topic: str, correlation_data: bytes | None, received_at: float
    ) -> SentOrder | None:
        """Record a reply to an order; returns the order if this is its first reply.

        Later replies (to resends) are counted and compared with the first; a reply that
        differs from it marks the record inconsistent. Orders sent with a Response Topic must be
        answered on that topic with the same Correlation Data.
        """
        c = self.counters
        c.replies += 1
        if reply.order_id is None:
            c.replies_without_id += 1
            return None
        sent = self.orders.get(reply.order_id)
        if sent is None:
            c.unmatched_replies += 1
            return None
        rt_ok: bool | None = None
        if sent.response_topic is not None:
            rt_ok = topic == sent.response_topic and correlation_data == sent.correlation_data
            c.response_topic_ok += rt_ok
            c.response_topic_bad += not rt_ok
        known = self.replies.get(reply.order_id)
        if known is not None:
            known.count += 1
            c.duplicate_replies += 1
            if _gist(known.reply) != _gist(reply):
                known.consistent = False
                c.inconsistent_replies += 1
            if rt_ok is False:
                known.response_topic_ok = False
            return None
        self.replies[reply.order_id] = ReplyRecord(reply, received_at, response_topic_ok=rt_ok)
        accepted = reply.status is ReplyStatus.ACCEPTED
        c.accepted += accepted
        c.rejected += not accepted
        c.unexpected_status += accepted != sent.order.valid
        return sent

    def note_command_reply(self, reply: CommandReply) -> bool:
        """Record a reply to a command; returns True if it is the command's first reply."""
        c = self.counters
        cmd = self.commands.get(reply.command_id) if reply.command_id is not None else None
        if cmd is None:
            c.unmatched_replies += 1
            return False
        cmd.replies += 1
        c.command_replies += 1
        if cmd.reply is not None:
            return False
        cmd.reply = reply
        c.command_rejected += reply.status is ReplyStatus.REJECTED
        return True

    def unanswered(self, *, valid_only: bool = True) -> list[UUID]:
        """Orders that have no reply yet: valid ones, or every answerable one."""
        return [
            k
            for k, o in self.orders.items()
            if (o.order.valid if valid_only else o.order.answerable) and k not in self.replies
        ]

    def valid_orders(self) -> list[SentOrder]:
        """The valid orders sent, oldest first."""
        return [o for o in self.orders.values() if o.order.valid]

    def trim(self, max_records: int) -> None:
        """Forget the oldest orders beyond ``max_records``, but never one still awaiting a reply."""
        while len(self.orders) > max_records:
            oldest_id, oldest = next(iter(self.orders.items()))
            if oldest.order.answerable and oldest_id not in self.replies:
                return
            del self.orders[oldest_id]
            self.replies.pop(oldest_id, None)
        while len(self.commands) > max_records:
            del self.commands[next(iter(self.commands))]


def _gist(reply: OrderReply) -> tuple[object, ...]:
    return reply.status, reply.total, tuple(reply.errors)


@dataclass(frozen=True, slots=True)
class ShownTicket:
    """A ticket version a screen showed (new or replacing an older version).

    Attributes:
        station: the screen's station.
        ticket: the ticket as received.
        received_mono: ``time.monotonic()`` when it arrived.
        received_wall: real wall-clock time when it arrived (UTC).
        replaced: it replaced an older version of the same ticket.
    """

    station: str
    ticket: Ticket
    received_mono: float
    received_wall: datetime
    replaced: bool

    @property
    def key(self) -> tuple[UUID, int]:
        """``(ticket_id, version)``: shown at most once per screen."""
        return self.ticket.ticket_id, self.ticket.version


@dataclass(slots=True)
class ScreenCounters:
    """Counters of one screen (never bounded, never reset)."""

    received: int = 0
    shown: int = 0
    updates: int = 0
    duplicates_suppressed: int = 0
    stale_ignored: int = 0
    malformed: int = 0
    ignored_while_silent: int = 0
    acks: int = 0
    bumps: int = 0
    items_done: int = 0
    heartbeats: int = 0
    publish_refused: int = 0
    redirected_in: int = 0
    sent_again: int = 0  # bumps, recalls and item_done sent again to a gateway back online
