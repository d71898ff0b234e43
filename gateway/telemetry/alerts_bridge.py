"""The alert service's MQTT adapter: events and the active set out, acknowledgements in.

Out (:class:`~gateway.telemetry.alerts_service.AlertOutlet`):

* every event as an :class:`~gateway.contract.Alert` on ``rst/{site}/alerts``, QoS 1;
* the active set as :class:`~gateway.contract.AlertsActive` on ``rst/{site}/alerts/active``,
  QoS 1, retained; published again after every reconnect, since a broker restarted from an old
  persistence file may hold a stale set or none;
* the answer to an acknowledgement as :class:`~gateway.contract.AlertAckReply`, as tablets get
  theirs: to the MQTT 5 response topic with the request's correlation data when the request
  names one below ``rst/{site}/alerts/ack_replies/`` (any other is ignored and counted: a
  client must not make the gateway publish where it likes), else on
  ``rst/{site}/alerts/ack_replies``.

In: :class:`~gateway.contract.AlertAck` on ``rst/{site}/alerts/ack``, QoS 1, claimed on the
:class:`~gateway.transport.dispatch.Dispatcher`. A payload that is not one is answered with
``rejected`` and its errors; never raised. The MQTT message is acknowledged by the service once
what it changed is on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.codec import MAX_ERRORS, encode, error_path
from gateway.contract import (
    AckStatus,
    ActiveAlert,
    Alert,
    AlertAck,
    AlertAckReply,
    AlertEventKind,
    AlertPriority,
    AlertsActive,
    FieldError,
    Topics,
)
from gateway.telemetry.alerts_service import AckUnreadable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from gateway.telemetry.alerts import AckResult, AlertEvent, AlertRecord
    from gateway.transport.dispatch import Dispatcher
    from gateway.transport.mqtt import InboundMessage, MqttClient

__all__ = [
    "MAX_ACK_BYTES",
    "AckRoute",
    "AlertBridge",
    "BridgeStats",
    "active_message",
    "alert_message",
    "decode_ack",
    "reply_message",
]

log = logging.getLogger(__name__)

MAX_ACK_BYTES = 4096  # an ack is an id, a name and a 200-character note


@dataclass(frozen=True, slots=True)
class AckRoute:
    """Where an acknowledgement's answer goes.

    Attributes:
        response_topic: the MQTT 5 response topic, when the request named an allowed one.
        correlation_data: the request's correlation data, copied into the answer.
    """

    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(slots=True)
class BridgeStats:
    """Counters of the alert bridge, exposed as data.

    Attributes:
        acks: acknowledgements taken from the broker.
        published: messages handed to the MQTT client.
        dropped: messages the client refused (its bound of pending publishes was reached).
        foreign_response_topics: requests whose response topic was not allowed (answered on
            the default topic instead).
    """

    acks: int = 0
    published: int = 0
    dropped: int = 0
    foreign_response_topics: int = 0


class _IdProbe(BaseModel):
    model_config = ConfigDict(extra="ignore")
    alert_id: str


def decode_ack(payload: bytes, max_bytes: int = MAX_ACK_BYTES) -> AlertAck | AckUnreadable:
    """An :class:`AlertAck`, or what is wrong with the payload (never raises)."""
    if len(payload) > max_bytes:
        msg = f"payload is {len(payload)} bytes; the limit is {max_bytes}"
        return AckUnreadable(None, (FieldError(path="", message=msg),))
    try:
        return AlertAck.model_validate_json(payload)
    except ValidationError as err:
        details = err.errors(include_url=False, include_input=False)
    if any(d["type"] == "json_invalid" for d in details):
        msg = "not valid UTF-8 JSON; send one JSON object"
        return AckUnreadable(None, (FieldError(path="", message=msg),))
    errors = tuple(
        FieldError(path=error_path(tuple(d["loc"])), message=d["msg"])
        for d in details[:MAX_ERRORS]
    )
    try:
        alert_id: str | None = _IdProbe.model_validate_json(payload).alert_id
    except ValidationError:
        alert_id = None
    return AckUnreadable(alert_id, errors)


def alert_message(ev: AlertEvent) -> Alert:
    """An event as it goes on the wire."""
    a = ev.alert
    return Alert(
        alert_id=a.alert_id,
        seq=ev.seq,
        event=AlertEventKind(ev.event),
        priority=AlertPriority(a.priority.value),
        subject=a.subject,
        rule=a.rule,
        point=a.point,
        value=a.value,
        limit=a.limit,
        food_safety=a.food_safety,
        started_at=a.started_at,
        at=ev.at,
        message=ev.message,
        acked_by=a.acked_by,
        acked_at=a.acked_at,
        note=a.note,
    )


def active_message(alerts: Sequence[AlertRecord], seq: int, at: datetime) -> AlertsActive:
    """The retained set of active alerts."""
    return AlertsActive(
        seq=seq,
        at=at,
        alerts=[
            ActiveAlert(
                alert_id=a.alert_id,
                priority=AlertPriority(a.priority.value),
                subject=a.subject,
                rule=a.rule,
                point=a.point,
                value=a.value,
                limit=a.limit,
                food_safety=a.food_safety,
                started_at=a.started_at,
                message=a.message,
                acked_by=a.acked_by,
                acked_at=a.acked_at,
                note=a.note,
            )
            for a in alerts
        ],
    )


def _stamp(t: datetime | None) -> str:
    return "?" if t is None else t.isoformat(timespec="seconds")


def reply_message(result: AckResult, at: datetime) -> AlertAckReply:
    """The answer to an acknowledgement, with a sentence for the person who sent it."""
    a, alert_id = result.alert, result.alert_id
    status = result.status
    if status is AckStatus.ACKNOWLEDGED and a is not None:
        message = f"{alert_id} acknowledged by {a.acked_by}"
        if a.cleared_at is not None:
            message += "; nothing else ends this alert, so it is over now"
    elif status is AckStatus.ALREADY_ACKNOWLEDGED and a is not None:
        message = f"{alert_id} was already acknowledged by {a.acked_by} at {_stamp(a.acked_at)}"
        if a.cleared_at is not None:
            message += f"; it is over since {_stamp(a.cleared_at)}"
    elif status is AckStatus.CLEARED and a is not None:
        message = (
            f"{alert_id} is over since {_stamp(a.cleared_at)}, unacknowledged: nothing to "
            "acknowledge"
        )
    elif status is AckStatus.UNKNOWN:
        message = (
            f"no active or recent alert is called {alert_id!r}; the active ones are retained "
            "on the alerts/active topic"
        )
    else:
        message = "the acknowledgement could not be read: see errors"
    return AlertAckReply(
        alert_id=alert_id,
        status=status,
        message=message,
        acked_by=None if a is None else a.acked_by,
        acked_at=None if a is None else a.acked_at,
        note=None if a is None else a.note,
        cleared_at=None if a is None else a.cleared_at,
        errors=list(result.errors),
        at=at,
    )


class AlertBridge:
    """Publishes what the alert service says and hands it the acknowledgements."""

    owner = "alerts"

    def __init__(self, site: str, client: MqttClient) -> None:
        """Bind to a site's alert topics on a connected (or connecting) client."""
        self.topics = Topics(site)
        self._client = client
        self._last_active: bytes | None = None
        self._take: Callable[[AlertAck | AckUnreadable, object, object], None] | None = None
        self._dropping = False
        self.stats = BridgeStats()

    def attach(
        self,
        take: Callable[[AlertAck | AckUnreadable, object, object], None],
        dispatcher: Dispatcher,
    ) -> None:
        """Hand acknowledgements to ``take``, claiming their topic on ``dispatcher``."""
        self._take = take
        dispatcher.route(self.topics.alerts_ack, self._on_ack, qos=1, owner=self.owner)
        self._client.on_connection_change(lambda up: self._republish() if up else None)

    def _on_ack(self, msg: InboundMessage) -> None:
        assert self._take is not None
        self.stats.acks += 1
        route = AckRoute(correlation_data=msg.correlation_data)
        topic = msg.response_topic
        if topic is not None:
            if topic.startswith(self.topics.alerts_ack_replies + "/"):
                route = AckRoute(topic, msg.correlation_data)
            else:
                self.stats.foreign_response_topics += 1
        self._take(decode_ack(msg.payload), route, msg)

    # --- the outlet ---------------------------------------------------------------------

    def events(self, events: Sequence[AlertEvent]) -> None:
        """Publish each event on the alerts topic."""
        for ev in events:
            self._publish(self.topics.alerts, encode(alert_message(ev)))

    def active(self, alerts: Sequence[AlertRecord], seq: int, at: datetime) -> None:
        """Replace the retained active set."""
        body = encode(active_message(alerts, seq, at))
        self._last_active = body
        self._publish(self.topics.alerts_active, body, retain=True)

    def reply(self, route: object, result: AckResult, at: datetime) -> None:
        """Answer an acknowledgement where its route says."""
        assert isinstance(route, AckRoute)
        body = encode(reply_message(result, at))
        topic = route.response_topic or self.topics.alerts_ack_replies
        self._publish(topic, body, correlation_data=route.correlation_data)

    def ack(self, token: object) -> None:
        """Acknowledge the MQTT message of an acknowledgement."""
        self._client.ack(token)  # type: ignore[arg-type]

    # --- inside -------------------------------------------------------------------------

    def _republish(self) -> None:
        if self._last_active is not None:
            self._publish(self.topics.alerts_active, self._last_active, retain=True)

    def _publish(
        self,
        topic: str,
        body: bytes,
        *,
        retain: bool = False,
        correlation_data: bytes | None = None,
    ) -> None:
        ok = self._client.publish(
            topic, body, qos=1, retain=retain, correlation_data=correlation_data
        )
        if ok:
            self.stats.published += 1
            if self._dropping:
                self._dropping = False
                log.warning("alerts: the MQTT client takes alert messages again")
            return
        self.stats.dropped += 1
        if not self._dropping:
            self._dropping = True
            log.error(
                "alerts: the MQTT client refused an alert message on %s (too many publishes "
                "pending); they are kept on disk and the active set is sent again on reconnect; "
                "counted in dropped", topic,
            )  # fmt: skip
