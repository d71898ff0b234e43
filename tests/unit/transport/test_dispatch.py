"""The topic dispatcher: one owner per topic, nothing dropped silently, failures bounded."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RouteConflict, TransportError
from gateway.transport.dispatch import DeadLetter, Dispatcher, filters_overlap, matches
from gateway.transport.messages import InboundMessage


class FakeClient:
    """Records what the dispatcher asks of the MQTT client."""

    def __init__(self) -> None:
        self.handler: Any = None
        self.subscribed: list[tuple[str, int]] = []
        self.acked: list[InboundMessage] = []

    def set_handler(self, handler: Any) -> None:
        self.handler = handler

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        if "#" in topic_filter[:-1]:
            raise TransportError("invalid")
        self.subscribed.append((topic_filter, qos))

    def ack(self, msg: InboundMessage) -> None:
        self.acked.append(msg)


def msg(topic: str, payload: bytes = b"{}", qos: int = 1, mid: int = 1) -> InboundMessage:
    return InboundMessage(topic, payload, qos, False, mid, None, None, 0.0)  # noqa: FBT003


def dispatcher(**kw: Any) -> tuple[Dispatcher, FakeClient]:
    client = FakeClient()
    return Dispatcher(client, **kw), client  # type: ignore[arg-type]


# --- matching (pure) --------------------------------------------------------------------------

LEVEL = st.sampled_from(["a", "b", "c", ""])
FILTER_LEVEL = st.sampled_from(["a", "b", "+", ""])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


def reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT matching as a regular expression: an independent statement of the rules."""
    parts = topic_filter.split("/")
    pattern = ""
    for i, level in enumerate(parts):
        sep = "/" if i else ""
        if level == "#":
            # '#' matches the parent level too: "a/#" matches "a".
            pattern += "(/.*)?" if i else ".*"
            break
        pattern += sep + ("[^/]*" if level == "+" else re.escape(level))
    return re.fullmatch(pattern, topic) is not None


@given(filters(), st.lists(LEVEL, min_size=1, max_size=5).map("/".join))
def test_matching_follows_mqtt_rules(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic) == reference_match(topic_filter, topic)


@given(filters(), filters(), st.lists(LEVEL, min_size=1, max_size=5).map("/".join))
def test_filters_that_share_a_topic_are_said_to_overlap(a: str, b: str, topic: str) -> None:
    if matches(a, topic) and matches(b, topic):
        assert filters_overlap(a, b)
        assert filters_overlap(b, a)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("rst/s/tablet/+/orders", "rst/s/kds/+/events", False),
        ("rst/s/tablet/+/orders", "rst/s/tablet/t1/orders", True),
        ("rst/s/device/p1/telemetry", "rst/s/device/p2/telemetry", False),
        ("a/b", "a/b/#", True),
        ("a/+", "a/b/c", False),
        ("#", "x/y", True),
    ],
)
def test_overlap_examples(a: str, b: str, overlap: bool) -> None:
    assert filters_overlap(a, b) is overlap


def test_wildcards_do_not_match_dollar_topics() -> None:
    assert not matches("#", "$SYS/broker/uptime")
    assert not matches("+/broker/uptime", "$SYS/broker/uptime")
    assert matches("$SYS/#", "$SYS/broker/uptime")


# --- routing ----------------------------------------------------------------------------------


def test_each_message_reaches_only_the_handler_of_its_filter() -> None:
    d, client = dispatcher()
    orders: list[str] = []
    sensors: list[str] = []
    d.route("rst/s/tablet/+/orders", lambda m: orders.append(m.topic), qos=1, owner="orders")
    d.route("rst/s/device/p1/telemetry", lambda m: sensors.append(m.topic), qos=0, owner="dev")
    assert client.subscribed == [("rst/s/tablet/+/orders", 1), ("rst/s/device/p1/telemetry", 0)]
    d.open()
    for topic in ["rst/s/tablet/t1/orders", "rst/s/device/p1/telemetry", "rst/s/tablet/t2/orders"]:
        client.handler(msg(topic))
    assert orders == ["rst/s/tablet/t1/orders", "rst/s/tablet/t2/orders"]
    assert sensors == ["rst/s/device/p1/telemetry"]
    assert d.stats.routed == {"orders": 2, "dev": 1}
    assert client.acked == []  # acknowledging is the handler's business


