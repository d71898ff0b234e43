"""Bookkeeping of one MQTT client's messages in both directions; no I/O, no paho.

Kept apart from ``mqtt`` so the rules (what counts as pending, when an ack is still valid,
when publishing must wait) are plain code that unit tests can drive without a broker.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.transport.messages import InboundMessage, MessageHandler, MqttStats

__all__ = ["Deliveries"]

log = logging.getLogger(__name__)


class _DropRun:
    """Drops of one kind, said once when they start and once when they stop (STYLE.md 7, 18)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.active = False
        self.count = 0  # drops in the current run

    def drop(self, why: str, n: int = 1) -> None:
        self.count += n
        if not self.active:
            self.active = True
            log.warning("%s dropped: %s; further drops are only counted until they flow again",
                        self.what, why)  # fmt: skip

    def end(self) -> None:
        if self.active:
            log.warning("%s flow again; %d were dropped meanwhile", self.what, self.count)
            self.active = False
            self.count = 0


class Deliveries:
    """Pending publishes, unacknowledged inbound messages, the handler, and the counters.

    Overflow policy for publishes, whatever the QoS: drop the newest, count it (apart by QoS)
    and return False to the caller. For QoS > 0, once ``max_pending`` publishes await their
    PUBACK; ``room`` is set while fewer than half that are pending. For QoS 0, once
    ``max_unsent_qos0`` publishes (or ``max_unsent_qos0_bytes`` of payload and topic) were
    handed to the library and not yet written to the socket (a stalled broker or link), and
    whenever disconnected, since a QoS 0 publish has nowhere to wait for a reconnect.

    Why the newest: what waits sits in paho's output queue, the first of it perhaps half
    written, and no public paho call takes a packet back out; and the caller learns of the
    drop at once (False), as for QoS 1, so it can keep its latest reading and send it later.
    A run of drops of either kind is logged when it starts and when it ends: for QoS > 0 at
    the first successful PUBACK once fewer than half the bound are pending, for QoS 0 at the
    first accepted publish once less than half its bounds wait, so a client held at a bound
    does not log on every message.
    """

    def __init__(
        self, max_pending: int, *, max_unsent_qos0: int = 1000, max_unsent_qos0_bytes: int = 1 << 20
    ) -> None:
        """Bound what may wait: QoS > 0 publishes awaiting acks, QoS 0 ones awaiting the socket."""
        self.max_pending = max_pending
        self.max_unsent_qos0 = max_unsent_qos0
        self.max_unsent_qos0_bytes = max_unsent_qos0_bytes
        self.pending: set[int] = set()
        self.room = asyncio.Event()
        self.room.set()
        self.counts = {
            "received": 0, "published": 0, "publish_dropped": 0, "qos0_dropped": 0,
            "read_pauses": 0,
        }  # fmt: skip
        self._unsent: dict[int, int] = {}  # QoS 0 publishes not yet written: packet id -> size
        self._unsent_bytes = 0
        self._unacked: dict[int, InboundMessage] = {}  # this connection's only, by packet id
        self._handler: MessageHandler | None = None
        self._early: list[InboundMessage] = []  # arrived before a handler was set
        self._drops = _DropRun("MQTT QoS 1 publishes")
        self._qos0_drops = _DropRun("MQTT QoS 0 publishes (telemetry)")

    def stats(self, *, reconnects: int) -> MqttStats:
        """A snapshot of the counters (the link counts reconnects)."""
        return MqttStats(
            **self.counts, reconnects=reconnects, pending_publishes=len(self.pending),
            qos0_unsent=len(self._unsent), qos0_unsent_bytes=self._unsent_bytes,
        )  # fmt: skip

    # ---- outbound ---------------------------------------------------------------------------

    def refuse(self, qos: int, *, connected: bool, size: int = 0) -> bool:
        """Whether a publish of ``size`` bytes must be dropped now (and if so, count it)."""
        if qos > 0:
            if len(self.pending) < self.max_pending:
                return False
            self.drop(qos, f"{len(self.pending)} await their PUBACK (max_pending_publishes)")
            return True
        if not connected:
            self.drop(0, "not connected")
            return True
        n, nbytes = len(self._unsent), self._unsent_bytes
        # One publish is always let through when nothing waits, however large.
        if n >= self.max_unsent_qos0 or (n and nbytes + size > self.max_unsent_qos0_bytes):
            self.drop(0, f"{n} publishes, {nbytes} bytes wait unsent behind a full socket")
            return True
        return False

    def sent(self, mid: int, qos: int, size: int = 0) -> None:
        """Record a publish the library accepted.

        QoS > 0 ones are pending until acknowledged, QoS 0 ones until written to the socket.
        """
        if qos > 0:
            self.pending.add(mid)
            if 2 * len(self.pending) >= self.max_pending:
                self.room.clear()
            return
        if self._qos0_drops.active and (
            2 * len(self._unsent) < self.max_unsent_qos0
            and 2 * self._unsent_bytes < self.max_unsent_qos0_bytes
        ):
            self._qos0_drops.end()
        self._unsent[mid] = size
        self._unsent_bytes += size

    def acknowledged(self, mid: int, failure: str | None) -> None:
        """Record the broker's PUBACK (or, for QoS 0, the write); ``failure`` if it refused."""
        size = self._unsent.pop(mid, None)
        if size is not None:  # a QoS 0 publish, now in the kernel's hands
            self._unsent_bytes -= size
            self.counts["published"] += 1
            return
        if mid not in self.pending:
            return  # not one we count: e.g. a QoS 0 publish given up with its connection
        self.pending.remove(mid)
        if 2 * len(self.pending) < self.max_pending:
            self.room.set()
        if failure is not None:
            self.drop(1, f"the broker refused publish {mid}: {failure}")
        else:
            self.counts["published"] += 1
            if self.room.is_set():
                self._drops.end()

    def drop(self, qos: int, why: str, n: int = 1) -> None:
        """Count ``n`` dropped publishes of this QoS; log only the first of a run of drops."""
        if qos == 0:
            self.counts["qos0_dropped"] += n
            self._qos0_drops.drop(why, n)
        else:
            self.counts["publish_dropped"] += n
            self._drops.drop(why, n)

    # ---- inbound ----------------------------------------------------------------------------

    def set_handler(self, handler: MessageHandler) -> None:
        """Set the handler and pass it the messages that arrived before, in order."""
        self._handler = handler
        early, self._early = self._early, []
        for msg in early:
            self._dispatch(msg)

    def received(self, msg: InboundMessage) -> None:
        """Count, remember for ``take_ack`` (QoS > 0) and hand ``msg`` to the handler."""
        self.counts["received"] += 1
        if msg.qos > 0:
            self._unacked[msg.mid] = msg
        if self._handler is None:
            self._early.append(msg)
        else:
            self._dispatch(msg)

    @property
    def unacked(self) -> int:
        """QoS > 0 messages handed to the handler on this connection and not yet acked."""
        return len(self._unacked)

    def take_ack(self, msg: InboundMessage) -> bool:
        """Whether ``msg`` needs its ack sent now: QoS > 0, not yet acked, same connection.

        A message from a lost connection must not be acked: its packet id may already name
        another message on the new one, and the broker redelivers it anyway.
        """
        if msg.qos == 0 or self._unacked.get(msg.mid) is not msg:
            return False
        del self._unacked[msg.mid]
        return True

    def connection_lost(self) -> None:
        """Forget what died with the connection.

        Unacknowledged inbound messages: their packet ids are the dead connection's. QoS 0
        publishes still unsent: paho discards them at the reconnect, so they count as dropped.
        """
        self._unacked.clear()
        if self._unsent:
            lost = len(self._unsent)
            self._unsent.clear()
            self._unsent_bytes = 0
            self.drop(0, f"{lost} were lost unsent with the connection", lost)

    def _dispatch(self, msg: InboundMessage) -> None:
        assert self._handler is not None
        try:
            self._handler(msg)
        except Exception:
            # The handler is the application's: a bug on one message must not take the link
            # down. The message stays unacknowledged, so the broker redelivers it later.
            log.exception("MQTT handler failed on a message on %s", msg.topic)
