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
    from gateway.transport.dispatch import Dispatcher
    from gateway.transport.mqtt import InboundMessage, MqttClient

log = logging.getLogger(__name__)


class MqttBridge:
    """Decodes inbound MQTT messages for a service and publishes what it emits.

    It claims the inbound topics of tablets and screens with the :class:`Dispatcher` (one
    handler per kind of message, so no topic is parsed twice) and is the service's ``Outbox``.
    """

    owner = "orders"

    def __init__(
        self,
        site: str,
        client: MqttClient,
        max_payload: int,
        *,
        on_alert: Callable[[AlertOut], None] | None = None,
    ) -> None:
        """Bind to a site's topics on a connected (or connecting) client.

        ``on_alert`` takes the service's alerts (the alert service publishes them: they are
        recorded before anyone hears of them); without it they are logged and dropped.
        """
        self.topics = Topics(site)
        self._client = client
        self._max = max_payload
        self._on_alert = on_alert
        self._submit: Callable[[InboundEvent], None] | None = None
        self._dispatcher: Dispatcher | None = None
        self.foreign_response_topics = 0

    def attach(self, submit: Callable[[InboundEvent], None], dispatcher: Dispatcher) -> None:
        """Feed ``submit`` with the messages of the inbound topics, claimed on ``dispatcher``."""
        self._submit = submit
        self._dispatcher = dispatcher
        t, owner = self.topics, self.owner
        dispatcher.route(t.tablet("+", "orders"), self._on_order, qos=1, owner=owner)
        dispatcher.route(t.tablet("+", "commands"), self._on_command, qos=1, owner=owner)
        dispatcher.route(t.kds("+", "events"), self._on_kds_event, qos=1, owner=owner)
        dispatcher.route(t.kds("+", "heartbeat"), self._on_heartbeat, qos=0, owner=owner)

    def _ident(self, msg: InboundMessage) -> str:
        # The dispatcher only hands over topics of our filters: rst/{site}/{kind}/{id}/{leaf}.
        return msg.topic.split("/", 4)[3]

    def _route(self, msg: InboundMessage) -> ReplyRoute:
        ident = self._ident(msg)
        response_topic = msg.response_topic
        if response_topic is not None and not response_topic.startswith(
            self.topics.tablet(ident, "")
        ):
            # A tablet may only have replies sent below its own topics: otherwise any
            # tablet could make the gateway publish tickets to a kitchen screen.
            self.foreign_response_topics += 1
            response_topic = None
        return ReplyRoute(ident, response_topic, msg.correlation_data)

    def _on_order(self, msg: InboundMessage) -> None:
        assert self._submit is not None
        self._submit(OrderIn(decode_order(msg.payload, self._max), self._route(msg), msg))

    def _on_command(self, msg: InboundMessage) -> None:
        assert self._submit is not None
        route = self._route(msg)
        self._submit(CommandIn(decode_command(msg.payload, self._max), route, msg))

    def _on_kds_event(self, msg: InboundMessage) -> None:
        assert self._submit is not None
        event = decode_kds_event(msg.payload, self._max)
        self._submit(KdsEventIn(self._ident(msg), event, msg))

    def _on_heartbeat(self, msg: InboundMessage) -> None:
        assert self._submit is not None
        self._submit(HeartbeatIn(self._ident(msg), decode_heartbeat(msg.payload, self._max)))

    def ack(self, token: object) -> None:
        """Acknowledge the message behind ``token`` (the service committed its effects)."""
        self._client.ack(token)  # type: ignore[arg-type]

    def fail(self, token: object, error: Exception) -> None:
        """The service could not handle the message behind ``token``: the dispatcher retries."""
        assert self._dispatcher is not None
        self._dispatcher.failed(token, error)  # type: ignore[arg-type]

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
            if self._on_alert is None:
                log.warning("no alert service to take %s: not published", event.alert)
            else:
                self._on_alert(event)
        elif isinstance(event, MenuOut):
            c.publish(t.menu, encode(event.menu), retain=True)
