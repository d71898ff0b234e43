"""Typed events between adapters and services.

Adapters turn wire messages into the ``*In`` events below; services turn them into ``*Out``
events; adapters turn those into wire messages. No service sees a topic, a paho object or a socket.

``token`` is the adapter's opaque handle for acknowledging the wire message: the service hands it
back through :meth:`Outbox.ack` only after the message's effects are durable (or, for a screen's
ack of a ticket, when losing it would cost no more than a resend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from gateway.contract import OrderStatusUpdate, Ticket

if TYPE_CHECKING:
    from uuid import UUID

    from pydantic import BaseModel

    from gateway.codec import DecodeFailure
    from gateway.contract import (
        FireCourse,
        Heartbeat,
        KdsEvent,
        Menu,
        ModifyLine,
        OrderRequest,
        VoidLine,
    )


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """Where a reply goes: the tablet's replies topic, or an MQTT 5 response topic."""

    device: str
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class OrderIn:
    """An order (or what could be read of a broken one) from a tablet."""

    request: OrderRequest | DecodeFailure
    route: ReplyRoute
    token: object


@dataclass(frozen=True, slots=True)
class CommandIn:
    """A tablet command (fire_course, void_line, modify_line)."""

    command: FireCourse | VoidLine | ModifyLine | DecodeFailure
    route: ReplyRoute
    token: object


@dataclass(frozen=True, slots=True)
class KdsEventIn:
    """A screen's ack, bump, recall or item_done."""

    station: str
    event: KdsEvent | DecodeFailure
    token: object


@dataclass(frozen=True, slots=True)
class HeartbeatIn:
    """A screen saying it is alive."""

    station: str
    heartbeat: Heartbeat | DecodeFailure


InboundEvent = OrderIn | CommandIn | KdsEventIn | HeartbeatIn


@dataclass(frozen=True, slots=True)
class ReplyOut:
    """The encoded final reply to an order or command (bytes: exactly what was stored)."""

    route: ReplyRoute
    body: bytes
    command: bool = False


M = TypeVar("M", bound="BaseModel")


class _ModelOrJson(Generic[M]):
    """A contract message held as its model, its compact JSON or both; each made on first use."""

    __slots__ = ("_body", "_model")

    def __init__(self, model: M | None, body: bytes | None) -> None:
        self._model = model
        self._body = body

    def _as_model(self, model_type: type[M]) -> M:
        if self._model is None:
            assert self._body is not None
            self._model = model_type.model_validate_json(self._body)
        return self._model

    @property
    def body(self) -> bytes:
        """The message as compact JSON: exactly as sent, when made from its bytes."""
        if self._body is None:
            assert self._model is not None
            self._body = self._model.model_dump_json().encode()
        return self._body


class TicketOut(_ModelOrJson[Ticket]):
    """A ticket version for ``station``'s screen, as a model or as its JSON.

    The router makes these from the bytes it stored (``TicketOut.sent``): adapters publish
    those as they are, and ``ticket`` is parsed from them only on first use, which only
    consumers that read the content (appliance actions) pay for. Made from a model, the bytes
    are written on first use instead.
    """

    __slots__ = ("station", "ticket_id", "version")

    def __init__(self, ticket: Ticket, body: bytes | None = None) -> None:
        """A version from its model (and, optionally, its bytes as sent)."""
        super().__init__(ticket, body)
        self.ticket_id: UUID = ticket.ticket_id
        self.version: int = ticket.version
        self.station: str = ticket.station

    @classmethod
    def sent(cls, ticket_id: UUID, version: int, station: str, body: bytes) -> TicketOut:
        """A version known by its bytes (``body`` is the JSON of a ``Ticket`` with these)."""
        out = cls.__new__(cls)
        _ModelOrJson.__init__(out, None, body)
        out.ticket_id, out.version, out.station = ticket_id, version, station
        return out

    @property
    def ticket(self) -> Ticket:
        """The version as a model."""
        return self._as_model(Ticket)

    def __repr__(self) -> str:
        """Which version, for logs and test failures."""
        return f"TicketOut({self.ticket_id}, v{self.version} to {self.station})"


class StatusOut(_ModelOrJson[OrderStatusUpdate]):
    """An order's new state, as a model or as its JSON (``StatusOut.sent``, from the router)."""

    __slots__ = ("order_id",)

    def __init__(self, update: OrderStatusUpdate) -> None:
        """An update from its model."""
        super().__init__(update, None)
        self.order_id: UUID = update.order_id

    @classmethod
    def sent(cls, order_id: UUID, body: bytes) -> StatusOut:
        """An update known by its bytes (``body`` is the JSON of an ``OrderStatusUpdate``)."""
        out = cls.__new__(cls)
        _ModelOrJson.__init__(out, None, body)
        out.order_id = order_id
        return out

    @property
    def update(self) -> OrderStatusUpdate:
        """The update as a model."""
        return self._as_model(OrderStatusUpdate)

    def __repr__(self) -> str:
        """Which order, for logs and test failures."""
        return f"StatusOut({self.order_id})"


@dataclass(frozen=True, slots=True)
class Notice:
    """What a service tells people; the alert service makes it an alert (or ends one).

    Attributes:
        level: the priority (``critical``, ``high``, ``medium``, ``low``), or ``clear``: the
            condition behind the alert ``{subject}:{kind}`` is over.
        kind: what happened (``kds_silent``, ``disk_full``); with ``subject``, the alert's id.
        subject: what it is about (a station, a device, a sink, ``gateway``).
        message: in words, for people.
    """

    level: str
    kind: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class AlertOut:
    """A notice on its way out of a service (the outbox hands it to the alert service)."""

    alert: Notice


@dataclass(frozen=True, slots=True)
class MenuOut:
    """The menu, retained."""

    menu: Menu


OutboundEvent = ReplyOut | TicketOut | StatusOut | AlertOut | MenuOut


class Outbox(Protocol):
    """What a service needs from the adapter that carries its output."""

    def send(self, event: OutboundEvent) -> None:
        """Hand one event to the wire (at-least-once delivery is the service's job)."""
        ...

    def ack(self, token: object) -> None:
        """Acknowledge the wire message behind ``token`` (its effects are durable now)."""
        ...

    def fail(self, token: object, error: Exception) -> None:
        """The service could not handle the message behind ``token`` (a bug, not bad input).

        The adapter hands it to the service again, up to a bounded number of attempts, then
        records it as a dead letter (counted, alerted) and acknowledges it, so that one message
        never holds a flow-control slot for good.
        """
        ...
