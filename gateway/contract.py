"""The wire contract: every JSON message on the broker, as versioned pydantic models.

Tablet and screen makers build against these (``docs/asyncapi.yaml`` and ``docs/schemas/`` are
generated from them by ``gateway contract export``). Inbound models forbid unknown keys, so a
tablet that sends a price (``items[0].price``) is told so instead of being silently trusted.

Every message carries ``v`` (the contract version). A receiver rejects a major version it does not
know. Topics (``{site}`` is the site id):

=============================================  ========  ==========================================
topic                                          QoS       model
=============================================  ========  ==========================================
rst/{site}/menu                                1, ret.   :class:`Menu` (gateway publishes)
rst/{site}/tablet/{device}/orders              1         :class:`OrderRequest` (tablet publishes)
rst/{site}/tablet/{device}/replies             1         :class:`OrderReply` (gateway publishes)
rst/{site}/tablet/{device}/commands            1         :class:`TabletCommand` (tablet publishes)
rst/{site}/tablet/{device}/command_replies     1         :class:`CommandReply` (gateway publishes)
rst/{site}/kds/{station}/tickets               1         :class:`Ticket` (gateway publishes)
rst/{site}/kds/{station}/events                1         :class:`KdsEvent` (screen publishes)
rst/{site}/kds/{station}/heartbeat             0         :class:`Heartbeat` (screen publishes)
rst/{site}/orders/{order_id}/status            1         :class:`OrderStatusUpdate`
rst/{site}/device/{device}/status              1, ret.   :class:`DeviceStatus` (everyone; LWT)
rst/{site}/device/{device}/telemetry           0         :class:`Telemetry` (gateway, sensor nodes)
rst/{site}/alerts                              1         :class:`Alert` (gateway publishes)
rst/{site}/alerts/active                       1, ret.   :class:`AlertsActive` (gateway publishes)
rst/{site}/alerts/ack                          1         :class:`AlertAck` (maintenance publishes)
rst/{site}/alerts/ack_replies                  1         :class:`AlertAckReply` (gateway publishes)
=============================================  ========  ==========================================

``Alert`` is at version 2 (``"v": 2``): version 1 had a ``level`` and a random id per message;
since version 2 an alert has a stable ``alert_id`` and every message is one event of its life.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

CONTRACT_VERSION = 1

#: A device, station, table or item id as it appears in topics and messages.
WireId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Note = Annotated[str, StringConstraints(max_length=200)]


# Owned here, where orders name it; the site file's routes name it too, so gateway.config imports
# it from this module. Its docstring is the schema's description: changing it changes the contract.
class Dining(StrEnum):
    """How the guest eats: routing may differ (takeaway goes to the pass, not the table)."""

    DINE_IN = "dine_in"
    TAKEAWAY = "takeaway"
    DELIVERY = "delivery"


class Inbound(BaseModel):
    """Base of messages the gateway receives: strict about unknown keys."""

    # strict: a tablet's "qty": true or "3" is a bug to report, not something to guess at.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1] = 1


class Outbound(BaseModel):
    """Base of messages the gateway sends; receivers should ignore keys they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1] = 1


# --- menu -----------------------------------------------------------------------------------


class Money(BaseModel):
    """An amount in minor units (cents) of a currency: never a float."""

    model_config = ConfigDict(frozen=True)
    amount: int
    currency: str


class MenuModifier(BaseModel):
    """A modifier as a tablet shows it."""

    model_config = ConfigDict(frozen=True)
    id: str
    names: dict[str, str]
    price: Money


class MenuItem(BaseModel):
    """An item as a tablet shows it."""

    model_config = ConfigDict(frozen=True)
    id: str
    names: dict[str, str]
    group: str
    price: Money
    course: int
    allergens: list[str]
    modifiers: list[MenuModifier]
    available: bool


class Menu(Outbound):
    """The whole menu, retained so a tablet that connects gets it at once."""

    site: str
    languages: list[str]
    items: list[MenuItem]
    published_at: datetime


# --- orders -------------------------------------------------------------------------------


class OrderLine(Inbound):
    """One line of an order. There is no price here on purpose: the gateway prices from its menu."""

    line_id: WireId
    item: WireId
    qty: int
    modifiers: list[WireId] = Field(default_factory=list, max_length=20)
    course: int | None = None
    note: Note | None = None


class OrderRequest(Inbound):
    """An order from a tablet. ``order_id`` is made once by the tablet: the idempotency key."""

    order_id: UUID
    table: WireId
    items: list[OrderLine] = Field(min_length=1)
    placed_at: AwareDatetime
    dining: Dining = Dining.DINE_IN


class ReplyStatus(StrEnum):
    """The one final answer to an order."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class FieldError(BaseModel):
    """What is wrong with an order, and where (``items[2].qty``)."""

    model_config = ConfigDict(frozen=True)
    path: str
    message: str


class OrderReply(Outbound):
    """The gateway's final reply. Resending the same ``order_id`` returns this same reply."""

    order_id: UUID | None
    status: ReplyStatus
    errors: list[FieldError] = Field(default_factory=list)
    total: Money | None = None


