"""LeanPaths' PUBLISH encoder and decoder and its PUBACK handling, against paho's own codec."""

from __future__ import annotations

import collections
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.transport.lean import LeanPaths

topics = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="+#\0"), min_size=1
).filter(lambda t: len(t.encode()) <= 300)
payloads = st.binary(max_size=3000)  # past 127 and 16,383 bytes: 1-, 2- and 3-byte lengths


class _FakeSocket:
    """Stands for a connected socket; nothing is ever written to it."""

    def close(self) -> None:
        pass


class _Client(LeanPaths, paho.Client):
    """A client that never connects: packets queue up in ``_out_packet`` for inspection."""

    def __init__(self, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
        self._sock = _FakeSocket()  # "connected": lean_publish queues packets
        self.received: list[tuple[bytes, bytes, int, bool, int, Any]] = []
        self.published: list[int] = []
        self.on_lean_message = lambda *a: self.received.append(a)
        self.on_lean_published = self.published.append

    def _call_socket_register_write(self) -> None:
        pass  # no event loop here

    def feed(self, packet: bytes) -> MQTTErrorCode:
        """Hand one complete packet (fixed header included) to the read side."""
        header = packet[0]
        pos, length, shift = 1, 0, 0
        while True:
            byte = packet[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            shift += 7
            if not byte & 0x80:
                break
        assert len(packet) - pos == length
        self._in_packet = {"command": header, "packet": packet[pos:]}
        if header & 0xF0 == PacketTypes.PUBLISH << 4:
            return self._handle_publish()
        return self._handle_pubackcomp("PUBACK")


def _props(response_topic: str | None, correlation: bytes | None) -> Properties | None:
    if response_topic is None and correlation is None:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    return props


@given(
    topic=topics,
    payload=payloads,
    retain=st.booleans(),
    response_topic=st.none() | topics,
    correlation=st.none() | st.binary(min_size=1, max_size=40),
)
def test_lean_publish_packets_decode_with_paho_and_back(
    topic: str, payload: bytes, retain: bool, response_topic: str | None, correlation: bytes | None
) -> None:
    c = _Client()
    rc, mid = c.lean_publish(
        topic, payload, retain=retain, properties=_props(response_topic, correlation)
    )
    assert rc is MQTTErrorCode.MQTT_ERR_SUCCESS
    (out,) = c._out_packet
    packet = bytes(out["packet"])
    # paho's decoder reads what we wrote...
    header, rest = packet[0], packet[1:]
    while rest[0] & 0x80:
        rest = rest[1:]
    decoded = _packet.decode_publish(header, rest[1:], MQTTProtocolVersion.MQTTv5)
    assert (decoded.topic, decoded.payload, decoded.qos, decoded.mid) == (
        topic.encode(),
        payload,
        1,
        mid,
    )
    assert decoded.retain is retain
    assert not decoded.dup
    assert getattr(decoded.properties, "ResponseTopic", None) == response_topic
    assert getattr(decoded.properties, "CorrelationData", None) == correlation
    # ...and our decoder reads it back the same.
    assert c.feed(packet) is MQTTErrorCode.MQTT_ERR_SUCCESS
    ((t, p, qos, ret, m, props),) = c.received
    assert (t, p, qos, ret, m) == (topic.encode(), payload, 1, retain, mid)
    assert getattr(props, "ResponseTopic", None) == response_topic
    assert getattr(props, "CorrelationData", None) == correlation


@given(topic=topics, payload=payloads, qos=st.sampled_from([0, 1]), retain=st.booleans())
def test_publishes_built_by_paho_decode_the_same_on_the_lean_path(
    topic: str, payload: bytes, qos: int, retain: bool
) -> None:
    for protocol in (MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311):
        sender = _Client(protocol)
        sender._send_publish(7 if qos else 0, topic.encode(), payload, qos, retain)
        packet = bytes(sender._out_packet[-1]["packet"])
        reader = _Client(protocol)
        assert reader.feed(packet) is MQTTErrorCode.MQTT_ERR_SUCCESS
        ((t, p, q, r, mid, props),) = reader.received
        expected = (topic.encode(), payload, qos, retain, 7 if qos else 0, None)
        assert (t, p, q, r, mid, props) == expected


def test_pubacks_with_success_codes_are_handled_and_failures_go_to_paho() -> None:
    c = _Client()
    failures: list[tuple[int, Any]] = []
    c.on_publish = lambda _c, _u, mid, rc, _p: failures.append((mid, rc))
    mids = [c.lean_publish("a/b", b"x", retain=False, properties=None)[1] for _ in range(4)]
    assert c._inflight_messages == 4
    # Packet id only; with "no matching subscribers" (0x10); with it and empty properties.
    for mid, tail in zip(mids[:3], [b"", b"\x10", b"\x10\x00"], strict=True):
        body = mid.to_bytes(2, "big") + tail
        assert c.feed(bytes((0x40, len(body))) + body) is MQTTErrorCode.MQTT_ERR_SUCCESS
    assert c.published == mids[:3]
    # 0x87, not authorised: a failure, reported through paho's own callback.
    body = mids[3].to_bytes(2, "big") + b"\x87"
    c.feed(bytes((0x40, len(body))) + body)
    assert c.published == mids[:3]
    assert [(m, rc.value) for m, rc in failures] == [(mids[3], 0x87)]
    assert c._inflight_messages == 0
    assert not c._out_messages
    # A PUBACK for nothing pending is ignored.
    c.feed(b"\x40\x02\x12\x34")
    assert c.published == mids[:3]


def test_queued_publishes_go_out_in_order_as_pubacks_free_the_window() -> None:
    c = _Client()
    c._max_inflight_messages = 2
    mids = [c.lean_publish("q", b"%d" % i, retain=False, properties=None)[1] for i in range(5)]
    assert c._inflight_messages == 2
    assert [p["mid"] for p in c._out_packet] == mids[:2]
    assert c._lean_queue == collections.deque(mids[2:])
    for mid in mids:
        c.feed(b"\x40\x02" + mid.to_bytes(2, "big"))
    assert [p["mid"] for p in c._out_packet] == mids
    assert c.published == mids
    assert c._inflight_messages == 0
    assert not c._lean_queue


def test_lean_publish_refuses_what_paho_refuses() -> None:
    c = _Client()
    for topic in ("", "a/+/b", "a/#", "x" * 65536):
        with pytest.raises(ValueError, match="topic"):
            c.lean_publish(topic, b"x", retain=False, properties=None)
    assert not c._out_messages