def test_an_overlapping_claim_is_refused_at_start_up_naming_both_owners() -> None:
    d, _ = dispatcher()
    d.route("rst/s/tablet/+/orders", lambda m: None, qos=1, owner="orders")
    with pytest.raises(RouteConflict) as info:
        d.route("rst/s/tablet/t1/#", lambda m: None, qos=1, owner="inventory")
    assert info.value.owner == "inventory"
    assert info.value.other_owner == "orders"
    assert "orders" in str(info.value)
    with pytest.raises(RouteConflict):
        d.route("rst/s/tablet/+/orders", lambda m: None, qos=1, owner="orders")


def test_unclaimed_messages_are_acked_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.transport.dispatch")
    d, client = dispatcher()
    d.route("rst/s/tablet/+/orders", lambda m: None, qos=1, owner="orders")
    d.open()
    strays = [msg("rst/s/old/x/y"), msg("rst/s/old/z/y"), msg("rst/s/tablet/t1/replies")]
    for m in strays:
        client.handler(m)
    assert client.acked == strays
    assert d.stats.unclaimed == 3
    warnings = [r for r in caplog.records if "matches no handler" in r.getMessage()]
    assert len(warnings) == 2  # one per shape: rst/s/old, rst/s/tablet


def test_nothing_is_handed_over_before_open() -> None:
    d, client = dispatcher()
    d.route("a/b", lambda m: None, qos=1, owner="x")
    assert client.handler is None  # the client keeps what arrives meanwhile
    d.open()
    assert client.handler is not None
    with pytest.raises(TransportError):
        d.open()


def test_a_failing_handler_gets_the_message_again_then_it_is_a_dead_letter() -> None:
    async def main() -> tuple[list[int], list[DeadLetter], FakeClient, Dispatcher]:
        calls: list[int] = []
        letters: list[DeadLetter] = []
        d, client = dispatcher(max_attempts=3, on_dead_letter=letters.append)

        def broken(m: InboundMessage) -> None:
            calls.append(len(calls))
            raise KeyError("bug")

        d.route("a/+", broken, qos=1, owner="orders")
        d.open()
        client.handler(msg("a/1", b"payload"))
        assert len(calls) == 1
        assert client.acked == []  # the slot is held while it is being retried
        await asyncio.sleep(0.2 + 0.4 + 0.1)  # the retry pauses double from 0.2 s
        return calls, letters, client, d

    calls, letters, client, d = asyncio.run(main())
    assert calls == [0, 1, 2]
    assert letters == [DeadLetter("a/1", b"payload", "orders", 3, "KeyError: 'bug'")]
    assert [m.topic for m in client.acked] == ["a/1"]
    assert d.stats.handler_errors == 3
    assert d.stats.retries == 2
    assert d.stats.dead_letters == 1


def test_a_handler_that_recovers_on_a_retry_loses_nothing() -> None:
    async def main() -> tuple[list[str], Dispatcher]:
        done: list[str] = []
        d, client = dispatcher(max_attempts=3)

        def flaky(m: InboundMessage) -> None:
            if not d.stats.handler_errors:
                raise RuntimeError("once")
            done.append(m.topic)

        d.route("a/+", flaky, qos=1, owner="x")
        d.open()
        client.handler(msg("a/1"))
        await asyncio.sleep(0.3)
        return done, d

    done, d = asyncio.run(main())
    assert done == ["a/1"]
    assert d.stats.dead_letters == 0


def test_a_dead_letter_that_cannot_be_kept_is_not_acknowledged() -> None:
    from gateway.errors import StoreError  # noqa: PLC0415

    def cannot_keep(letter: DeadLetter) -> None:
        raise StoreError("disk full")

    d, client = dispatcher(max_attempts=1, on_dead_letter=cannot_keep)
    d.route("a/+", lambda m: d.failed(m, KeyError("x")), qos=1, owner="x")
    d.open()
    client.handler(msg("a/1"))
    assert client.acked == []  # the broker redelivers it after a restart


def test_qos0_failures_are_counted_not_retried() -> None:
    d, client = dispatcher(max_attempts=3)

    def broken(m: InboundMessage) -> None:
        raise ValueError("bad")

    d.route("hb/+", broken, qos=0, owner="x")
    d.open()
    client.handler(msg("hb/1", qos=0, mid=0))
    assert d.stats.handler_errors == 1
    assert d.stats.retries == 0
