"""Reply bookkeeping of the tablets: first reply, duplicates, response topics, bounded records."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.contract import CommandReply, FieldError, OrderReply, ReplyStatus
from gateway.site_file import load_site
from simulators.cli import find_config
from simulators.orders import OrderFactory
from simulators.records import CommandRecord, EvenFraction, SentOrder, TabletResult

CFG = load_site(find_config(Path("examples/demo-site.toml")))
FACTORY = OrderFactory(CFG, random.Random(1), ManualClock())


def sent(result: TabletResult, kind: str = "valid", rt: str | None = None) -> SentOrder:
    order = FACTORY.make(kind)
    rec = SentOrder(
        order,
        "tablet-01",
        datetime.now(UTC),
        0.0,
        response_topic=rt,
        correlation_data=order.order_id.bytes if rt else None,
    )
    result.orders[order.order_id] = rec
    return rec


@pytest.mark.parametrize(
    ("fraction", "n", "expected"), [(0.25, 100, 25), (0.1, 60, 6), (0.0, 50, 0), (1.0, 7, 7)]
)
def test_even_fraction_is_exact(fraction: float, n: int, expected: int) -> None:
    chooser = EvenFraction(fraction)
    assert sum(chooser.take() for _ in range(n)) == expected


def test_first_reply_counts_and_later_ones_are_compared() -> None:
    result = TabletResult()
    rec = sent(result)
    oid = rec.order.order_id
    ok = OrderReply(order_id=oid, status=ReplyStatus.ACCEPTED)
    assert result.note_reply(ok, "t", None, 1.0) is rec
    assert result.note_reply(ok, "t", None, 2.0) is None
    assert result.replies[oid].count == 2
    assert result.replies[oid].consistent
    bad = OrderReply(
        order_id=oid,
        status=ReplyStatus.REJECTED,
        errors=[FieldError(path="", message="changed its mind")],
    )
    result.note_reply(bad, "t", None, 3.0)
    c = result.counters
    assert not result.replies[oid].consistent
    assert (c.replies, c.duplicate_replies, c.inconsistent_replies, c.accepted) == (3, 2, 1, 1)
    assert result.unanswered() == []


def test_unexpected_and_unmatched_replies_are_counted() -> None:
    result = TabletResult()
    broken = sent(result, "broken_json")
    result.note_reply(
        OrderReply(order_id=broken.order.order_id, status=ReplyStatus.ACCEPTED), "t", None, 0.0
    )
    result.note_reply(OrderReply(order_id=None, status=ReplyStatus.REJECTED), "t", None, 0.0)
    result.note_reply(
        OrderReply(order_id=FACTORY.uuid(), status=ReplyStatus.REJECTED), "t", None, 0.0
    )
    c = result.counters
    assert (c.unexpected_status, c.replies_without_id, c.unmatched_replies) == (1, 1, 1)


def test_response_topic_and_correlation_data_are_checked() -> None:
    result = TabletResult()
    rec = sent(result, rt="rst/x/tablet/tablet-01/rpc")
    reply = OrderReply(order_id=rec.order.order_id, status=ReplyStatus.ACCEPTED)
    result.note_reply(reply, "rst/x/tablet/tablet-01/rpc", rec.correlation_data, 0.0)
    assert result.replies[rec.order.order_id].response_topic_ok
    result.note_reply(reply, "rst/x/tablet/tablet-01/replies", rec.correlation_data, 0.0)
    assert result.replies[rec.order.order_id].response_topic_ok is False
    assert (result.counters.response_topic_ok, result.counters.response_topic_bad) == (1, 1)


def test_trim_keeps_orders_still_waiting() -> None:
    result = TabletResult()
    waiting = sent(result)
    answered = [sent(result) for _ in range(4)]
    for rec in answered:
        result.note_reply(
            OrderReply(order_id=rec.order.order_id, status=ReplyStatus.ACCEPTED), "t", None, 0.0
        )
    result.trim(2)
    assert list(result.orders) == [waiting.order.order_id, *(r.order.order_id for r in answered)]
    result.note_reply(
        OrderReply(order_id=waiting.order.order_id, status=ReplyStatus.ACCEPTED), "t", None, 0.0
    )
    result.trim(2)
    assert list(result.orders) == [r.order.order_id for r in answered[-2:]]


def test_command_replies() -> None:
    result = TabletResult()
    cid = FACTORY.uuid()
    result.commands[cid] = CommandRecord(cid, FACTORY.uuid(), "void_line", "tablet-01", b"{}")
    rejected = CommandReply(command_id=cid, status=ReplyStatus.REJECTED)
    assert result.note_command_reply(rejected)
    assert not result.note_command_reply(rejected)
    assert not result.note_command_reply(CommandReply(command_id=None, status=ReplyStatus.REJECTED))
    c = result.counters
    assert (c.command_replies, c.command_rejected, c.unmatched_replies) == (2, 1, 1)
