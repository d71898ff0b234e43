"""What the kitchen tracks and persists: order, line and ticket state, and the effects it emits.

Plain dataclasses (snapshots are JSON through pydantic's ``TypeAdapter``); the state machine that
moves them is :class:`gateway.routing.kitchen.Kitchen`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime  # noqa: TC003 - pydantic reads the dataclasses' annotations
from hashlib import sha1
from typing import TYPE_CHECKING, Annotated
from uuid import NAMESPACE_URL, UUID

from pydantic import Field, TypeAdapter

from gateway.contract import (
    Dining,
    OrderState,
    OrderStatusUpdate,
    Ticket,
    TicketStatus,
)
from gateway.errors import CommandRejected
from gateway.routing.jsonw import BOOL, opt_int, opt_str, opt_time, string, time

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.routing.orders import PricedLine

EXPO = "expo"


@dataclass(slots=True)
class LineState:
    """One order line as the kitchen tracks it."""

    line_id: str
    item: str
    name: str
    qty: int
    modifiers: tuple[str, ...]
    note: str | None
    course: int
    station: str
    also: tuple[str, ...]
    prep_s: int
    fire_at: datetime | None = None
    voided: bool = False
    done: bool = False

    @property
    def stations(self) -> tuple[str, ...]:
        """Every prep station that gets this line."""
        return (self.station, *self.also)


@dataclass(slots=True)
class TicketState:
    """One ticket: ``version`` 0 means it has not been sent yet."""

    ticket_id: UUID
    station: str  # home station, or EXPO
    course: int | None  # None for the expo ticket
    target: str = ""  # where it is delivered now (home, or the backup while redirected)
    version: int = 0
    version_at: datetime | None = None
    acked: int = 0
    bumped: bool = False
    redirected_from: str | None = None
    status: TicketStatus = TicketStatus.FIRED
    # The latest version exactly as sent (compact JSON of a ``Ticket``): a resend, also after
    # a restart, repeats these bytes, whatever changed in the order since, so one (ticket_id,
    # version) has one content. Persisted once per version in its own table, not in every
    # snapshot of the order. Bytes, not the model: ~0.6 KB instead of ~3 KB per ticket, for
    # every open order (parsed again only for the rare resend after a restart).
    sent_body: Annotated[bytes | None, Field(exclude=True)] = None


@dataclass(slots=True)
class OrderRecord:
    """An open order with its lines and tickets (what is persisted per order)."""

    order_id: UUID
    device: str
    table: str
    dining: Dining
    accepted_at: datetime
    lines: list[LineState]
    course_fire: dict[int, datetime | None]
    tickets: list[TicketState] = field(default_factory=list)
    state: OrderState = OrderState.ACCEPTED
    # The kitchen's own order number, in order of acceptance: the store's key, so the rows of
    # the orders in the kitchen now sit together on disk (an order id is random).
    seq: int = 0

    def line(self, line_id: str) -> LineState | None:
        """Find a line by id."""
        return next((ln for ln in self.lines if ln.line_id == line_id), None)

    def lines_of(self, t: TicketState) -> list[LineState]:
        """The lines a ticket shows."""
        station, course = t.station, t.course
        if station == EXPO:
            return list(self.lines)
        # Not ``ln.stations``: building that tuple per line was measurable on the hot path.
        return [
            ln
            for ln in self.lines
            if ln.course == course and (ln.station == station or station in ln.also)
        ]


RECORD = TypeAdapter(OrderRecord)


def snapshot(rec: OrderRecord) -> bytes:
    """``RECORD.dump_json(rec)``, written directly (a property test holds it to those bytes).

    Two per order (accepted, then ready); through the ``TypeAdapter`` one cost ~13 us, the
    largest single item left on the gateway's main thread per order.
    """
    lines = ",".join(
        f'{{"line_id":{string(ln.line_id)},"item":{string(ln.item)},"name":{string(ln.name)},'
        f'"qty":{int(ln.qty)},"modifiers":[{",".join(map(string, ln.modifiers))}],'
        f'"note":{opt_str(ln.note)},"course":{int(ln.course)},"station":{string(ln.station)},'
        f'"also":[{",".join(map(string, ln.also))}],"prep_s":{int(ln.prep_s)},'
        f'"fire_at":{opt_time(ln.fire_at)},"voided":{BOOL[ln.voided]},"done":{BOOL[ln.done]}}}'
        for ln in rec.lines
    )
    fires = ",".join(f'"{int(c)}":{opt_time(at)}' for c, at in rec.course_fire.items())
    tickets = ",".join(
        f'{{"ticket_id":"{t.ticket_id}","station":{string(t.station)},'
        f'"course":{opt_int(t.course)},"target":{string(t.target)},"version":{int(t.version)},'
        f'"version_at":{opt_time(t.version_at)},"acked":{int(t.acked)},'
        f'"bumped":{BOOL[t.bumped]},"redirected_from":{opt_str(t.redirected_from)},'
        f'"status":{string(t.status.value)}}}'
        for t in rec.tickets
    )
    return (
        f'{{"order_id":"{rec.order_id}","device":{string(rec.device)},'
        f'"table":{string(rec.table)},"dining":{string(rec.dining.value)},'
        f'"accepted_at":{time(rec.accepted_at)},"lines":[{lines}],"course_fire":{{{fires}}},'
        f'"tickets":[{tickets}],"state":{string(rec.state.value)},"seq":{int(rec.seq)}}}'
    ).encode()


@dataclass(frozen=True, slots=True)
class SendTicket:
    """Publish this ticket version to ``station``'s screen (and resend until acked).

    ``body`` is the ticket serialised (compact JSON of a :class:`Ticket`), exactly as stored;
    the other fields repeat what the router needs of it without parsing it.
    """

    ticket_id: UUID
    version: int
    station: str
    body: bytes

    @property
    def ticket(self) -> Ticket:
        """The version as a model, parsed from ``body`` on each call (tests, tools)."""
        return Ticket.model_validate_json(self.body)


@dataclass(frozen=True, slots=True)
class Changes:
    """What a batch must persist.

    Orders are named by their ``seq`` (``OrderRecord.seq``), not their id.

    Attributes:
        snapshots: order seq -> the order's state (without its sent tickets).
        closed: seqs of the orders that left the kitchen.
        acks: (ticket id, order seq, version) acknowledged by screens.
        tickets: (ticket id, order seq, version, the version as sent) for each new version.
    """

    snapshots: dict[int, bytes]
    closed: set[int]
    acks: list[tuple[UUID, int, int]]
    tickets: list[tuple[UUID, int, int, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SendStatus:
    """Publish an order's new state: ``body`` is the JSON of an ``OrderStatusUpdate``."""

    order_id: UUID
    body: bytes

    @property
    def update(self) -> OrderStatusUpdate:
        """The update as a model, parsed from ``body`` on each call (tests, tools)."""
        return OrderStatusUpdate.model_validate_json(self.body)


