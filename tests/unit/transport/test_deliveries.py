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


def test_qos0_is_dropped_while_disconnected_not_for_qos1s_limit() -> None:
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


# ---- QoS 0: bounded while it waits unsent --------------------------------------------------


def test_qos0_unsent_count_bound_drops_the_newest_apart_from_qos1() -> None:
    book = Deliveries(max_pending=4, max_unsent_qos0=3, max_unsent_qos0_bytes=10_000)
    for mid in range(1, 4):
        assert not book.refuse(0, connected=True, size=10)
        book.sent(mid, 0, 10)
    assert book.refuse(0, connected=True, size=10)
    assert book.refuse(0, connected=True, size=10)
    stats = book.stats(reconnects=0)
    assert (stats.qos0_dropped, stats.publish_dropped) == (2, 0)
    assert (stats.qos0_unsent, stats.qos0_unsent_bytes) == (3, 30)
    assert stats.pending_publishes == 0  # QoS 0 never awaits a PUBACK
    book.acknowledged(1, None)  # written to the socket
    assert not book.refuse(0, connected=True, size=10)
    assert book.stats(reconnects=0).published == 1


def test_qos0_unsent_bytes_bound_lets_one_large_publish_through_alone() -> None:
    book = Deliveries(max_pending=4, max_unsent_qos0=100, max_unsent_qos0_bytes=100)
    assert not book.refuse(0, connected=True, size=500)  # nothing waits: never stuck
    book.sent(1, 0, 500)
    assert book.refuse(0, connected=True, size=1)
    book.acknowledged(1, None)
    assert not book.refuse(0, connected=True, size=60)
    book.sent(2, 0, 60)
    assert book.refuse(0, connected=True, size=41)  # 60 + 41 > 100
    assert not book.refuse(0, connected=True, size=40)
    assert book.stats(reconnects=0).qos0_dropped == 2


def test_qos0_unsent_at_a_lost_connection_counts_as_dropped() -> None:
    book = Deliveries(max_pending=4)
    book.sent(1, 0, 5)
    book.sent(2, 0, 5)
    book.connection_lost()
    stats = book.stats(reconnects=0)
    assert (stats.qos0_dropped, stats.qos0_unsent, stats.qos0_unsent_bytes) == (2, 0, 0)
    book.acknowledged(1, None)  # a late write report for a forgotten id changes nothing
    assert book.stats(reconnects=0).published == 0


def test_qos0_drops_log_once_when_they_start_and_once_when_they_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = Deliveries(max_pending=4, max_unsent_qos0=4, max_unsent_qos0_bytes=10_000)
    mids = iter(range(1, 1000))
    unsent: list[int] = []

    def publish() -> bool:
        if book.refuse(0, connected=True, size=1):
            return False
        mid = next(mids)
        book.sent(mid, 0, 1)
        unsent.append(mid)
        return True

    with caplog.at_level(logging.INFO, logger="gateway.transport.deliveries"):
        while publish():
            pass
        for _ in range(50):  # held at the bound: one written, one accepted, one dropped
            book.acknowledged(unsent.pop(0), None)
            assert publish()
            assert not publish()
        assert len(caplog.records) == 1
        assert "QoS 0" in caplog.records[0].getMessage()
        while len(unsent) >= 2:  # drained below half the bound: the next publish ends the run
            book.acknowledged(unsent.pop(0), None)
        assert publish()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert "51 were dropped" in caplog.records[1].getMessage()
    assert book.stats(reconnects=0).qos0_dropped == 51


def test_qos1_drops_at_the_limit_log_once_until_half_the_limit_is_acked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = Deliveries(max_pending=4)
    for mid in range(1, 5):
        book.sent(mid, 1)
    with caplog.at_level(logging.INFO, logger="gateway.transport.deliveries"):
        assert book.refuse(1, connected=True)
        book.acknowledged(1, None)  # 3 of 4 pending: still no room
        book.sent(5, 1)
        assert book.refuse(1, connected=True)
        assert len(caplog.records) == 1
        book.acknowledged(2, None)
        book.acknowledged(3, None)  # 2 of 4: not below half
        assert len(caplog.records) == 1
        book.acknowledged(4, None)
    assert len(caplog.records) == 2
    assert "flow again; 2 were dropped" in caplog.records[1].getMessage()
    assert book.stats(reconnects=0).qos0_dropped == 0
