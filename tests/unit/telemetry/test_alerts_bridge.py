"""The alert bridge: acks decoded without raising, replies routed safely, events on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.contract import AckStatus, Alert, AlertAck, AlertAckReply, AlertsActive
from gateway.telemetry.alerts import AckResult, AlertBook, Timing
from gateway.telemetry.alerts_bridge import AckRoute, AlertBridge, decode_ack, reply_message
from gateway.telemetry.alerts_service import AckUnreadable
from gateway.telemetry.signals import Priority, Signal
from gateway.transport.messages import InboundMessage

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
TIMING = Timing(dict.fromkeys(Priority))


@dataclass
class Client:
    published: list[dict[str, Any]] = field(default_factory=list)
    subscribed: list[str] = field(default_factory=list)
    acked: list[object] = field(default_factory=list)
    refuse: bool = False
    callbacks: list[Any] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, **kw: Any) -> bool:
        self.published.append({"topic": topic, "body": json.loads(payload), **kw})
        return not self.refuse

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.subscribed.append(topic_filter)

    def ack(self, msg: object) -> None:
        self.acked.append(msg)

    def on_connection_change(self, cb: Any) -> None:
        self.callbacks.append(cb)


@dataclass
class Dispatch:
    routes: dict[str, Any] = field(default_factory=dict)

    def route(self, topic_filter: str, handler: Any, *, qos: int, owner: str) -> None:
        assert (qos, owner) == (1, "alerts")
        self.routes[topic_filter] = handler


def message(payload: bytes, response_topic: str | None = None,
            correlation: bytes | None = None) -> InboundMessage:  # fmt: skip
    return InboundMessage(topic="rst/s1/alerts/ack", payload=payload, qos=1, retain=False, mid=7,
                          response_topic=response_topic, correlation_data=correlation,
                          received_at=0.0)  # fmt: skip


def test_a_valid_ack_decodes() -> None:
    ack = decode_ack(b'{"v": 1, "alert_id": "fridge-1:cold_holding", "by": "Marta", "note": "ok"}')
    assert ack == AlertAck(alert_id="fridge-1:cold_holding", by="Marta", note="ok")


@pytest.mark.parametrize(
    ("payload", "alert_id", "paths"),
    [
        (b"not json", None, [""]),
        (b'{"alert_id": "a:b", "by": "   ", "note": "x"}', "a:b", ["by"]),
        (b'{"alert_id": "a:b", "by": "M"}', "a:b", ["note"]),
        (b'{"alert_id": "a:b", "by": "M", "note": "x", "priority": "low"}', "a:b", ["priority"]),
        (b'{"alert_id": 5, "by": "M", "note": "x"}', None, ["alert_id"]),
        (b'{"alert_id": "a:b", "by": "M", "note": "' + b"x" * 5000 + b'"}', None, [""]),
    ],
)
def test_a_bad_ack_says_what_is_wrong_and_never_raises(
    payload: bytes, alert_id: str | None, paths: list[str]
) -> None:
    bad = decode_ack(payload)
    assert isinstance(bad, AckUnreadable)
    assert bad.alert_id == alert_id
    assert [e.path for e in bad.errors] == paths


def test_an_ack_is_handed_over_with_where_its_answer_goes() -> None:
    client, dispatch = Client(), Dispatch()
    bridge = AlertBridge("s1", client)  # type: ignore[arg-type]
    taken: list[tuple[object, object, object]] = []
    bridge.attach(lambda ack, route, token: taken.append((ack, route, token)), dispatch)  # type: ignore[arg-type]
    handler = dispatch.routes["rst/s1/alerts/ack"]
    body = b'{"alert_id": "a:b", "by": "M", "note": "x"}'
    mine = message(body, "rst/s1/alerts/ack_replies/cli-1", b"c1")
    handler(mine)
    handler(message(body, "rst/s1/kds/grill/tickets", b"c2"))  # not allowed: default topic
    handler(message(body))
    routes = [route for _, route, _ in taken]
    assert routes == [
        AckRoute("rst/s1/alerts/ack_replies/cli-1", b"c1"),
        AckRoute(None, b"c2"),
        AckRoute(None, None),
    ]
    assert taken[0][2] is mine
    assert bridge.stats.foreign_response_topics == 1
    result = AckResult(AckStatus.UNKNOWN, "a:b")
    for route in routes:
        bridge.reply(route, result, T0)
    assert [(p["topic"], p["correlation_data"]) for p in client.published] == [
        ("rst/s1/alerts/ack_replies/cli-1", b"c1"),
        ("rst/s1/alerts/ack_replies", b"c2"),
        ("rst/s1/alerts/ack_replies", None),
    ]
    AlertAckReply.model_validate(client.published[0]["body"])


def test_events_and_the_retained_set_go_on_their_topics_and_the_set_again_on_reconnect() -> None:
    client = Client()
    bridge = AlertBridge("s1", client)  # type: ignore[arg-type]
    bridge.attach(lambda *_: None, Dispatch())  # type: ignore[arg-type]
    book = AlertBook(TIMING)
    events = book.apply(Signal("open", "fridge-1", "cold_holding", Priority.HIGH, T0,
                               point="cabinet_temp", value=9.5, limit=8.0, food_safety=True,
                               text="too warm"), 0.0, T0)  # fmt: skip
    bridge.events(events)
    bridge.active(book.active, book.seq, T0)
    (event, active) = client.published
    assert (event["topic"], event["retain"], event["qos"]) == ("rst/s1/alerts", False, 1)
    alert = Alert.model_validate(event["body"])
    assert (alert.v, alert.alert_id, alert.seq, alert.event, alert.priority) == (
        2, "fridge-1:cold_holding", 1, "opened", "high"
    )
    assert (alert.point, alert.value, alert.limit, alert.food_safety) == (
        "cabinet_temp", 9.5, 8.0, True
    )
    assert (active["topic"], active["retain"]) == ("rst/s1/alerts/active", True)
    assert [a.alert_id for a in AlertsActive.model_validate(active["body"]).alerts] == [
        "fridge-1:cold_holding"
    ]
    (reconnected,) = client.callbacks
    reconnected(False)  # noqa: FBT003 - the client's callback signature
    reconnected(True)  # noqa: FBT003
    assert client.published[-1]["topic"] == "rst/s1/alerts/active"
    assert len(client.published) == 3


def test_a_refused_publish_is_counted() -> None:
    client = Client(refuse=True)
    bridge = AlertBridge("s1", client)  # type: ignore[arg-type]
    bridge.active([], 0, T0)
    bridge.active([], 0, T0)
    assert (bridge.stats.dropped, bridge.stats.published) == (2, 0)


def test_each_reply_says_in_words_what_became_of_the_ack() -> None:
    book = AlertBook(TIMING)
    book.apply(Signal("open", "f", "r", Priority.HIGH, T0), 0.0, T0)
    first = book.ack("f:r", "Marta", "door", T0)
    texts = {
        s: reply_message(r, T0)
        for s, r in [
            ("acknowledged", first),
            ("already", book.ack("f:r", "Luca", "x", T0)),
            ("unknown", book.ack("g:r", "Luca", "x", T0)),
        ]
    }
    assert texts["acknowledged"].message == "f:r acknowledged by Marta"
    assert (texts["acknowledged"].acked_by, texts["acknowledged"].note) == ("Marta", "door")
    assert texts["already"].message.startswith("f:r was already acknowledged by Marta at ")
    assert "no active or recent alert" in texts["unknown"].message
    book.apply(Signal("open", "h", "r", Priority.HIGH, T0), 0.0, T0)
    book.apply(Signal("clear", "h", "r", Priority.HIGH, T0), 0.0, T0)
    over = reply_message(book.ack("h:r", "Luca", "x", T0), T0)
    assert (over.status, over.cleared_at) == (AckStatus.CLEARED, T0)
    assert "is over since" in over.message
