"""Lean paths through paho for the three packets that dominate the gateway's traffic.

Measured on this machine (bench/routing flat out, py-spy): about a third of the gateway's CPU
went to paho's per-message objects, not to I/O. For each QoS 1 PUBLISH sent, paho builds an
``MQTTMessage`` with an ``MQTTMessageInfo`` holding a ``threading.Condition`` (for
``wait_for_publish``, which an event loop never calls); for each one received, a ``Properties``
object, a topic-filter match and three lock round trips; for each PUBACK, a ``ReasonCode`` and
``Properties`` object and a scan of the whole in-flight window looking for queued messages.

``LeanPaths`` is mixed into paho's ``Client`` (before it, after ``FastIO``) and takes over only
the common cases, leaving everything else to paho's own code:

- ``lean_publish``: QoS 1 publishes without the ``MQTTMessageInfo``; the message still lives in
  paho's ``_out_messages`` in paho's own states, so paho's reconnect and resend logic is unchanged;
- received PUBLISH (QoS 0 and 1) go straight to ``on_lean_message`` with the topic, payload and
  the MQTT 5 properties (decoded by paho only when there are any);
- a PUBACK with no reason code or properties (success) is handled in place; any other goes to
  paho;
- messages that wait for room in the in-flight window are kept in a queue of their own, so a
  PUBACK sends the next one without scanning the window.

It overrides private paho methods: it runs only on the paho-mqtt version pyproject.toml pins
exactly (``paths.py`` falls back to paho's own code on any other), and the integration tests run
every path against a real broker (including reconnects with messages in flight and queued).
"""

from __future__ import annotations

import collections
import struct
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import (
    MQTTMessage,
    MQTTMessageInfo,
    MQTTv5,
    mqtt_ms_publish,
    mqtt_ms_queued,
    mqtt_ms_wait_for_puback,
    mqtt_ms_wait_for_pubrec,
)
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from collections.abc import Callable

_PUBLISH = PacketTypes.PUBLISH << 4
_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_NO_CONN = MQTTErrorCode.MQTT_ERR_NO_CONN
_MID = struct.Struct("!H")


class _NoInfo:
    """Stands in for ``MQTTMessageInfo`` where paho's own code touches a lean message's info."""

    __slots__ = ()
    rc = _OK

    def _set_as_published(self) -> None:
        """Nobody waits on a lean message: nothing to notify."""


_NO_INFO = _NoInfo()


