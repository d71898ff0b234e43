"""The alert service: owns the alert book, keeps it on disk, and has the bridge announce it.

What comes in (all on the event loop, none of it blocks):

* :meth:`AlertService.signal`: a detector's :class:`~gateway.telemetry.signals.Signal`;
* :meth:`AlertService.notice`: the gateway's own alerts (``Wiring.alert``, the order path's
  ``AlertOut``), a :class:`~gateway.events.Notice` whose level is the priority, or ``clear``
  to end the alert ``{subject}:{kind}``. The kinds in :data:`ENDS_BY_ITSELF` are conditions
  their service clears when they are over; every other kind is a one-shot (a dead letter, a
  clock step) that nothing clears, so its acknowledgement ends it;
* :meth:`AlertService.take_ack`: an acknowledgement, from the MQTT adapter
  (:mod:`gateway.telemetry.alerts_bridge`).

**Durable before announced** (STYLE.md 19). The book changes at once (so a repeat right after an
open is a repeat), but what it says goes through one writer loop: a batch's events are appended
to the history and the snapshot replaced (on a thread: one write, one fsync, per batch), and
only then are the events published, the retained active set replaced, an acknowledgement's
reply sent and its MQTT message acknowledged. A reply that changes nothing (``already
acknowledged``) waits its turn behind the writes before it, so nobody is told of an
acknowledgement that is not on disk yet. A write that fails stops the service, and with it the
gateway, as the order store does: nothing unwritten was announced, an unacknowledged ack comes
again from the broker, and systemd starts the gateway again.

Escalations are checked once a second on the injected clock's monotonic time.

Loops: ``alerts:writer`` and ``alerts:escalation``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.contract import AckStatus
from gateway.errors import StoreError
from gateway.events import Notice
from gateway.lifecycle import Service
from gateway.telemetry.alerts import AckResult, AlertBook, Timing
from gateway.telemetry.alerts_store import AlertStateCorrupt, snapshot_of
from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime
    from pathlib import Path

    from gateway.clock import Clock
    from gateway.config import AlertsConfig
    from gateway.contract import AlertAck, FieldError
    from gateway.telemetry.alerts import AlertEvent, AlertRecord
    from gateway.telemetry.alerts_store import AlertStore, Snapshot

__all__ = ["ENDS_BY_ITSELF", "AckUnreadable", "AlertOutlet", "AlertService", "AlertStats"]

log = logging.getLogger(__name__)

_TICK_S = 1.0

#: The gateway's own alerts that their service clears when the condition is over (each has a
#: ``clear`` notice at its call site); every other kind is ended by its acknowledgement.
ENDS_BY_ITSELF = frozenset({
    "kds_silent",  # routing.screens: the screen is heard again
    "disk_full",  # routing.service: free space is back
    "clock_unsynchronised",  # clockwatch: the kernel says synchronised
    "telemetry_sink_unavailable",  # telemetry.sink: the database takes writes again
    "telemetry_sink_refused",  # telemetry.sink: likewise, or it is merely unavailable now
    "telemetry_write_failed",  # telemetry.recorder: the history is written again
    "haccp_write_failed",  # telemetry.haccp_service: the record is written again
})  # fmt: skip


#: A notice's level as a priority; ``warning`` and ``info`` are the levels before priorities,
#: still understood so that a service not yet moved over is heard.
_PRIORITIES = {p.value: p for p in Priority} | {"warning": Priority.MEDIUM, "info": Priority.LOW}


class AlertOutlet(Protocol):
    """Where the service's durable changes are announced (the MQTT adapter)."""

    def events(self, events: Sequence[AlertEvent]) -> None:
        """Publish these events (they are on disk)."""
        ...

    def active(self, alerts: Sequence[AlertRecord], seq: int, at: datetime) -> None:
        """Replace the retained set of active alerts."""
        ...

    def reply(self, route: object, result: AckResult, at: datetime) -> None:
        """Answer the acknowledgement that came by ``route``."""
        ...

    def ack(self, token: object) -> None:
        """Acknowledge the MQTT message behind ``token`` (its effect is on disk)."""
        ...


