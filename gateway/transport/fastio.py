"""Fewer system calls for paho: buffered reads and coalesced writes.

Measured on this machine (bench/routing, py-spy): paho makes one ``send()`` per packet and reads
each packet with at least three ``recv()`` calls (the fixed header byte, each length byte, then
the body). With ~17 packets per order (the order, screen acks and bumps in; replies, tickets,
status updates and PUBACKs out) those system calls were over half of the gateway's CPU time.

``FastIO`` is mixed into paho's ``Client``: reads are served from a buffer filled by one large
``recv()``, and consecutive queued packets go out in one ``send()``. Both override private paho
methods (they run only on the pinned paho-mqtt, see ``paths.py``; the tests exercise both
against a real broker), and both keep paho's semantics: a partial write leaves the rest queued
in order, ``_last_msg_out`` is updated for keepalive, and packets with side effects on write
(QoS 0 PUBLISH, DISCONNECT) are left to paho's own code, one at a time.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import MQTT_LOG_DEBUG, MQTT_LOG_ERR, time_func
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket, _OutPacket

_READ_CHUNK = 65_536
_WRITE_MAX = 262_144  # bytes joined into one send(); bounds the copy
_PUBLISH = PacketTypes.PUBLISH << 4
_DISCONNECT = PacketTypes.DISCONNECT << 4


def _plain(packet: _OutPacket) -> bool:
    """True for packets whose write needs no bookkeeping beyond the bytes themselves."""
    command = packet["command"] & 0xF0
    if command == _DISCONNECT:
        return False
    return not (command == _PUBLISH and packet["qos"] == 0)


class FastIO:
    """Mixin for ``paho.mqtt.client.Client`` (put it first in the bases)."""

    # Bytes read from the socket and the position of the first one not yet handed to paho. An
    # offset, not deleting from the front: paho asks for a packet in three or more small reads,
    # and each deletion would move the rest of a 64 KiB buffer.
    _rbuf: bytes = b""
    _rpos: int = 0
    _in_packet: _InPacket
    _out_packet: collections.deque[_OutPacket]
    _sock: Any
    # While set, what is buffered is still parsed but the socket is not read: paho sees
    # "would block" and stops (the owner's flow control; see MqttClient._pause_reading).
    hold_reads = False

    def buffered(self) -> bool:
        """Whether bytes already read from the socket wait to be parsed."""
        return self._rpos < len(self._rbuf)

    def reset_buffer(self) -> None:
        """Forget buffered bytes (a new connection must not see the old one's data)."""
        self._rbuf, self._rpos = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        buf = self._rbuf
        if pos >= len(buf):
            if self.hold_reads:
                raise BlockingIOError
            data: bytes = super()._sock_recv(_READ_CHUNK)  # type: ignore[misc]
            if not data:
                return data  # EOF: paho treats an empty read as a lost connection
            buf, pos = self._rbuf, self._rpos = data, 0
        out = buf[pos : pos + bufsize]
        self._rpos = pos + len(out)
        return out

    def _packet_read(self) -> MQTTErrorCode:
        """Take a whole packet straight from the buffer; anything partial goes to paho.

        paho reads each packet with one call for the command byte, one per length byte and one
        or more for the body, updating a state dict as it goes. When a complete packet is
        already buffered (nearly always, with 64 KiB reads) it is cut out in one step and
        handed to paho's own dispatch; otherwise, or mid-packet, paho's reader carries on.
        """
        buf, pos = self._rbuf, self._rpos
        n = len(buf)
        if self._in_packet["command"] or n - pos < 2:
            return self._paho_packet_read()
        i, length, shift = pos + 1, 0, 0
        while True:
            if i >= n or shift > 21:  # past 4 length bytes: paho's reader reports it
                return self._paho_packet_read()
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        end = i + length
        if end > n:
            return self._paho_packet_read()
        self._rpos = end
        self._in_packet = {
            "command": buf[pos], "have_remaining": 1, "remaining_count": [],
            "remaining_mult": 1, "remaining_length": length,
            "packet": buf[i:end],  # type: ignore[typeddict-item] # bytes: read-only use
            "to_process": 0, "pos": 0,
        }  # fmt: skip
        try:
            rc: MQTTErrorCode = self._packet_handle()  # type: ignore[attr-defined]
        except MalformedPacket as exc:
            self._easy_log(MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)  # type: ignore[attr-defined]
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(), "to_process": 0, "pos": 0,
        }  # fmt: skip
        with self._msgtime_mutex:  # type: ignore[attr-defined]
            self._last_bytes_received = time_func()
        return rc

    def _paho_packet_read(self) -> MQTTErrorCode:
        rc: MQTTErrorCode = super()._packet_read()  # type: ignore[misc]
        return rc

    def _packet_write(self) -> MQTTErrorCode:
        queue = self._out_packet
        while queue:
            if not _plain(queue[0]):
                rc = self._write_one_the_paho_way()
                # After a DISCONNECT paho has closed the socket: nothing more goes out.
                if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None:
                    return rc
                continue
            done = self._write_batch(queue)
            if done is not None:
                return done
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _write_batch(self, queue: collections.deque[_OutPacket]) -> MQTTErrorCode | None:
        """Send the plain packets at the head of the queue in one call; None: carry on."""
        batch = []
        size = 0
        for packet in queue:
            if not _plain(packet) or size >= _WRITE_MAX:
                break
            batch.append(packet)
            size += packet["to_process"]
        data = b"".join(memoryview(p["packet"])[p["pos"] :] for p in batch)
        try:
            sent = self._sock_send(data)  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            self._easy_log(MQTT_LOG_ERR, "failed to send on socket: %s", err)  # type: ignore[attr-defined]
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        self._mark_sent()
        for packet in batch:
            if sent >= packet["to_process"]:
                sent -= packet["to_process"]
                queue.popleft()
                continue
            packet["pos"] += sent
            packet["to_process"] -= sent
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # the socket is full: wait until writable
        return None

    def _write_one_the_paho_way(self) -> MQTTErrorCode:
        """Let paho's own ``_packet_write`` handle exactly the first queued packet."""
        rest = self._out_packet
        self._out_packet = collections.deque([rest.popleft()])
        try:
            rc: MQTTErrorCode = super()._packet_write()  # type: ignore[misc]
        finally:
            unsent = self._out_packet
            unsent.extend(rest)
            rest.clear()
            rest.extend(unsent)
            self._out_packet = rest
        return rc

    def _mark_sent(self) -> None:
        with self._msgtime_mutex:  # type: ignore[attr-defined]
            self._last_msg_out = time_func()
