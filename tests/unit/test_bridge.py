"""The MQTT bridge: topics to typed events and back (with a recording stand-in for the client)."""

from __future__ import annotations

import json
import uuid

from gateway.bridge import MqttBridge
from gateway.codec import DecodeFailure
from gateway.events import InboundEvent, OrderIn, ReplyOut
from gateway.transport.dispatch import DeadLetter, Dispatcher
from gateway.transport.messages import InboundMessage


class RecordingClient:
    def __init__(self) -> None:
        self.handler = None
        self.subscriptions: list[str] = []
        self.published: list[tuple[str, bytes, bytes | None]] = []
        self.acked: list[InboundMessage] = []

    def set_handler(self, handler) -> None:
        self.handler = handler

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscriptions.append(topic)

    def ack(self, msg: InboundMessage) -> None:
        self.acked.append(msg)

    def publish(
        self, topic: str, payload: bytes, *, correlation_data: bytes | None = None, **_: object
    ) -> bool:
        self.published.append((topic, payload, correlation_data))
        return True


def _msg(topic: str, payload: bytes, response_topic: str | None = None) -> InboundMessage:
    return InboundMessage(
        topic=topic,
        payload=payload,
        qos=1,
        retain=False,
        mid=1,
        response_topic=response_topic,
        correlation_data=b"corr",
        received_at=0.0,
    )


def _order() -> bytes:
    return json.dumps(
        {
            "order_id": str(uuid.uuid4()),
            "table": "T1",
            "placed_at": "2026-11-25T19:00:00+00:00",
            "items": [{"line_id": "1", "item": "burger", "qty": 1}],
        }
    ).encode()


def attached(client: RecordingClient, events: list[InboundEvent]) -> tuple[MqttBridge, Dispatcher]:
    bridge = MqttBridge("s1", client, 65_536)  # type: ignore[arg-type]
    dispatcher = Dispatcher(client)  # type: ignore[arg-type]
    bridge.attach(events.append, dispatcher)
    dispatcher.open()
    return bridge, dispatcher


def test_orders_become_typed_events_and_replies_honour_the_tablets_response_topic() -> None:
    client = RecordingClient()
    events: list[InboundEvent] = []
    bridge, _dispatcher = attached(client, events)
    assert "rst/s1/tablet/+/orders" in client.subscriptions
    client.handler(_msg("rst/s1/tablet/tab-1/orders", _order(), "rst/s1/tablet/tab-1/rpc"))
    (ev,) = events
    assert isinstance(ev, OrderIn)
    assert not isinstance(ev.request, DecodeFailure)
    assert ev.route.response_topic == "rst/s1/tablet/tab-1/rpc"
    bridge.send(ReplyOut(ev.route, b"{}"))
    assert client.published == [("rst/s1/tablet/tab-1/rpc", b"{}", b"corr")]


def test_a_response_topic_outside_the_tablets_own_topics_is_ignored() -> None:
    client = RecordingClient()
    events: list[InboundEvent] = []
    bridge, _dispatcher = attached(client, events)
    # A tablet must not be able to make the gateway publish to a kitchen screen.
    client.handler(_msg("rst/s1/tablet/tab-1/orders", _order(), "rst/s1/kds/grill/tickets"))
    (ev,) = events
    assert isinstance(ev, OrderIn)
    assert ev.route.response_topic is None
    assert bridge.foreign_response_topics == 1
    bridge.send(ReplyOut(ev.route, b"{}"))
    assert client.published[0][0] == "rst/s1/tablet/tab-1/replies"


def test_messages_on_topics_that_are_not_ours_are_acked_and_counted() -> None:
    client = RecordingClient()
    events: list[InboundEvent] = []
    _bridge, dispatcher = attached(client, events)
    stray = _msg("rst/other-site/tablet/x/orders", b"{}")
    client.handler(stray)
    assert events == []
    assert client.acked == [stray]
    assert dispatcher.stats.unclaimed == 1


def test_the_bridge_claims_the_tablets_and_screens_topics() -> None:
    client = RecordingClient()
    _, dispatcher = attached(client, [])
    assert dispatcher.filters == {
        "rst/s1/tablet/+/orders": "orders",
        "rst/s1/tablet/+/commands": "orders",
        "rst/s1/kds/+/events": "orders",
        "rst/s1/kds/+/heartbeat": "orders",
    }


def test_a_message_the_service_cannot_handle_goes_back_to_the_dispatcher() -> None:
    client = RecordingClient()
    events: list[InboundEvent] = []
    letters: list[DeadLetter] = []
    bridge = MqttBridge("s1", client, 65_536)  # type: ignore[arg-type]
    dispatcher = Dispatcher(client, max_attempts=1, on_dead_letter=letters.append)  # type: ignore[arg-type]
    bridge.attach(events.append, dispatcher)
    dispatcher.open()
    msg = _msg("rst/s1/tablet/tab-1/orders", _order())
    client.handler(msg)
    (ev,) = events
    assert isinstance(ev, OrderIn)
    assert client.acked == []
    bridge.fail(ev.token, KeyError("bug"))
    assert [(d.topic, d.owner, d.attempts) for d in letters] == [(msg.topic, "orders", 1)]
    assert client.acked == [msg]