class _LeanMessage(MQTTMessage):
    """An outbound message without the per-message ``threading.Condition``."""

    __slots__ = ()

    def __init__(  # noqa: PLR0917 - mirrors paho's fields
        self, mid: int, topic: bytes, payload: bytes, qos: int, retain: bool, props: Any
    ) -> None:
        # Deliberately not calling MQTTMessage.__init__: that builds the MQTTMessageInfo.
        self.timestamp = 0.0
        self.state = mqtt_ms_publish
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.info = _NO_INFO  # type: ignore[assignment]
        self.properties = props


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class LeanPaths:
    """Mixin for ``paho.mqtt.client.Client``; see the module docstring."""

    # Set by the owner: called for every received QoS 0 / 1 PUBLISH, and for every successful
    # PUBACK of a QoS 1 publish.
    on_lean_message: Callable[[bytes, bytes, int, bool, int, Properties | None], None] | None = None
    on_lean_published: Callable[[int], None] | None = None

    _out_messages: collections.OrderedDict[int, MQTTMessage]
    _inflight_messages: int
    _max_inflight_messages: int
    _in_packet: Any
    _protocol: MQTTProtocolVersion
    _sock: Any
    _lean_queue: collections.deque[int]

    # ---- outbound -----------------------------------------------------------------------------

    def lean_publish(
        self, topic: str, payload: bytes, *, retain: bool, properties: Properties | None
    ) -> tuple[MQTTErrorCode, int]:
        """Queue a QoS 1 PUBLISH as paho would, without its per-message waiting machinery.

        Returns paho's return code (SUCCESS, or NO_CONN: kept and sent after the reconnect)
        and the packet id. Raises ValueError for a topic with wildcards or too long.
        """
        topic_bytes = topic.encode()
        # paho's own checks, with its messages; an empty topic is refused in MQTT 5 too (it
        # would need a topic alias, which we never set).
        if not topic_bytes:
            raise ValueError("Invalid topic.")
        if b"+" in topic_bytes or b"#" in topic_bytes:
            raise ValueError("Publish topic cannot contain wildcards.")
        if len(topic_bytes) > 65535:
            raise ValueError("Publish topic is too long.")
        if len(payload) > 268_435_455:
            raise ValueError("Payload too large.")
        mid: int = self._mid_generate()  # type: ignore[attr-defined]
        out = self._out_messages
        if mid in out:  # 65,535 messages pending: paho says the same
            return MQTTErrorCode.MQTT_ERR_QUEUE_SIZE, mid
        msg = _LeanMessage(mid, topic_bytes, payload, 1, retain, properties)
        out[mid] = msg
        limit = self._max_inflight_messages
        if limit and self._inflight_messages >= limit:
            msg.state = mqtt_ms_queued
            self._queue().append(mid)
            return _OK, mid
        self._inflight_messages += 1
        msg.state = mqtt_ms_wait_for_puback
        rc = self._send_lean(mid, topic_bytes, payload, retain, properties)
        if rc == _NO_CONN:
            # As paho: sent after the reconnect, from _out_messages.
            self._inflight_messages -= 1
            msg.state = mqtt_ms_publish
        return rc, mid

    def publish(
        self,
        topic: str,
        payload: Any = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> MQTTMessageInfo:
        """Paho's own publish (QoS 0 and 2), with queued messages put in our queue too."""
        info: MQTTMessageInfo = super().publish(  # type: ignore[misc]
            topic, payload, qos, retain, properties
        )
        m = self._out_messages.get(info.mid) if qos else None
        if m is not None and m.state == mqtt_ms_queued:
            self._queue().append(info.mid)
        return info

    def _send_lean(
        self, mid: int, topic: bytes, payload: bytes, retain: bool, props: Properties | None
    ) -> MQTTErrorCode:
        if self._sock is None:
            return _NO_CONN
        packed = b""
        if self._protocol == MQTTv5:
            packed = b"\x00" if props is None else props.pack()  # type: ignore[no-untyped-call]
        length = 2 + len(topic) + 2 + len(packed) + len(payload)
        packet = b"".join((
            bytes((_PUBLISH | 0x02 | retain,)),
            _remaining_length(length),
            _MID.pack(len(topic)),
            topic,
            _MID.pack(mid),
            packed,
            payload,
        ))  # fmt: skip
        self._out_packet.append({  # type: ignore[attr-defined]
            "command": _PUBLISH, "mid": mid, "qos": 1, "pos": 0,
            "to_process": len(packet), "packet": packet, "info": None,
        })  # fmt: skip
        self._call_socket_register_write()  # type: ignore[attr-defined]
        return _OK

    def _queue(self) -> collections.deque[int]:
        q = getattr(self, "_lean_queue", None)
        if q is None:
            q = self._lean_queue = collections.deque()
        return q

    def _update_inflight(self) -> MQTTErrorCode:
        """Send queued messages while the window has room, oldest first, without a scan."""
        out = self._out_messages
        if len(out) <= self._inflight_messages:
            return _OK  # nothing can be queued: every pending message is in flight
        q = self._queue()
        limit = self._max_inflight_messages
        while q and (not limit or self._inflight_messages < limit):
            mid = q.popleft()
            m = out.get(mid)
            if m is None or m.state != mqtt_ms_queued:
                continue
            self._inflight_messages += 1
            m.state = mqtt_ms_wait_for_puback if m.qos == 1 else mqtt_ms_wait_for_pubrec
            rc: MQTTErrorCode = self._send_publish(  # type: ignore[attr-defined]
                m.mid, m.topic.encode(), m.payload, m.qos, m.retain, m.dup, properties=m.properties
            )
            if rc != _OK:
                return rc
        return _OK

    def _messages_reconnect_reset_out(self) -> None:
        super()._messages_reconnect_reset_out()  # type: ignore[misc]
        # paho may re-mark messages as queued (2.2 marks them all for sending at CONNACK);
        # keep our queue exactly the queued ones, in order.
        q = self._queue()
        q.clear()
        q.extend(mid for mid, m in self._out_messages.items() if m.state == mqtt_ms_queued)

    # ---- inbound ------------------------------------------------------------------------------

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_lean_message
        header: int = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2:
            rc: MQTTErrorCode = super()._handle_publish()  # type: ignore[misc]
            return rc
        packet = self._in_packet["packet"]
        (tlen,) = _MID.unpack_from(packet, 0)
        pos = 2 + tlen
        topic = bytes(packet[2:pos])
        mid = 0
        if qos:
            (mid,) = _MID.unpack_from(packet, pos)
            pos += 2
        props: Properties | None = None
        if self._protocol == MQTTv5:
            if packet[pos] == 0:  # no properties: the common case
                pos += 1
            else:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                _, used = props.unpack(packet[pos:])  # type: ignore[no-untyped-call]
                pos += used
        elif not tlen:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL  # paho: an empty topic is malformed in 3.1.1
        handler(topic, bytes(packet[pos:]), qos, bool(header & 0x01), mid, props)
        return _OK

    def _handle_pubackcomp(self, cmd: str) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        notify = self.on_lean_published
        # Handled here: a packet id alone (success), or with a success reason code (below 0x80:
        # Mosquitto says 0x10, "no matching subscribers", for a status nobody follows) and no
        # properties. A failure or properties go to paho, which reports them.
        n = len(packet)
        if (
            cmd != "PUBACK"
            or notify is None
            or n > 4
            or (n >= 3 and packet[2] >= 0x80)
            or (n == 4 and packet[3] != 0)
        ):
            rc: MQTTErrorCode = super()._handle_pubackcomp(cmd)  # type: ignore[misc]
            return rc
        (mid,) = _MID.unpack_from(packet, 0)
        msg = self._out_messages.pop(mid, None)
        if msg is None:
            return _OK  # unknown or already acknowledged: as paho, ignore
        notify(mid)
        if msg.qos > 0:
            self._inflight_messages -= 1
            if self._max_inflight_messages > 0:
                return self._update_inflight()
        return _OK