# --- commands -----------------------------------------------------------------------------


class FireCourse(Inbound):
    """Fire a held course now (a server's action)."""

    command: Literal["fire_course"]
    command_id: UUID
    order_id: UUID
    course: int


class VoidLine(Inbound):
    """Void a line: screens get a new version of the ticket without it."""

    command: Literal["void_line"]
    command_id: UUID
    order_id: UUID
    line_id: WireId


class ModifyLine(Inbound):
    """Change a line's quantity, modifiers or note: screens get a new version of the ticket."""

    command: Literal["modify_line"]
    command_id: UUID
    order_id: UUID
    line_id: WireId
    qty: int | None = None
    modifiers: list[WireId] | None = Field(default=None, max_length=20)
    note: Note | None = None


TabletCommand = Annotated[FireCourse | VoidLine | ModifyLine, Field(discriminator="command")]


class CommandReply(Outbound):
    """The one final answer to a command; resending the same ``command_id`` returns it again."""

    command_id: UUID | None
    status: ReplyStatus
    errors: list[FieldError] = Field(default_factory=list)


# --- tickets and screens ------------------------------------------------------------------


class TicketStatus(StrEnum):
    """Where a ticket stands, as the screen should show it."""

    HELD = "held"  # course not fired yet (expo only shows these)
    FIRED = "fired"  # cook now
    READY = "ready"  # every prep station bumped (expo)
    VOIDED = "voided"  # every line voided: take it off the screen


class TicketItem(BaseModel):
    """A line as a cook sees it."""

    model_config = ConfigDict(frozen=True)
    line_id: str
    item: str
    name: str
    qty: int
    modifiers: list[str]
    note: str | None = None
    course: int
    station: str
    fire_at: datetime
    voided: bool = False
    done: bool = False


class Ticket(Outbound):
    """One version of a ticket. Screens show each ``(ticket_id, version)`` at most once.

    A later version replaces the earlier one on the screen (which highlights what changed);
    it is never a second ticket.
    """

    ticket_id: UUID
    version: int = Field(ge=1)
    order_id: UUID
    table: str
    station: str
    course: int | None  # None on the expo ticket, which spans courses
    dining: Dining
    items: list[TicketItem]
    fire_at: datetime
    status: TicketStatus
    redirected_from: str | None = None
    sent_at: datetime


class KdsAction(StrEnum):
    """What a screen reports."""

    ACK = "ack"  # this version is on the screen
    BUMP = "bump"  # done
    RECALL = "recall"  # undo the last bump
    ITEM_DONE = "item_done"


class KdsEvent(Inbound):
    """A screen's report about a ticket version."""

    ticket_id: UUID
    version: int = Field(ge=1)
    action: KdsAction
    line_id: WireId | None = None  # for item_done
    device: WireId | None = None


class Heartbeat(Inbound):
    """A screen saying it is alive; silence longer than ``kds.silence_timeout_s`` redirects."""

    device: WireId
    sent_at: AwareDatetime | None = None


class OrderState(StrEnum):
    """An order's life as tablets and the expo see it."""

    ACCEPTED = "accepted"
    IN_KITCHEN = "in_kitchen"
    READY = "ready"
    CLOSED = "closed"
    VOIDED = "voided"


class OrderStatusUpdate(Outbound):
    """An order's current state, published when it changes.

    Each update carries the whole state, so a state that is at once superseded (``accepted``
    followed by ``in_kitchen`` when the first tickets fire immediately) may not be published.
    """

    order_id: UUID
    table: str
    state: OrderState
    stations_done: list[str]
    stations_open: list[str]
    at: datetime


class DeviceState(StrEnum):
    """Online state; ``offline`` is also every client's last will."""

    ONLINE = "online"
    DEGRADED = "degraded"  # answering, but some reads fail or come late (appliances)
    OFFLINE = "offline"


class DeviceStatus(Outbound):
    """Retained presence of a client (gateway, tablet, screen)."""

    device: str
    state: DeviceState
    role: Literal["gateway", "tablet", "kds", "appliance", "sensor"] = "gateway"
    at: datetime | None = None


#: A reading as it travels: a number, a flag or a short text.
TelemetryValue = float | int | bool | str


class Telemetry(Outbound):
    """Readings of one appliance or sensor at one time (QoS 0: a lost one is superseded).

    ``values`` holds only what was actually read at ``at``: a point that could not be read is
    absent, never repeated from an earlier reading. ``seq`` grows by one per message from the
    same publisher; a receiver drops a message whose ``seq`` is not above the last one it took
    (a duplicate), unless its ``at`` is later (the publisher restarted and counts from 1 again).
    """

    device: WireId
    at: datetime
    seq: int = Field(ge=0)
    values: dict[str, TelemetryValue]