@dataclass(frozen=True, slots=True)
class AckUnreadable:
    """An acknowledgement that is not a valid :class:`~gateway.contract.AlertAck`.

    Attributes:
        alert_id: the id it named, if that much could be read.
        errors: what is wrong, and where.
    """

    alert_id: str | None
    errors: tuple[FieldError, ...]


@dataclass(slots=True)
class AlertStats:
    """What the service did, as data.

    Attributes:
        events: events made, by kind (``opened``, ``escalated``, ...).
        repeats: opens of an alert already active (deduplicated: nothing announced).
        acks: acknowledgements answered, by status.
        writes: batches written to disk.
        late: notices that came while the service was not running (logged, not kept).
    """

    events: dict[str, int] = field(default_factory=dict)
    repeats: int = 0
    acks: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    late: int = 0


@dataclass(slots=True)
class _Item:
    events: Sequence[AlertEvent]
    reply: tuple[object, AckResult] | None = None
    token: object | None = None


class AlertService(Service):
    """The alert book, durable, with its escalation tick; announces through an outlet."""

    name = "alerts"

    def __init__(
        self, cfg: AlertsConfig, store: AlertStore, outlet: AlertOutlet, clock: Clock
    ) -> None:
        """Prepare; the store is read on start.

        Args:
            cfg: the site's ``[alerts]``.
            store: the alert files in the state directory.
            outlet: the MQTT adapter.
            clock: real time: people answer in real minutes.
        """
        self._timing = Timing.from_config(cfg)
        self._store = store
        self._outlet = outlet
        self._clock = clock
        self._book = AlertBook(self._timing)
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # set whenever the writer has nothing left
        self._inflight: tuple[list[_Item], asyncio.Future[None], Snapshot] | None = None
        self._listeners: list[Callable[[AlertEvent], None]] = []
        self.stats = AlertStats()

    # --- what others use ----------------------------------------------------------------

    @property
    def active(self) -> list[AlertRecord]:
        """The active alerts as the book has them now, most urgent first."""
        return self._book.active

    def on_event(self, listener: Callable[[AlertEvent], None]) -> None:
        """Tell ``listener`` of every event once it is on disk (a telemetry note, say).

        It is called on the loop and must not raise.
        """
        self._listeners.append(listener)

    def signal(self, s: Signal) -> None:
        """A detector's signal: opens or clears the alert ``{device}:{rule}``."""
        self._apply(s, latched=False)

    def notice(self, n: Notice) -> None:
        """One of the gateway's own alerts (or, with level ``clear``, the end of one)."""
        now = self._clock.now()
        if n.level == "clear":
            self._apply(Signal("clear", n.subject, n.kind, Priority.LOW, now, text=n.message))
            return
        priority = _PRIORITIES.get(n.level)
        if priority is None:
            log.error("alert %s:%s has no priority %r (a bug): raised as high", n.subject,
                      n.kind, n.level)  # fmt: skip
            priority = Priority.HIGH
        s = Signal("open", n.subject, n.kind, priority, now, text=n.message)
        self._apply(s, latched=n.kind not in ENDS_BY_ITSELF)

    def take_ack(self, ack: AlertAck | AckUnreadable, route: object, token: object) -> None:
        """An acknowledgement; answered (by ``route``) and ``token`` acknowledged once durable."""
        if isinstance(ack, AckUnreadable):
            result = AckResult(AckStatus.REJECTED, ack.alert_id, errors=ack.errors)
        else:
            result = self._book.ack(ack.alert_id, ack.by, ack.note, self._clock.now())
            if result.status is AckStatus.ACKNOWLEDGED:
                log.info("alert %s acknowledged by %s: %s", ack.alert_id, ack.by, ack.note)
        acks = self.stats.acks
        acks[result.status.value] = acks.get(result.status.value, 0) + 1
        self._queue(_Item(result.events, (route, result), token))

    async def idle(self) -> None:
        """Return once everything the book said so far is written and announced (for tests)."""
        while self._pending or self._inflight is not None:
            self._settled.clear()
            await self._settled.wait()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Read the alerts kept on disk, announce the active set, start the loops."""
        damaged: tuple[AlertStateCorrupt, Path] | None = None
        store = self._store
        await asyncio.to_thread(store.repair)
        try:
            loaded = await asyncio.to_thread(store.load)
        except AlertStateCorrupt as err:
            aside = await asyncio.to_thread(store.set_aside)
            loaded = await asyncio.to_thread(store.load, rebuild=True)
            damaged = (err, aside)
        await asyncio.to_thread(store.open_history)  # not writable: fail now, not at dinner
        mono, now = self._clock.monotonic(), self._clock.now()
        snap = loaded.snapshot
        self._book = book = AlertBook(
            self._timing,
            active=() if snap is None else snap.active,
            cleared=() if snap is None else snap.cleared,
            seq=0 if snap is None else snap.seq,
            mono=mono,
        )
        replayed = book.replay(loaded.tail, mono)
        if loaded.dropped:
            log.warning("alerts: %d unreadable line(s) of %s were skipped", loaded.dropped,
                        store.history_path)  # fmt: skip
        self.spawn(self._writer(), "writer")
        self.spawn(self._escalation(), "escalation")
        self._outlet.active(book.active, book.seq, now)
        if damaged is not None:
            corrupt, aside = damaged
            text = (
                f"the alert state {store.path} was damaged ({corrupt.reason}); it was moved to "
                f"{aside} and the active alerts were rebuilt from {store.history_path}"
            )
            log.error("%s", text)
            self.notice(Notice("medium", "alert_state_damaged", "gateway", text))
        log.info("alerts ready: %d active (%d events replayed from %s)", len(book.active),
                 replayed, store.history_path.name)  # fmt: skip

    async def stop(self) -> None:
        """Finish the write in flight and write what is left (one try), then close the files."""
        try:
            inflight, self._inflight = self._inflight, None
            if inflight is not None:
                batch, fut, snap = inflight
                await fut
                self._release(batch, snap)
            await self._write_pending()
        except StoreError as err:
            log.error("alerts: changes could not be written before the stop: %s", err)  # noqa: TRY400 - the error says it all
        finally:
            self._store.close()

    # --- inside -------------------------------------------------------------------------

    def _apply(self, s: Signal, *, latched: bool = False) -> None:
        if not self.running:
            self.stats.late += 1
            log.warning("alert %s (%s) after the alert service stopped: not kept", s.alert_id,
                        s.kind)  # fmt: skip
            return
        # The event is stamped with the signal's own time: the reading that decided it (what
        # a backtest of the same readings says too), not the moment this line ran.
        events = self._book.apply(s, self._clock.monotonic(), s.at, latched=latched)
        if not events and s.kind == "open":
            self.stats.repeats += 1
        if events:
            self._queue(_Item(events))

    def _queue(self, item: _Item) -> None:
        for ev in item.events:
            self.stats.events[ev.event] = self.stats.events.get(ev.event, 0) + 1
        self._pending.append(item)
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()

    async def _escalation(self) -> None:
        while True:
            await self._clock.sleep(_TICK_S)
            events = self._book.tick(self._clock.monotonic(), self._clock.now())
            for ev in events:
                log.warning("alert %s not acknowledged: %s (%s)", ev.alert.alert_id, ev.event,
                            ev.alert.priority.value)  # fmt: skip
            if events:
                self._queue(_Item(events))

    async def _write_pending(self) -> None:
        while self._pending:
            # Everything queued so far is in this batch, so the book's state now is exactly
            # the state after its events: the snapshot written with them.
            batch, self._pending = self._pending, []
            book = self._book
            snap = snapshot_of(book.seq, self._clock.now(), book.active, book.cleared)
            events = [e for item in batch for e in item.events]
            if events:
                fut = asyncio.get_running_loop().run_in_executor(
                    None, self._store.write, events, snap
                )
                self._inflight = (batch, fut, snap)
                await asyncio.shield(fut)  # cancelled (a stop): stop() waits for it
                self._inflight = None
                self.stats.writes += 1
            self._release(batch, snap if events else None)
        self._settled.set()

    def _release(self, batch: list[_Item], snap: Snapshot | None) -> None:
        now = self._clock.now()
        outlet = self._outlet
        for item in batch:
            if item.events:
                outlet.events(item.events)
                for ev in item.events:
                    for listener in self._listeners:
                        listener(ev)
            if item.reply is not None:
                outlet.reply(*item.reply, now)
            if item.token is not None:
                outlet.ack(item.token)
        if snap is not None:
            outlet.active(snap.active, snap.seq, now)

