"""MQTT client for the asyncio loop: paho-mqtt driven by the event loop itself, no thread.

This module and the paho adapters beside it (``paths``, ``fastio``, ``lean``) are the only ones
that import paho; here its errors become ``gateway.errors``.
paho's socket callbacks register its socket with the running loop (``add_reader``/``add_writer``);
``Link`` (in ``link``) keeps it connected with backoff and keepalive ticks. Acknowledgements are
manual: a QoS 1 message is PUBACKed only when the caller calls ``ack()`` after its durable commit,
so a crash before the commit makes the broker redeliver it (``RELIABILITY.md``).

Two ways through paho (``paths``): the gateway's fast paths, which override private paho
methods and so run only on the paho-mqtt version pyproject.toml pins, and paho's own, taken
(with one warning) on any other version. The environment variable ``GATEWAY_MQTT_PATHS``
forces one: ``paho`` (paho's own code, e.g. to compare or to rule ours out), ``fast``, or
``auto`` (the default). Both keep every rule below; ``MqttClient.paths`` says which one runs.

Publishes are bounded in memory whatever their QoS: ``max_pending_publishes`` QoS > 0 ones
awaiting their PUBACK, and for QoS 0 (telemetry) what paho holds unsent behind a full socket
(``max_unsent_qos0`` messages, ``max_unsent_qos0_bytes``). Beyond a bound ``publish()`` drops
the newest and returns False; drops are counted apart by QoS in ``stats`` and logged once when
they start and once when they stop.

Example::

    async with MqttClient(url, "gateway-1", will=Will("gw/status", b"offline")) as mqtt:
        mqtt.set_handler(on_message)
        mqtt.subscribe("orders/+/new")
        mqtt.publish("gw/status", b"online", retain=True)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.errors import TransportError
from gateway.transport.connect import ConnectRefused, open_tcp
from gateway.transport.deliveries import Deliveries
from gateway.transport.link import Link
from gateway.transport.messages import InboundMessage, MessageHandler, MqttStats, Will
from gateway.transport.paths import FastPahoClient, PahoClient, Paths, choose_paths
from gateway.transport.url import parse_broker_url

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["InboundMessage", "MessageHandler", "MqttClient", "MqttStats", "Paths", "Will"]

log = logging.getLogger(__name__)

# PUBLISHes paho puts on the wire before waiting for PUBACKs; the rest wait in paho's memory.
# Measured with a receive-and-republish loop (20k x 300 B, QoS 1, Mosquitto 2.0.11, loopback)
# on paho's own paths: router CPU per message was ~93 us at 20, ~91 at 100 and ~146 at 1000,
# because paho rescanned its whole window on every PUBACK. LeanPaths (lean.py) keeps its own
# queue, so a wide window costs nothing per PUBACK, and it keeps publishing going while the
# broker is slow to acknowledge. Lowered to the broker's Receive Maximum when that is smaller
# (Mosquitto's default is 20), since paho 2.2 ignores it. On paho's own paths the window is
# 100, where that measurement found paho's rescans cheapest.
_INFLIGHT_WINDOW = 1000
_PAHO_INFLIGHT_WINDOW = 100
_KEEPALIVE_TICK_S = 1.0  # paho wants loop_misc() about once a second
_MAX_PENDING = 60_000  # paho's packet ids are 16-bit; leave room for SUBSCRIBE ids
_MAX_UNSENT_QOS0 = 5_000  # QoS 0 publishes take packet ids too, until written
_CLOSE_TIMEOUT_S = 1.0
_PAHO_READS_PER_WAKEUP = 64  # paho's paths: loop_read calls per readable socket (mqtt.py)


def _check(rc: MQTTErrorCode) -> None:
    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise ConnectionError(paho.error_string(rc))


def _check_filter(topic_filter: str, qos: int) -> None:
    levels = topic_filter.split("/")
    if (
        not topic_filter
        or qos not in (0, 1, 2)
        or "\0" in topic_filter
        or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
        or "#" in levels[:-1]
    ):
        raise TransportError(f"invalid subscription {topic_filter!r} (QoS {qos})")


class MqttClient(Link):
    """An MQTT 5 (or 3.1.1) client living in the running asyncio loop.

    ``async with`` returns once CONNACK arrived (or raises ``BrokerUnavailable``); leaving it
    sends DISCONNECT, so the broker discards the will. QoS > 0 publishes made while
    disconnected are kept and sent after the reconnect; the session persists on the broker,
    which queues our subscriptions' messages meanwhile. Call everything from the loop's thread.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        protocol: Literal[5, 4] = 5,
        clean_start: bool = False,
        session_expiry_s: int = 7 * 24 * 3600,
        keepalive_s: int = 15,
        will: Will | None = None,
        max_pending_publishes: int = 20_000,
        max_unsent_qos0: int = 1000,
        max_unsent_qos0_bytes: int = 1 << 20,
        receive_maximum: int = 2000,
        connect_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        """Configure the client; nothing touches the network until ``async with``.

        Args:
            url: ``mqtt://host:port`` or ``mqtts://host:port``; ``?protocol=4|5`` in the URL
                overrides ``protocol`` (``EmbeddedBroker`` hands out ``?protocol=4``).
            client_id: the session's identity on the broker: stable, so sessions persist;
                without ``#`` or ``+`` (CVE-2017-7650).
            username: optional user name.
            password: optional password.
            protocol: 5 for MQTT 5, 4 for MQTT 3.1.1.
            clean_start: drop any old session on this object's first connect; reconnects always
                resume (MQTT 3.1.1 cannot say that and then cleans on every connect).
            session_expiry_s: how long the broker keeps the session while we are away (MQTT 5).
            keepalive_s: MQTT keepalive; a dead broker is noticed within about 2x this.
            will: last will, published by the broker if we vanish without DISCONNECT.
            max_pending_publishes: QoS > 0 publishes that may await their PUBACK; beyond it
                ``publish()`` drops the newest and returns False.
            max_unsent_qos0: QoS 0 publishes that may wait unsent in memory (behind a full
                socket: a stalled broker or link); beyond it ``publish()`` drops the newest
                and returns False.
            max_unsent_qos0_bytes: the same bound in payload and topic bytes; one publish is
                always accepted when none waits, however large.
            receive_maximum: QoS > 0 messages the broker may send us before we acknowledge
                (MQTT 5 Receive Maximum): the bound on what waits in this process for the
                caller's commit; the rest waits in the broker. MQTT 3.1.1 has no such
                setting (the broker's own limit applies).
            connect_timeout_s: how long ``async with`` keeps trying; also per reconnect attempt.
            backoff_initial_s: first reconnect delay.
            backoff_max_s: cap of the doubling reconnect delay.

        Raises:
            TransportError: the URL is invalid.
            ValueError: an argument is out of range.
        """
        super().__init__(
            url=url, name=f"mqtt:{client_id}", connect_timeout_s=connect_timeout_s,
            backoff=(backoff_initial_s, backoff_max_s), tick_s=_KEEPALIVE_TICK_S,
        )  # fmt: skip
        self._address = parse_broker_url(url)
        if not client_id or "#" in client_id or "+" in client_id:
            raise ValueError(f"client_id must be non-empty without '#' or '+': {client_id!r}")
        if not 0 < max_pending_publishes <= _MAX_PENDING:
            raise ValueError(f"max_pending_publishes must be in 1..{_MAX_PENDING}")
        if not 0 < max_unsent_qos0 <= _MAX_UNSENT_QOS0:
            raise ValueError(f"max_unsent_qos0 must be in 1..{_MAX_UNSENT_QOS0}")
        if max_unsent_qos0_bytes < 1:
            raise ValueError("max_unsent_qos0_bytes must be positive")
        if not 0 < receive_maximum <= 65_535:
            raise ValueError("receive_maximum must be in 1..65535")
        self._receive_maximum = receive_maximum
        self._reading_paused = False
        self._paused_at = 0.0
        # A pause never outlasts half the keepalive: past it the PINGRESP would go unread and
        # the link be dropped, and heartbeats and telemetry wait too.
        self._max_pause_s = keepalive_s / 2
        self._v5 = (self._address.protocol or protocol) == 5
        self._paths: Paths = choose_paths()
        self._paho = (FastPahoClient if self._paths == "fast" else PahoClient)(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if self._v5 else clean_start,
            manual_ack=True,
        )
        self._configure_paho(
            username=username, password=password, will=will, keepalive_s=keepalive_s,
            clean_start=clean_start, session_expiry_s=session_expiry_s,
        )  # fmt: skip
        # The fast paths' own QoS 1 publish, when they run (paho's own publish otherwise).
        self._fast = self._paho if isinstance(self._paho, FastPahoClient) else None
        self._book = Deliveries(
            max_pending_publishes,
            max_unsent_qos0=max_unsent_qos0,
            max_unsent_qos0_bytes=max_unsent_qos0_bytes,
        )
        self._subscriptions: dict[str, int] = {}
        self._sub_mids: dict[int, list[str]] = {}
        self._warned_v311 = False
        self._handled = 0  # packets paho's paths handed to our callbacks (_read_paho_s_way)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None

    def _configure_paho(
        self, *, username: str | None, password: str | None, will: Will | None,
        keepalive_s: int, clean_start: bool, session_expiry_s: int,
    ) -> None:  # fmt: skip
        p = self._paho
        if username is not None:
            p.username_pw_set(username, password)
        if will is not None:
            p.will_set(will.topic, will.payload, will.qos, will.retain)
        if self._address.tls:  # caveat: paho's TLS handshake blocks (up to connect_timeout)
            p.tls_set_context(ssl.create_default_context())
        p.connect_timeout = self._connect_timeout_s
        fast = isinstance(p, FastPahoClient)
        p.max_inflight_messages_set(_INFLIGHT_WINDOW if fast else _PAHO_INFLIGHT_WINDOW)
        p.max_queued_messages_set(0)  # we bound pending publishes ourselves, and count drops
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_message = self._on_message
        p.on_publish = self._on_publish
        if isinstance(p, FastPahoClient):
            p.on_lean_message = self._on_lean_message
            p.on_lean_published = self._on_lean_published
        p.on_subscribe = self._on_subscribe
        p.on_socket_open = self._on_socket_open
        p.on_socket_close = self._on_socket_close
        p.on_socket_register_write = self._on_register_write
        p.on_socket_unregister_write = self._on_unregister_write
        properties = None
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = session_expiry_s
            properties.ReceiveMaximum = self._receive_maximum
        # Only records the target; _connect_once opens the sockets.
        p.connect_async(
            self._address.host, self._address.port, keepalive_s,
            clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY if clean_start else False,
            properties=properties,
        )  # fmt: skip

    # ---- public API ---------------------------------------------------------------------------

    @property
    def paths(self) -> Paths:
        """``"fast"`` or ``"paho"``: the code paths through paho this client takes."""
        return self._paths

    @property
    def stats(self) -> MqttStats:
        """A snapshot of the counters."""
        return self._book.stats(reconnects=self._reconnects)

    def set_handler(self, handler: MessageHandler) -> None:
        """Set the function called in the loop for each inbound message.

        Messages that arrived before a handler was set (a persistent session's queue is sent
        right after CONNACK) are passed to it now, in order.
        """
        self._book.set_handler(handler)

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect.

        Raises:
            TransportError: the filter or QoS is invalid.
        """
        _check_filter(topic_filter, qos)  # now, not in the reconnect task where it would crash
        self._subscriptions[topic_filter] = qos
        if self._connected:
            self._send_subscribe([(topic_filter, qos)])

    def ack(self, msg: InboundMessage) -> None:
        """Send ``msg``'s PUBACK; call it after the caller's durable commit.

        A no-op for QoS 0, for a message already acknowledged, and for one that came on a
        connection since lost: its packet id may now name another message, and the broker
        redelivers it anyway.
        """
        if self._book.take_ack(msg):
            self._paho.ack(msg.mid, msg.qos)
            # Acks come a batch at a time: resuming right below the limit does not thrash,
            # and keeps the next batch filling while this one's acks go out.
            if self._reading_paused and self._book.unacked < self._receive_maximum:
                self._resume_reading()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> bool:
        """Queue a message for the broker without blocking.

        QoS > 0 messages are kept until the broker acknowledges them, across reconnects (not
        across a restart of this process). ``response_topic`` and ``correlation_data`` are
        MQTT 5 properties; over 3.1.1 they are left out (logged once).

        Returns:
            False when the message was dropped: for QoS > 0 (counted in
            ``stats.publish_dropped``) when ``max_pending_publishes`` are already pending; for
            QoS 0 (counted in ``stats.qos0_dropped``) while disconnected or when the
            ``max_unsent_qos0`` / ``max_unsent_qos0_bytes`` bound is reached. Else True.

        Raises:
            TransportError: the topic (e.g. it has a wildcard), QoS or payload size is invalid.
        """
        size = len(payload) + len(topic)
        if self._book.refuse(qos, connected=self._connected, size=size):
            return False
        properties = self._publish_properties(response_topic, correlation_data)
        try:
            if qos == 1 and self._fast is not None:  # paho's work without its Condition
                rc, mid = self._fast.lean_publish(
                    topic, payload, retain=retain, properties=properties
                )
            else:
                info = self._paho.publish(topic, payload, qos, retain, properties)
                rc, mid = info.rc, info.mid
        except ValueError as exc:
            raise TransportError(f"cannot publish to {topic!r}: {exc}") from exc
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._book.drop(qos, f"publish to {topic!r} refused: {paho.error_string(rc)}")
            return False
        self._book.sent(mid, qos, size)
        return True

    @property
    def inflight_window(self) -> int:
        """Publishes sent before waiting for acks (the broker's Receive Maximum, if smaller)."""
        return self._paho.inflight_window()

    async def wait_publish_room(self) -> None:
        """Wait until fewer than ``max_pending_publishes / 2`` publishes are pending."""
        await self._book.room.wait()

    # ---- connecting ---------------------------------------------------------------------------

    async def _connect_once(self) -> None:
        """Open a TCP connection, send CONNECT and wait for a successful CONNACK."""
        self._loop = asyncio.get_running_loop()
        self._stage = "opening a TCP connection"
        self._paho.next_socket = await open_tcp(self._address.host, self._address.port)
        self._connack = self._loop.create_future()
        self._stage = "waiting for CONNACK"
        if self._v5:
            self._stage += "; an MQTT 3.1.1-only broker may never answer MQTT 5: try ?protocol=4"
        try:
            _check(self._paho.reconnect())  # takes next_socket, queues CONNECT
            await self._connack
        except BaseException:
            self._paho.abort()
            raise
        finally:
            self._connack = None

    async def _close_connection(self) -> None:
        try:
            if self._connected and self._loop is not None:
                self._closed = self._loop.create_future()
                self._paho.disconnect()
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self._closed
        except TimeoutError:
            log.warning("MQTT DISCONNECT to %s not sent in time; closing the socket", self._url)
        finally:
            self._paho.abort()  # no-op if paho closed it; else removes our reader and writer
            self._book.connection_lost()

    def _tick(self) -> None:
        if self._reading_paused and time.monotonic() - self._paused_at > self._max_pause_s:
            log.warning(
                "MQTT %s: %d messages have waited for acks over %.0f s; reading again",
                self._url, self._book.unacked, self._max_pause_s,
            )  # fmt: skip
            self._resume_reading()
        self._paho.loop_misc()  # sends PINGREQ; drops the link on a missing PINGRESP

    def _on_up(self) -> None:
        if self._subscriptions:
            self._send_subscribe(list(self._subscriptions.items()))

    def _send_subscribe(self, topics: list[tuple[str, int]]) -> None:
        try:
            rc, mid = self._paho.subscribe(topics)
        except ValueError as exc:
            raise TransportError(f"cannot subscribe to {topics}: {exc}") from exc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._sub_mids[mid] = [t for t, _ in topics]

    def _publish_properties(self, topic: str | None, data: bytes | None) -> Properties | None:
        if topic is None and data is None:
            return None
        if not self._v5:
            if not self._warned_v311:
                log.warning("MQTT 3.1.1 has no response topic or correlation data; left out")
                self._warned_v311 = True
            return None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if topic is not None:
            properties.ResponseTopic = topic
        if data is not None:
            properties.CorrelationData = data
        return properties

    # ---- paho callbacks: all run inside loop_read/loop_write, in the event loop ---------------

    def _on_connect(
        self, _c: paho.Client, _u: Any, flags: paho.ConnectFlags, rc: ReasonCode, props: Any
    ) -> None:
        fut = self._connack
        if fut is None or fut.done():
            return
        if rc.is_failure:
            fut.set_exception(ConnectRefused(rc.value, str(rc)))
            return
        receive_maximum = getattr(props, "ReceiveMaximum", None)
        if receive_maximum is not None:
            self._paho.limit_inflight(receive_maximum)
        log.debug("MQTT connected to %s (session present: %s)", self._url, flags.session_present)
        self._connected = True
        fut.set_result(None)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, flags: paho.DisconnectFlags, rc: ReasonCode, _p: Any
    ) -> None:
        self._book.connection_lost()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectionError(f"closed before CONNACK: {rc}"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        # paho says "Unspecified error" for a closed socket or a missed PINGRESP.
        self._link_lost(
            f"broker sent DISCONNECT: {rc}"
            if flags.is_disconnect_packet_from_server
            else "socket closed or keepalive expired"
        )

    def _on_message(self, _c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
        # paho's own path (every message on paho's paths, QoS 2 on the fast ones).
        self._handled += 1
        try:
            name = m.topic
        except UnicodeDecodeError:
            self._bad_topic(m.mid, m.qos)
            return
        props = getattr(m, "properties", None)
        self._deliver(name, bytes(m.payload), m.qos, bool(m.retain), m.mid, props)

    def _on_lean_message(  # noqa: PLR0917 - LeanPaths' callback signature
        self, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int, props: Any
    ) -> None:
        try:
            name = topic.decode()
        except UnicodeDecodeError:
            self._bad_topic(mid, qos)
            return
        self._deliver(name, payload, qos, retain, mid, props)

    def _bad_topic(self, mid: int, qos: int) -> None:
        # Brokers refuse these; if one slips through, ack it so it does not jam the session.
        self._paho.ack(mid, qos)
        log.warning("dropped a message whose topic is not UTF-8")

    def _deliver(  # noqa: PLR0917 - the fields of one PUBLISH
        self, name: str, payload: bytes, qos: int, retain: bool, mid: int, props: Any
    ) -> None:
        msg = InboundMessage(
            topic=name,
            payload=payload,
            qos=qos,
            retain=retain,
            mid=mid,
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None),
            received_at=time.monotonic(),
        )
        self._received(msg)

    def _received(self, msg: InboundMessage) -> None:
        self._book.received(msg)
        if msg.qos and not self._reading_paused and self._book.unacked >= self._receive_maximum:
            self._pause_reading()

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self._handled += 1
        self._book.acknowledged(mid, str(rc) if rc.is_failure else None)

    def _on_lean_published(self, mid: int) -> None:
        self._book.acknowledged(mid, None)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any
    ) -> None:
        for topic, rc in zip(self._sub_mids.pop(mid, []), rcs, strict=False):
            if rc.is_failure:
                log.error("MQTT broker %s refused subscription %r: %s", self._url, topic, rc)

    def _on_socket_open(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        # Nagle's algorithm stalls QoS 1 request/ack flows by ~40 ms (MEASURED.md).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._paho.reset_buffer()
        assert self._loop is not None
        self._paho.hold_reads = self._reading_paused = False
        self._loop.add_reader(sock, self._on_readable)

    def _on_readable(self) -> None:
        if self._fast is None:
            self._read_paho_s_way()
        else:
            self._paho.loop_read()
        # loop_read stops after a few packets; what is already buffered (FastIO's buffer, or
        # TLS's on paho's paths) would otherwise wait for the socket to become readable again.
        while self._paho.buffered() and self._paho.socket() is not None:
            self._paho.loop_read()
        # Acks and republishes made while handling what was read go out now, in this loop
        # iteration, as paho's own loop does, not one round trip through add_writer later.
        if self._paho.want_write():
            self._paho.loop_write()

    def _read_paho_s_way(self) -> None:
        """Read on while each ``loop_read`` handled a packet, up to a bound.

        paho's ``loop_read`` reads one packet per publish pending, so a client with few pending
        (a consumer) took one event-loop round per packet. A subscriber on these paths (20k x
        300 B, QoS 1, its publisher in the same process on the fast paths) moved ~4,200 msg/s
        at ~180 us of CPU per message, ~7,000 at ~100 us with this. The bound keeps the loop
        fair to other work; an idle socket costs one failed recv. A packet that handed nothing
        to a callback (PINGRESP, or half a packet) ends the round: the next wakeup goes on.
        """
        p = self._paho
        for _ in range(_PAHO_READS_PER_WAKEUP):
            before = self._handled
            p.loop_read()
            if self._handled == before or p.socket() is None or self._reading_paused:
                return

    def _pause_reading(self) -> None:
        """Stop reading until the caller acks: our own Receive Maximum, enforced.

        Mosquitto 2.0.11 was measured sending past a client's Receive Maximum (up to its own
        max_inflight_messages and beyond) while acks flow; everything read here waits in memory
        for the caller's commit. Not reading leaves the rest in the broker, by TCP flow control.
        """
        sock = self._paho.socket()
        if sock is None or self._loop is None:
            return
        self._loop.remove_reader(sock)
        self._paho.hold_reads = self._reading_paused = True
        self._paused_at = time.monotonic()
        self._book.counts["read_pauses"] += 1

    def _resume_reading(self) -> None:
        self._paho.hold_reads = self._reading_paused = False
        sock = self._paho.socket()
        if sock is not None and self._loop is not None:
            self._loop.add_reader(sock, self._on_readable)
            if self._paho.buffered():  # bytes the socket will not signal again (TLS)
                self._loop.call_soon(self._on_readable)

    def _on_socket_close(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, self._paho.loop_write)

    def _on_unregister_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)
