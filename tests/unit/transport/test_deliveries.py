"""Deliveries: the pending-publish limit, the room signal, and which acks are still valid."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.transport.deliveries import Deliveries
from gateway.transport.messages import InboundMessage

if TYPE_CHECKING:
    import pytest


def msg(mid: int, qos: int = 1, payload: bytes = b"x") -> InboundMessage:
    return InboundMessage("t", payload, qos, False, mid, None, None, 0.0)  # noqa: FBT003


def test_limit_drops_the_newest_and_counts() -> None:
    book = Deliveries(max_pending=4)
    for mid in range(1, 5):
        assert not book.refuse(1, connected=False)
        book.sent(mid, 1)
    assert book.refuse(1, connected=True)
    assert book.refuse(1, connected=False)
    assert book.stats(reconnects=0).publish_dropped == 2
    assert book.stats(reconnects=0).pending_publishes == 4


def test_qos0_is_dropped_only_while_disconnected() -> None:
    book = Deliveries(max_pending=1)
    book.sent(1, 1)
    assert not book.refuse(0, connected=True)  # QoS 0 never waits, so the limit is not its
    assert book.refuse(0, connected=False)


def test_room_is_set_below_half() -> None:
    book = Deliveries(max_pending=4)
    assert book.room.is_set()
    book.sent(1, 1)
    assert book.room.is_set()
    book.sent(2, 1)
    assert not book.room.is_set()  # 2 of 4: not below half
    book.sent(3, 0)  # QoS 0 is never pending
    book.acknowledged(3, None)
    assert not book.room.is_set()
    book.acknowledged(1, None)
    assert book.room.is_set()
    assert book.stats(reconnects=0).published == 2


def test_broker_refusal_counts_as_dropped(caplog: pytest.LogCaptureFixture) -> None:
    book = Deliveries(max_pending=4)
    book.sent(1, 1)
    book.sent(2, 1)
    with caplog.at_level(logging.WARNING):
        book.acknowledged(1, "Not authorized")
        book.acknowledged(2, "Not authorized")
    assert book.stats(reconnects=0).publish_dropped == 2
    assert book.stats(reconnects=0).pending_publishes == 0
    assert len(caplog.records) == 1  # a run of drops logs once


def test_ack_only_once_and_only_on_the_same_connection() -> None:
    book = Deliveries(max_pending=4)
    book.set_handler(lambda _m: None)
    first = msg(7)
    book.received(first)
    assert book.take_ack(first)
    assert not book.take_ack(first)

    stale = msg(8)
    book.received(stale)
    book.connection_lost()
    redelivered = msg(8)  # same id on the new connection: a different message object
    book.received(redelivered)
    assert not book.take_ack(stale)
    assert book.take_ack(redelivered)
    assert not book.take_ack(msg(0, qos=0))


def test_messages_before_the_handler_are_kept_in_order() -> None:
    book = Deliveries(max_pending=4)
    book.received(msg(1, payload=b"a"))
    book.received(msg(2, payload=b"b"))
    seen: list[bytes] = []
    book.set_handler(lambda m: seen.append(m.payload))
    book.received(msg(3, payload=b"c"))
    assert seen == [b"a", b"b", b"c"]
    assert book.stats(reconnects=0).received == 3


def test_a_failing_handler_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    book = Deliveries(max_pending=4)
    seen: list[int] = []

    def handler(m: InboundMessage) -> None:
        if m.mid == 1:
            raise RuntimeError("bug")
        seen.append(m.mid)

    book.set_handler(handler)
    with caplog.at_level(logging.ERROR):
        book.received(msg(1))
        book.received(msg(2))
    assert seen == [2]
    assert "handler failed" in caplog.text
    assert book.take_ack(msg(1)) is False  # a different object: the original stays unacked
