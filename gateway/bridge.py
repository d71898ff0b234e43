"""The adapter between MQTT and the order service.

Wire messages in: topic and payload are decoded (``gateway.codec``) into typed events
(``gateway.events``) and handed to the service. Typed events out: encoded and published on the
contract's topics. This is the only place that knows both topics and services.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.codec import decode_command, decode_heartbeat, decode_kds_event, decode_order, encode
from gateway.contract import Topics
from gateway.events import (
    AlertOut,
    CommandIn,
    HeartbeatIn,
    KdsEventIn,
    MenuOut,
    OrderIn,
    OutboundEvent,
    ReplyOut,
    ReplyRoute,
    StatusOut,
    TicketOut,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.events import InboundEvent
    from gateway.transport.mqtt import InboundMessage, MqttClient

log = logging.getLogger(__name__)


class MqttBridge:
    """Decodes inbound MQTT messages for a service and publishes what it emits."""

    def __init__(self, site: str, client: MqttClient, max_payload: int) -> None:
        """Bind to a site's topics on a connected (or connecting) client."""
        self.topics = Topics(site)
        self._client = client
        self._max = max_payload
        self._submit: Callable[[InboundEvent], None] | None = None
        self.unroutable = 0
        self.foreign_response_topics = 0

    def attach(self, submit: Callable[[InboundEvent], None]) -> None:
        """Start feeding ``submit`` and subscribe to the inbound topics."""
        self._submit = submit
        self._client.set_handler(self.handle)
        t = self.topics
        self._client.subscribe(t.tablet("+", "orders"), qos=1)
        self._client.subscribe(t.tablet("+", "commands"), qos=1)
        self._client.subscribe(t.kds("+", "events"), qos=1)
        self._client.subscribe(t.kds("+", "heartbeat"), qos=0)

    def handle(self, msg: InboundMessage) -> None:
        """Decode one wire message into an event for the service (or ack and count a stray)."""
        parsed = self.topics.parse(msg.topic)
        submit = self._submit
        if parsed is None or submit is None:
            self._drop(msg)
            return
        kind, ident, leaf = parsed
        if kind == "tablet" and leaf in ("orders", "commands"):
            response_topic = msg.response_topic
            if response_topic is not None and not response_topic.startswith(
                self.topics.tablet(ident, "")
            ):
                # A tablet may only have replies sent below its own topics: otherwise any
                # tablet could make the gateway publish tickets to a kitchen screen.
                self.foreign_response_topics += 1
                response_topic = None
            route = ReplyRoute(ident, response_topic, msg.correlation_data)
            if leaf == "orders":
                submit(OrderIn(decode_order(msg.payload, self._max), route, msg))
            else:
                submit(CommandIn(decode_command(msg.payload, self._max), route, msg))
        elif kind == "kds" and leaf == "events":
            submit(KdsEventIn(ident, decode_kds_event(msg.payload, self._max), msg))
        elif kind == "kds" and leaf == "heartbeat":
            submit(HeartbeatIn(ident, decode_heartbeat(msg.payload, self._max)))
        else:
            self._drop(msg)

    def _drop(self, msg: InboundMessage) -> None:
        # Not ours (a stray subscription match): acknowledge so it does not block the window.
        self.unroutable += 1
        self._client.ack(msg)

    def ack(self, token: object) -> None:
        """Acknowledge the message behind ``token`` (the service committed its effects)."""
        self._client.ack(token)  # type: ignore[arg-type]

    def send(self, event: OutboundEvent) -> None:
        """Publish one outbound event on its topic."""
        t = self.topics
        c = self._client
        if isinstance(event, TicketOut):
            c.publish(t.kds(event.station, "tickets"), event.body)
        elif isinstance(event, ReplyOut):
            r = event.route
            if r.response_topic:
                c.publish(r.response_topic, event.body, correlation_data=r.correlation_data)
            else:
                leaf = "command_replies" if event.command else "replies"
                c.publish(t.tablet(r.device, leaf), event.body)
        elif isinstance(event, StatusOut):
            c.publish(t.order_status(event.order_id), event.body)
        elif isinstance(event, AlertOut):
            c.publish(t.alerts, encode(event.alert))
        elif isinstance(event, MenuOut):
            c.publish(t.menu, encode(event.menu), retain=True)