Effect = SendTicket | SendStatus


class KitchenError(CommandRejected):
    """A command that cannot apply (unknown order, line already cooked...): told to the sender.

    Attributes:
        path: the command's field at fault (``order_id``, ``line_id``, ``course``).
        message: what is wrong with it, for the sender.
    """

    def __init__(self, path: str, message: str) -> None:
        """Keep where and what."""
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def ticket_ids_for(order_id: UUID, places: Iterable[tuple[str, int | None]]) -> list[UUID]:
    """The ids of an order's tickets at ``(station, course)`` places.

    Deterministic, so a ticket rebuilt after a crash keeps its id: the UUID version 5 of
    ``ticket:{order_id}/{station}/{course}`` in the URL namespace. Computed here rather than
    by ``uuid.uuid5``, with the same result (a test holds it to that), at less than half the
    cost: ``UUID(bytes=..., version=...)`` was most of it, three times per order.
    """
    prefix = _URL_NS + f"ticket:{order_id}/".encode()
    # SHA-1 is what UUID version 5 is defined with; nothing here relies on it being secure.
    digests = [sha1(prefix + f"{s}/{c}".encode()).digest() for s, c in places]  # noqa: S324
    return [UUID(int=int.from_bytes(d[:16]) & _V5_MASK | _V5) for d in digests]


_URL_NS = NAMESPACE_URL.bytes
# RFC 9562: version 5 in bits 76-79, variant 0b10 in bits 62-63 of the 128-bit value.
_V5_MASK = ~(0xF << 76 | 0x3 << 62)
_V5 = 5 << 76 | 0x2 << 62


def line_state(ln: PricedLine) -> LineState:
    """The kitchen's mutable copy of a validated line."""
    return LineState(
        line_id=ln.line_id,
        item=ln.item,
        name=ln.name,
        qty=ln.qty,
        modifiers=ln.modifiers,
        note=ln.note,
        course=ln.course,
        station=ln.station,
        also=ln.also,
        prep_s=ln.prep_s,
    )
