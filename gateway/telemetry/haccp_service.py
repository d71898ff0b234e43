"""The HACCP recorder: the food-safety record written as things happen, durable before it is told.

:class:`HaccpRecorder` is a :class:`~gateway.lifecycle.Service`. The wiring hands it:

* every reading: :meth:`HaccpRecorder.reading` (``DeviceReadings``; a recorder callback like
  the telemetry recorder's ``take``). Never blocks, never queues the reading itself: it is
  folded into the interval being sampled at once (a few dictionary updates);
* every detector Signal: :meth:`HaccpRecorder.signal` (only food-safety ones make records);
* every corrective action: :meth:`HaccpRecorder.action` (an acknowledgement's note, with who);
* every availability change: :meth:`HaccpRecorder.availability` (offline starts a gap).

``signal``, ``action`` and ``availability`` return a future that is done once their record is
on disk (with its seq), or at once with None when there is nothing to record: whoever tells a
person "recorded" awaits it first (STYLE.md 19). Ignoring it is fine.

The gateway's own start and stop are recorded as a gap: the stop writes each unit's part
interval, ends open excursions as ``gateway_stopped`` and opens a ``gateway`` gap; the next
start closes it with its length (or says the last run ended without a clean stop).

**Queue and overflow policy.** What waits for the disk is records, already in the chain's order:
at most ``max_pending`` while the disk is slow or failing. Past it, new ``interval`` records are
refused; excursions, actions and gaps are still taken up to twice the bound. A refused record is
never sealed (the chain stays whole), it is counted per kind (``stats.refused``), logged and
alerted once, and once the queue is down to half the bound a ``gap`` record says how many
records were lost and over what time: the record shows the hole, it never hides it.

A write that fails (a full disk, a read-only directory) loses nothing queued: it is tried again
every ``retry_s``, logged once and alerted (critical: food-safety records are not being kept).
Writes run on a worker thread, one at a time; a write in flight when the service stops is
waited for, never sent twice.

Retention runs once a day (monotonic time) in the writer's turn: at most one segment is
retired per run (``gateway.telemetry.haccp_store``), so even a wall clock stepped years ahead
removes at most one month a day, while its ``clock_step`` alert is seen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from gateway.errors import StoreError
from gateway.lifecycle import Service
from gateway.telemetry.haccp import Chain, Draft, HaccpCore, Sealed
from gateway.telemetry.haccp_store import HaccpStore, Segment, due_for_retirement

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from pathlib import Path

    from gateway.clock import Clock
    from gateway.config import HaccpConfig
    from gateway.contract import DeviceState
    from gateway.devices.events import DeviceReadings
    from gateway.telemetry.schema import DeviceSchema
    from gateway.telemetry.signals import Signal

__all__ = ["HaccpRecorder", "HaccpStats", "food_safety_units"]

log = logging.getLogger(__name__)

_BATCH = 1000  # records per write
_TICK_S = 10.0
_RETRY_S = 5.0
_DAY_S = 86_400.0
_MAX_PENDING = 20_000

Written = asyncio.Future[int | None]


def food_safety_units(schemas: Mapping[str, DeviceSchema]) -> dict[str, dict[str, str]]:
    """Device -> {food-safety point -> unit}, for the devices that have such points."""
    return {d: {p: s.units.get(p, "") for p in sorted(s.food_safety)}
            for d, s in schemas.items() if s.food_safety}  # fmt: skip


@dataclass
class HaccpStats:
    """What the recorder did, as data (health, status).

    Attributes:
        written: records on disk (this run).
        head: the newest seq on disk.
        refused: records refused because the queue was full, per kind.
        write_errors: failed attempts to write.
        failing: the write error in words while writes fail, else None.
        retired: segments retired by age (this run).
        ignored: events handed in while the service was not running.
    """

    written: int = 0
    head: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    write_errors: int = 0
    failing: str | None = None
    retired: int = 0
    ignored: int = 0


@dataclass(slots=True)
class _Item:
    sealed: Sealed
    futures: list[Written] = field(default_factory=list)
    retire: Segment | None = None


class HaccpRecorder(Service):
    """Writes the food-safety record (see the module docstring)."""

    name = "haccp"

    def __init__(
        self,
        cfg: HaccpConfig,
        directory: Path,
        durability: str,
        units: Mapping[str, Mapping[str, str]],
        clock: Clock,
        *,
        site: str,
        alert: Callable[[str, str, str, str], None] = lambda *_: None,
        time_uncertain: Callable[[], bool] = lambda: False,
        max_pending: int = _MAX_PENDING,
        tick_s: float = _TICK_S,
        retry_s: float = _RETRY_S,
        housekeeping_s: float = _DAY_S,
    ) -> None:
        """Prepare; the record is opened on start.

        Args:
            cfg: the site's ``[haccp]``.
            directory: where the record lives (``cfg.directory(state.dir)``).
            durability: the site's ``state.durability`` ("full" fsyncs every write).
            units: device -> {food-safety point -> unit} (:func:`food_safety_units`).
            clock: stamps the gateway's start and stop, times the ticks and the retries.
            site: the site id, written in each start record.
            alert: tells people ``(level, kind, text, subject)``.
            time_uncertain: whether the wall clock may be wrong now (such records say so).
            max_pending: records that may wait for the disk (see the overflow policy).
            tick_s: how often intervals that no reading closed are closed.
            retry_s: the pause after a failed write.
            housekeeping_s: how often retention runs.
        """
        self._cfg = cfg
        self.directory = directory
        self._fsync = durability == "full"
        self._clock = clock
        self._alert = alert
        self._time_uncertain = time_uncertain
        self._max_pending = max_pending
        self._tick_s = tick_s
        self._retry_s = retry_s
        self._housekeeping_s = housekeeping_s
        self._core = HaccpCore(site, timedelta(minutes=cfg.interval_min), cfg.keep_days, units)
        self._chain = Chain()
        self._store: HaccpStore | None = None
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._inflight: asyncio.Future[tuple[int, str]] | None = None
        self._lost: tuple[int, datetime, datetime, str] | None = None  # count, first, last, why
        self._housekeep_due = False
        self._accepting = False  # from the start until the stop begins
        self.stats = HaccpStats()

    # --- in ---------------------------------------------------------------------------------

    def reading(self, readings: DeviceReadings) -> None:
        """Take one reading of any device (``DeviceService.record``); never blocks."""
        if not self._accepting:
            self.stats.ignored += 1
            return
        drafts = self._core.reading(readings)
        if drafts:
            self._emit(drafts)

    def signal(self, signal: Signal) -> Written:
        """Take a detector's Signal; done once its record (if any) is on disk."""
        return self._take(lambda: self._core.signal(signal))

    def action(self, alert_id: str, device: str, by: str, note: str, at: datetime) -> Written:
        """Record a corrective action (``by`` who, ``note`` what); done once on disk."""
        return self._take(lambda: self._core.action(alert_id, device, by, note, at))

    def availability(
        self, device: str, state: DeviceState | str, at: datetime, reason: str = ""
    ) -> Written:
        """A device's availability changed (``AvailabilityChanged``); offline begins a gap."""
        online = str(state) != "offline"
        return self._take(lambda: self._core.availability(device, at, online=online,
                                                          reason=reason))

    def _take(self, make: Callable[[], list[Draft]]) -> Written:
        done: Written = asyncio.get_running_loop().create_future()
        if not self._accepting:
            self.stats.ignored += 1
            log.error("haccp: an event came while the recorder was not running; not recorded")
            done.set_result(None)
            return done
        self._emit(make(), done)
        return done

    # --- the queue --------------------------------------------------------------------------

    def _emit(self, drafts: Sequence[Draft], done: Written | None = None) -> None:
        last: _Item | None = None
        for draft in drafts:
            queued, bound = len(self._queue), self._max_pending
            if queued >= bound and (draft.kind == "interval" or queued >= 2 * bound):
                self._refuse(draft)
                continue
            self._note_lost()
            last = self._push(draft)
        if done is not None:
            if last is None:
                done.set_result(None)
            else:
                last.futures.append(done)

    def _push(self, draft: Draft, retire: Segment | None = None) -> _Item:
        sealed = self._chain.seal(draft, time_uncertain=self._time_uncertain())
        item = _Item(sealed, retire=retire)
        self._queue.append(item)
        self._wake.set()
        return item

    def _refuse(self, draft: Draft) -> None:
        self.stats.refused[draft.kind] += 1
        if self._lost is None:
            why = self.stats.failing or "the disk did not keep up"
            self._lost = (1, draft.at, draft.at, why)
            text = (
                f"haccp: {len(self._queue)} food-safety records wait to be written to "
                f"{self.directory}; new ones are refused ({draft.kind} first) and the record "
                f"will show a gap ({why})"
            )
            log.error("%s", text)
            self._alert("critical", "haccp_records_lost", text, "haccp")
        else:
            count, first, last, why = self._lost
            self._lost = (count + 1, min(first, draft.at), max(last, draft.at), why)

    def _note_lost(self) -> None:
        if self._lost is not None and len(self._queue) < self._max_pending // 2:
            count, first, last, why = self._lost
            self._lost = None
            self._push(self._core.lost(count, first, last, why))
            log.warning("haccp: the queue has room again; %d records were lost (recorded as a "
                        "gap)", count)  # fmt: skip

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the record, write the start (the gap since the last stop), then run."""
        store = HaccpStore(self.directory, fsync=self._fsync)
        head = await asyncio.to_thread(store.open)
        self._store = store
        for warning in store.warnings:
            log.error("haccp: %s", warning)
            self._alert("critical", "haccp_anchor", warning, "haccp")
        self._chain = Chain(head.seq, head.hash, head.at)
        self.stats.head = head.seq
        if head.torn:
            log.warning("haccp: a torn last record (%d bytes) was set aside in %s", head.torn,
                        self.directory / head.torn_to)  # fmt: skip
        self._emit(self._core.start(self._clock.now(), head))
        self._accepting = True
        while self._queue:  # entering means ready: the start is on disk (or alerted, and queued)
            if not await self._write_once():
                break
        self.spawn(self._writer(), "writer")
        self.spawn(self._ticker(), "tick")

    async def stop(self) -> None:
        """Write each unit's part interval and the gateway's gap, then close the record."""
        store = self._store
        if store is None:
            return
        self._accepting = False  # the stop's records are the last of this run
        self._emit(self._core.stop(self._clock.now()))
        try:
            while self._queue:
                if not await self._write_once():
                    break
        finally:
            self._store = None
            await asyncio.to_thread(store.close)
        if self._queue:
            log.error("haccp: %d food-safety records could not be written before the stop (%s)",
                      len(self._queue), self.stats.failing)  # fmt: skip
            for item in self._queue:
                for done in item.futures:
                    done.cancel()
            self._queue.clear()

    # --- writing ----------------------------------------------------------------------------

    async def _ticker(self) -> None:
        next_housekeeping = self._clock.monotonic()
        while True:
            if self._clock.monotonic() >= next_housekeeping:
                next_housekeeping = self._clock.monotonic() + self._housekeeping_s
                self._housekeep_due = True  # the writer's turn: never beside a write
                self._wake.set()
            await self._clock.sleep(self._tick_s)
            drafts = self._core.tick(self._clock.now())
            if drafts:
                self._emit(drafts)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self._write_once():
                    await self._clock.sleep(self._retry_s)
            if self._housekeep_due:
                self._housekeep_due = False
                await self._housekeep()

    async def _write_once(self) -> bool:
        """Write from the head of the queue; False if it failed (the records stay queued)."""
        if self._inflight is None:
            self._inflight = self._submit()
        try:
            # Shielded: a stop while the thread writes waits for this same write, never
            # starts a second one of the same records.
            count, trouble = await asyncio.shield(self._inflight)
        except StoreError as err:
            self._inflight = None
            self._failed(err)
            return False
        self._inflight = None
        if trouble:
            log.error("haccp: retention: %s", trouble)
            self._alert("warning", "haccp_retention", f"food-safety record: {trouble}", "haccp")
        self._written(count, retired=not trouble)
        return True

    def _submit(self) -> asyncio.Future[tuple[int, str]]:
        store = self._store
        assert store is not None
        head = self._queue[0]
        call: Callable[[], tuple[int, str]]
        if head.retire is not None:
            call = functools.partial(self._retire, store, head.retire, head.sealed)
        else:
            batch: list[Sealed] = []
            for item in self._queue:
                if item.retire is not None or len(batch) == _BATCH:
                    break
                batch.append(item.sealed)
            call = functools.partial(self._append, store, batch)
        return asyncio.get_running_loop().run_in_executor(None, call)

    @staticmethod
    def _append(store: HaccpStore, batch: Sequence[Sealed]) -> tuple[int, str]:
        return store.append(batch), ""

    @staticmethod
    def _retire(store: HaccpStore, segment: Segment, record: Sealed) -> tuple[int, str]:
        """On the writer's thread: the ``retired`` record (retried if it fails), then the rest.

        Once the record is on disk it counts as written whatever follows: a failure of the
        anchor or the delete is said, and retention tries again on its next run, never by
        writing the same record twice.
        """
        store.append([record], fsync=True)
        try:
            store.finish_retirement(segment, record)
        except StoreError as err:
            return 1, f"{segment.name} is kept for now: {err}"
        return 1, ""

    def _written(self, count: int, *, retired: bool) -> None:
        if self.stats.failing is not None:
            log.warning("haccp: writing to %s works again", self.directory)
            text = f"food-safety records are written to {self.directory} again"
            self._alert("clear", "haccp_write_failed", text, "haccp")
            self.stats.failing = None
        for _ in range(count):
            item = self._queue.popleft()
            self.stats.head = item.sealed.seq
            if item.retire is not None and retired:
                self.stats.retired += 1
                log.info("haccp: %s retired (older than %d days)", item.retire.name,
                         self._cfg.keep_days)  # fmt: skip
            for done in item.futures:
                if not done.done():
                    done.set_result(item.sealed.seq)
        self.stats.written += count
        self._note_lost()

    def _failed(self, err: StoreError) -> None:
        self.stats.write_errors += 1
        if self.stats.failing is not None:
            return
        self.stats.failing = str(err)
        text = (f"food-safety records are not being kept: {err} ({len(self._queue)} wait in "
                f"memory, up to {self._max_pending})")  # fmt: skip
        log.error("haccp: %s", text)
        self._alert("critical", "haccp_write_failed", text, "haccp")

    async def _housekeep(self) -> None:
        store, newest = self._store, self._chain.newest
        if store is None or newest is None:
            return
        try:
            segments = await asyncio.to_thread(store.segments)
        except StoreError as err:
            log.warning("haccp: retention could not list %s: %s", self.directory, err)
            return
        due = due_for_retirement(segments, newest, self._cfg.keep_days)
        if due is not None:
            self._push(due.retired(self._clock.now(), self._cfg.keep_days), retire=due)

    def __repr__(self) -> str:
        """For logs: where, and how far."""
        return f"<HaccpRecorder {self.directory} head={self.stats.head}>"
