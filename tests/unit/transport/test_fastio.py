"""FastIO's read buffer: paho's small reads served from one large recv, and held reads."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gateway.transport.fastio import FastIO
from gateway.transport.lean import LeanPaths


class _Socket:
    """Hands out the chunks it was given, one per recv (as a socket would after each wakeup)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.recvs = 0

    def recv(self, bufsize: int) -> bytes:
        self.recvs += 1
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        assert len(chunk) <= bufsize
        return chunk

    def close(self) -> None:
        pass


class _Client(FastIO, paho.Client):
    def __init__(self, sock: _Socket) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id="t")
        self._sock = sock
        self.reset_buffer()


@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=200),
)
def test_reads_of_any_size_return_the_stream_in_order(
    chunks: list[bytes], sizes: list[int]
) -> None:
    sock = _Socket(chunks)
    client = _Client(sock)
    got = b""
    for n in sizes:
        try:
            part = client._sock_recv(n)
        except BlockingIOError:
            break
        assert 0 < len(part) <= n
        got += part
    stream = b"".join(chunks)
    assert stream.startswith(got)
    # One recv per chunk at most: small reads are served from the buffer.
    assert sock.recvs <= len(chunks) + 1


def test_held_reads_serve_the_buffer_but_never_the_socket() -> None:
    sock = _Socket([b"abcdef", b"ghi"])
    client = _Client(sock)
    assert client._sock_recv(2) == b"ab"
    client.hold_reads = True
    assert client.buffered()
    assert client._sock_recv(10) == b"cdef"  # what was read already is still parsed
    assert not client.buffered()
    with pytest.raises(BlockingIOError):
        client._sock_recv(1)  # paho takes this as "would block" and stops reading
    assert sock.recvs == 1
    client.hold_reads = False
    assert client._sock_recv(10) == b"ghi"


def test_a_new_connection_starts_with_an_empty_buffer() -> None:
    client = _Client(_Socket([b"old bytes"]))
    assert client._sock_recv(3) == b"old"
    client.reset_buffer()
    assert not client.buffered()


class _Reader(FastIO, LeanPaths, paho.Client):
    """FastIO's packet reader with LeanPaths' handlers recording what arrives."""

    def __init__(self, sock: _Socket) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id="r",
            manual_ack=True,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._sock = sock
        self.reset_buffer()
        self.got: list[tuple[bytes, bytes, int]] = []
        self.on_lean_message = lambda topic, payload, _q, _r, mid, _p: self.got.append(
            (topic, payload, mid)
        )


def _publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    """A QoS 1 MQTT 5 PUBLISH, built by hand (independently of the code under test)."""
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + b"\x00" + payload
    n, length = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes((0x32,)) + bytes(length) + body


@given(
    messages=st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=20_000)),
        min_size=1,
        max_size=12,
    ),
    cuts=st.lists(st.integers(1, 5000), max_size=40),
)
def test_packets_split_anyhow_across_reads_arrive_whole_and_in_order(
    messages: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    topics = [t.replace(b"+", b"p").replace(b"#", b"h") for t, _ in messages]
    stream = b"".join(
        _publish_packet(t, p, n + 1)
        for n, (t, (_, p)) in enumerate(zip(topics, messages, strict=True))
    )
    chunks, pos = [], 0
    for cut in cuts:  # socket reads of arbitrary sizes, the rest in 64 KiB pieces
        if pos < len(stream):
            chunks.append(stream[pos : pos + cut])
            pos += cut
    while pos < len(stream):
        chunks.append(stream[pos : pos + 65_536])
        pos += 65_536
    reader = _Reader(_Socket(chunks))
    for _ in range(10_000):
        try:
            rc = reader._packet_read()
        except BlockingIOError:
            break
        if rc is MQTTErrorCode.MQTT_ERR_AGAIN:
            if not reader._sock.chunks and not reader.buffered():
                break
            continue
        assert rc is MQTTErrorCode.MQTT_ERR_SUCCESS
    expected = [(t, p, n + 1) for n, (t, (_, p)) in enumerate(zip(topics, messages, strict=True))]
    assert reader.got == expected


def test_whole_packets_in_the_buffer_are_cut_out_without_paho_s_reader() -> None:
    # Remaining lengths of one, two and three bytes, all in one read.
    sizes = [10, 300, 20_000, 40_000]
    stream = b"".join(_publish_packet(b"t/%d" % n, b"x" * n, i + 1) for i, n in enumerate(sizes))
    reader = _Reader(_Socket([stream]))
    assert reader._sock_recv(0) == b""  # one socket read: everything is in the buffer now
    slow = 0
    paho_read = reader._paho_packet_read

    def counting() -> MQTTErrorCode:
        nonlocal slow
        slow += 1
        return paho_read()

    reader._paho_packet_read = counting  # type: ignore[method-assign]
    while reader._packet_read() is MQTTErrorCode.MQTT_ERR_SUCCESS and reader.buffered():
        pass
    assert reader.got == [(b"t/%d" % n, b"x" * n, i + 1) for i, n in enumerate(sizes)]
    assert slow == 0