class AlertPriority(StrEnum):
    """How urgent an alert is, most urgent first; an unacknowledged alert moves up one level."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertEventKind(StrEnum):
    """What happened to an alert."""

    OPENED = "opened"  # it started (once per occurrence: repeats are not announced)
    ESCALATED = "escalated"  # not acknowledged in time: one priority level up
    RENOTIFIED = "renotified"  # critical and still not acknowledged: said again
    ACKNOWLEDGED = "acknowledged"  # someone took it on (acked_by, note)
    CLEARED = "cleared"  # it is over: gone from the active set


class Alert(BaseModel):
    """One event in the life of an alert: opened, escalated, renotified, acknowledged, cleared.

    ``alert_id`` is stable (``{subject}:{rule}``, e.g. ``fridge-1:cold_holding``): every event of
    one alert carries it, and it is what an :class:`AlertAck` names. Order events by ``seq``
    (the gateway's durable sequence), not by ``at``. ``priority`` is the alert's priority after
    the event.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[2] = 2
    alert_id: str
    seq: int = Field(ge=1)
    event: AlertEventKind
    priority: AlertPriority
    subject: str  # the device for an appliance's alert; else a station, a sink, "gateway"...
    rule: str
    point: str | None = None
    value: float | None = None
    limit: float | None = None
    food_safety: bool = False
    started_at: datetime
    at: datetime
    message: str
    acked_by: str | None = None
    acked_at: datetime | None = None
    note: str | None = None


class ActiveAlert(BaseModel):
    """An alert that is not over yet, as the retained active set lists it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    alert_id: str
    priority: AlertPriority
    subject: str
    rule: str
    point: str | None = None
    value: float | None = None
    limit: float | None = None
    food_safety: bool = False
    started_at: datetime
    message: str
    acked_by: str | None = None
    acked_at: datetime | None = None
    note: str | None = None


class AlertsActive(Outbound):
    """Every active alert, most urgent first; retained, and published again after each change.

    ``seq`` is the sequence number of the last event it includes: a set with a lower ``seq``
    than one already shown is older.
    """

    seq: int = Field(ge=0)
    at: datetime
    alerts: list[ActiveAlert]


#: Who acknowledges: a person's name or initials, as the kitchen knows them.
AckBy = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S")]
AlertId = Annotated[str, StringConstraints(min_length=1, max_length=160)]


class AlertAck(Inbound):
    """Someone takes an alert on: it stops escalating. Idempotent: an alert is acknowledged once.

    An alert that nothing else ends (a dead letter, a clock step) is over once acknowledged.
    """

    alert_id: AlertId
    by: AckBy
    note: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]


class AckStatus(StrEnum):
    """What became of an acknowledgement."""

    ACKNOWLEDGED = "acknowledged"  # this ack took
    ALREADY_ACKNOWLEDGED = "already_acknowledged"  # an earlier one did (acked_by says whose)
    CLEARED = "cleared"  # the alert was over before anyone acknowledged it
    UNKNOWN = "unknown"  # no active or recent alert has this id
    REJECTED = "rejected"  # the ack could not be read (errors says why)


class AlertAckReply(Outbound):
    """The answer to an :class:`AlertAck`; the same ack again gets ``already_acknowledged``."""

    alert_id: str | None
    status: AckStatus
    message: str
    acked_by: str | None = None
    acked_at: datetime | None = None
    note: str | None = None
    cleared_at: datetime | None = None
    errors: list[FieldError] = Field(default_factory=list)
    at: datetime


class Topics:
    """Builds every topic for one site, so no module formats topic strings by hand."""

    def __init__(self, site: str) -> None:
        """Bind to a site id."""
        self.site = site
        self.root = f"rst/{site}"

    @property
    def menu(self) -> str:
        """Retained menu."""
        return f"{self.root}/menu"

    @property
    def alerts(self) -> str:
        """Alert events for people."""
        return f"{self.root}/alerts"

    @property
    def alerts_active(self) -> str:
        """The retained set of active alerts."""
        return f"{self.root}/alerts/active"

    @property
    def alerts_ack(self) -> str:
        """Acknowledgements of alerts."""
        return f"{self.root}/alerts/ack"

    @property
    def alerts_ack_replies(self) -> str:
        """Answers to acknowledgements (also the root of the MQTT 5 response topics allowed)."""
        return f"{self.root}/alerts/ack_replies"

    def tablet(self, device: str, leaf: str) -> str:
        """``rst/{site}/tablet/{device}/{leaf}`` (orders, replies, commands, command_replies)."""
        return f"{self.root}/tablet/{device}/{leaf}"

    def kds(self, station: str, leaf: str) -> str:
        """``rst/{site}/kds/{station}/{leaf}`` (tickets, events, heartbeat)."""
        return f"{self.root}/kds/{station}/{leaf}"

    def order_status(self, order_id: UUID | str) -> str:
        """Order state for tablets and the expo."""
        return f"{self.root}/orders/{order_id}/status"

    def device_status(self, device: str) -> str:
        """Retained presence (and last will)."""
        return f"{self.root}/device/{device}/status"

    def device_telemetry(self, device: str) -> str:
        """Readings of an appliance or sensor (QoS 0)."""
        return f"{self.root}/device/{device}/telemetry"

    def parse(self, topic: str) -> tuple[str, str, str] | None:
        """Split ``rst/{site}/{kind}/{id}/{leaf}`` into (kind, id, leaf), or None if not ours."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != "rst" or parts[1] != self.site:
            return None
        return parts[2], parts[3], parts[4]
