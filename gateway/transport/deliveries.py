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


class Deliveries:
    """Pending publishes, unacknowledged inbound messages, the handler, and the counters.

    Overflow policy for publishes: drop the newest and count it once ``max_pending`` QoS > 0
    publishes await their PUBACK; ``room`` is set while fewer than half that are pending.
    """

    def __init__(self, max_pending: int) -> None:
        """Allow up to ``max_pending`` QoS > 0 publishes awaiting acknowledgement."""
        self.max_pending = max_pending
        self.pending: set[int] = set()
        self.room = asyncio.Event()
        self.room.set()
        self.counts = {"received": 0, "published": 0, "publish_dropped": 0, "read_pauses": 0}
        self._unacked: dict[int, InboundMessage] = {}  # this connection's only, by packet id
        self._handler: MessageHandler | None = None
        self._early: list[InboundMessage] = []  # arrived before a handler was set
        self._dropping = False  # a flood of drops logs once, not once per message

    def stats(self, *, reconnects: int) -> MqttStats:
        """A snapshot of the counters (the link counts reconnects)."""
        return MqttStats(**self.counts, reconnects=reconnects, pending_publishes=len(self.pending))

    # ---- outbound ---------------------------------------------------------------------------

    def refuse(self, qos: int, *, connected: bool) -> bool:
        """Whether a publish must be dropped now (and if so, count it)."""
        if (qos > 0 and len(self.pending) >= self.max_pending) or (qos == 0 and not connected):
            self.drop(f"publish dropped ({len(self.pending)} pending, connected={connected})")
            return True
        return False

    def sent(self, mid: int, qos: int) -> None:
        """Record a publish the library accepted; QoS > 0 ones are pending until acknowledged."""
        if qos > 0:
            self.pending.add(mid)
            if 2 * len(self.pending) >= self.max_pending:
                self.room.clear()

    def acknowledged(self, mid: int, failure: str | None) -> None:
        """Record the broker's PUBACK (or, for QoS 0, the write); ``failure`` if it refused."""
        self.pending.discard(mid)
        if 2 * len(self.pending) < self.max_pending:
            self.room.set()
        if failure is not None:
            self.drop(f"broker refused publish {mid}: {failure}")
        else:
            self.counts["published"] += 1
            self._dropping = False

    def drop(self, why: str) -> None:
        """Count a dropped publish; log only the first of a run of drops."""
        self.counts["publish_dropped"] += 1
        if not self._dropping:
            log.warning("%s; further drops are only counted until a publish succeeds", why)
            self._dropping = True

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
        """Forget the unacknowledged messages: their packet ids died with the connection."""
        self._unacked.clear()

    def _dispatch(self, msg: InboundMessage) -> None:
        assert self._handler is not None
        try:
            self._handler(msg)
        except Exception:
            # The handler is the application's: a bug on one message must not take the link
            # down. The message stays unacknowledged, so the broker redelivers it later.
            log.exception("MQTT handler failed on a message on %s", msg.topic)
