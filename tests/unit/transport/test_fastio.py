"""FastIO's read buffer: paho's small reads served from one large recv, and held reads."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from gateway.transport.fastio import FastIO


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
