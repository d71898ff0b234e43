"""The telemetry service: every reading of every device written to the history before it counts.

The device service hands each reading to :meth:`Recorder.take` as it is taken
(``DeviceService.record``: no lossy buffer in between). ``take`` only queues it; the writer loop
turns what is queued into rows (``gateway.telemetry.schema``: food-safety points apart from the
others, fields as line protocol) and appends them to the history in one transaction on a thread,
then tells the sinks how far the history now goes. A reading counts as taken (``stats.written``)
once that commit returned: only then can a sink send it anywhere.

Queue and overflow policy: at most ``telemetry.queue_readings`` readings wait in memory (while
a commit runs, or while the disk fails). Past it a new reading that holds no food-safety point
is refused; one that does is still taken, up to twice the bound, and refused only past that.
Every refusal is counted per device (``stats.refused``, and in the history's ``drops`` once it
can be written), logged once, and alerted once per outage.

A write that fails (a full disk, a state directory turned read-only) loses nothing already on
disk and nothing queued: the batch goes back to the head of the queue and is tried again every
few seconds; the failure is logged once with what to do, counted (``stats.write_errors``) and
alerted (critical: food-safety records are not being kept).

Housekeeping, on the real clock: every ``_HOUSEKEEPING_S`` the file's size is checked against
``max_mb`` (the oldest readings that are not food-safety are dropped, counted per device, one
alert) and ``food_safety_cap_mb`` (a critical alert; nothing is dropped); once a day readings
older than ``history_days`` are pruned, except food-safety ones a sink does not have yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from gateway.errors import StoreError, StoreFull
from gateway.lifecycle import Service
from gateway.telemetry.history import History, Row
from gateway.telemetry.lineproto import SeriesPrefix
from gateway.telemetry.schema import split_values

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from gateway.clock import Clock
    from gateway.config import TelemetryConfig
    from gateway.devices.codec import Value
    from gateway.devices.events import DeviceReadings
    from gateway.telemetry.lanes import Cursor
    from gateway.telemetry.schema import DeviceSchema

__all__ = ["Note", "Recorder", "RecorderStats", "epoch_ns"]

log = logging.getLogger(__name__)

_BATCH_ROWS = 20_000  # readings per transaction, at most: a commit of ~0.1 s at full speed
_LINGER_S = 0.05  # a commit waits this long for more readings: fewer, larger transactions
_RETRY_S = 5.0  # after a failed write
_HOUSEKEEPING_S = 60.0
_DAY_S = 86_400.0
_NS = 1_000_000_000
_T = TypeVar("_T")

#: A device's series as the history keys it, its escaper, and its food-safety points.
_Series = tuple[tuple[str, str, tuple[tuple[str, str], ...], str], SeriesPrefix, frozenset[str]]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def epoch_ns(at: datetime) -> int:
    """``at`` in nanoseconds since the epoch, exactly (whole microseconds, as datetimes hold).

    Integer arithmetic: ``at.timestamp()`` is a float, about 0.2 us coarse at today's dates, so
    a reading taken at .696000 could be kept as .695999 and shown as .695 to the millisecond.
    """
    return (at - _EPOCH) // _US * 1000


@dataclass(frozen=True, slots=True)
class Note:
    """One of the gateway's own records about a device, written beside its readings.

    Attributes:
        device: the device it is about (its history, for ``gateway telemetry query``).
        measurement: ``availability`` or ``alert`` (docs/telemetry.md).
        tags: the series' tags (``site``, ``device`` and what the measurement adds).
        at: when it happened.
        values: the fields.
    """

    device: str
    measurement: str
    tags: Mapping[str, str]
    at: datetime
    values: Mapping[str, Value]


@dataclass
class RecorderStats:
    """What the recorder did, as data (health, ``gateway telemetry status``).

    Attributes:
        taken: readings handed to :meth:`Recorder.take`.
        written: readings on disk (counted once committed).
        rows: rows written (a reading with food-safety and other points is two).
        refused: readings refused because the queue was full, per device.
        write_errors: failed attempts to write a batch.
        dropped: rows dropped to stay under ``max_mb``, per device.
        pruned_unsent: rows pruned by retention before a sink had them, per device.
        head: the newest seq written.
        failing: the write error in words while writes fail, else None.
    """

    taken: int = 0
    written: int = 0
    rows: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    write_errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    pruned_unsent: Counter[str] = field(default_factory=Counter)
    head: int = 0
    failing: str | None = None


class Recorder(Service):
    """Writes every reading to the history, then tells the sinks (see the module docstring)."""

    name = "telemetry"

    def __init__(
        self,
        cfg: TelemetryConfig,
        path: Path,
        durability: str,
        schemas: Mapping[str, DeviceSchema],
        clock: Clock,
        *,
        alert: Callable[[str, str, str, str], None],
        cursors: Callable[[], Sequence[Cursor]] = tuple,
        retry_s: float = _RETRY_S,
    ) -> None:
        """Prepare; the history is opened on start.

        Args:
            cfg: the site's ``[telemetry]``.
            path: the history's file.
            durability: the site's ``state.durability`` ("full" fsyncs each commit).
            schemas: each device's measurement, tags and food-safety points.
            clock: real time (waits, housekeeping); readings carry their own times.
            alert: tells people ``(level, kind, text, subject)``.
            cursors: every sink's cursor now (retention keeps what a sink lacks).
            retry_s: the pause after a failed write before the next try.
        """
        self._cfg = cfg
        self.path = path
        self._durability: Literal["full", "normal"] = "full" if durability == "full" else "normal"
        self._schemas = schemas
        self._clock = clock
        self._alert = alert
        self._cursors = cursors
        self._retry_s = retry_s
        self._queue: deque[DeviceReadings | Note] = deque()
        self._wake = asyncio.Event()
        self._series: dict[str, _Series] = {}
        self._note_series: dict[tuple[str, str, tuple[tuple[str, str], ...]], SeriesPrefix] = {}
        self._history: History | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._refused_unsaved: Counter[tuple[str, str]] = Counter()
        self._refusing = False
        self._lock = asyncio.Lock()
        self._busy: asyncio.Future[Any] | None = None
        self._inflight: tuple[list[DeviceReadings | Note], Counter[tuple[str, str]]] | None = None
        self._cap_alerted = False
        self._safety_cap_alerted = False
        self.stats = RecorderStats()

    # --- in ---------------------------------------------------------------------------------

    def take(self, readings: DeviceReadings) -> None:
        """Queue one reading to be written (``DeviceService.record``); never blocks."""
        self.stats.taken += 1
        queued, bound = len(self._queue), self._cfg.queue_readings
        if queued >= bound:
            schema = self._schemas.get(readings.device)
            safe = schema is not None and not schema.food_safety.isdisjoint(readings.values)
            if not safe or queued >= 2 * bound:
                self._refuse(readings.device)
                return
        self._queue.append(readings)
        if not self._wake.is_set():
            self._wake.set()

    def note(self, note: Note) -> None:
        """Queue one of the gateway's own records (an availability change, an alert event).

        Written to the history and streamed like a reading, under the note's own measurement
        and tags (docs/telemetry.md), so a dashboard can draw device health and an alert
        timeline beside the readings. Past the queue's bound a note is refused like a reading
        that holds no food-safety point.
        """
        self.stats.taken += 1
        if len(self._queue) >= self._cfg.queue_readings:
            self._refuse(note.device)
            return
        self._queue.append(note)
        if not self._wake.is_set():
            self._wake.set()

    def _refuse(self, device: str) -> None:
        self.stats.refused[device] += 1
        self._refused_unsaved[(device, "queue full (the disk is not keeping up)")] += 1
        if not self._refusing:
            self._refusing = True
            why = (
                f"Writes fail: {self.stats.failing}" if self.stats.failing else "The disk is slow."
            )
            text = (
                f"telemetry: {len(self._queue)} readings wait to be written to {self.path}; new "
                f"ones are refused (first: {device}). {why}"
            )
            log.error("%s", text)
            self._alert("critical", "telemetry_refused", text, device)

    def on_written(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(head)`` after each commit, with the newest seq written."""
        self._listeners.append(listener)

    @property
    def queued(self) -> int:
        """Readings waiting to be written."""
        return len(self._queue)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the history (creating it), then start writing and housekeeping."""
        history = await asyncio.to_thread(History, self.path, self._durability)
        self._history = history
        self.stats.head = history.head()
        self.spawn(self._writer(), "writer")
        self.spawn(self._housekeeping(), "housekeeping")

    async def stop(self) -> None:
        """Write what is still queued (one try), then close the history."""
        history, self._history = self._history, None
        if history is None:
            return
        await self._settle()
        self._history = history  # for the last writes
        try:
            while self._queue:
                if not await self._write_once():
                    break
        finally:
            self._history = None
            await asyncio.to_thread(history.close)
        if self._queue:
            log.error(
                "telemetry: %d readings could not be written before the stop (%s)",
                len(self._queue), self.stats.failing,
            )  # fmt: skip

    # --- writing ----------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            await self._clock.sleep(_LINGER_S)
            self._wake.clear()
            while self._queue:
                if not await self._write_once():
                    await self._clock.sleep(self._retry_s)

    async def _write_once(self) -> bool:
        """Write up to one batch from the queue; False if it failed (the batch is queued again)."""
        history = self._history
        if history is None:
            return False
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(_BATCH_ROWS, len(queue)))]
        refused, self._refused_unsaved = self._refused_unsaved, Counter()
        now = self._clock.now().timestamp()
        self._inflight = (batch, refused)
        try:
            rows, last = await self._on_thread(self._append, history, batch, refused, now)
        except StoreError as err:
            self._inflight = None
            self._put_back(batch, refused)
            self._failed(err)
            return False
        self._inflight = None
        if self.stats.failing is not None:
            log.warning("telemetry: writing to %s works again (%d readings waited)",
                        self.path, len(queue) + len(batch))  # fmt: skip
            self._alert("clear", "telemetry_write_failed",
                        f"telemetry is written to {self.path} again", "telemetry")  # fmt: skip
            self.stats.failing = None
        if self._refusing and len(queue) < self._cfg.queue_readings // 2:
            # Over: the queue has room again (not merely one batch's worth, which would alert
            # again at every commit of a disk that is only slow).
            self._refusing = False
            log.warning("telemetry: the queue has room again; %d readings were refused",
                        sum(self.stats.refused.values()))  # fmt: skip
        self.stats.written += len(batch)
        self.stats.rows += rows
        self.stats.head = max(self.stats.head, last)
        for listener in self._listeners:
            listener(self.stats.head)
        return True

    def _put_back(
        self, batch: list[DeviceReadings | Note], refused: Counter[tuple[str, str]]
    ) -> None:
        self._queue.extendleft(reversed(batch))  # back to the head, in order
        self._refused_unsaved.update(refused)

    async def _on_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn`` on a thread, one at a time (the history is one connection).

        Shielded: a cancelled caller (the service stopping) does not stop the thread, which
        may be in the middle of a commit; :meth:`_settle` waits for it before the history is
        used again or closed.
        """
        async with self._lock:
            fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            self._busy = fut
            result = await asyncio.shield(fut)
            self._busy = None
            return result

    async def _settle(self) -> None:
        """Wait for a write a stopped loop left on its thread; requeue its batch if it failed."""
        fut, self._busy = self._busy, None
        inflight, self._inflight = self._inflight, None
        if fut is None:
            return
        try:
            await fut
        except StoreError:
            if inflight is not None:
                self._put_back(*inflight)
        else:
            if inflight is not None:
                self.stats.written += len(inflight[0])

    def _append(
        self,
        history: History,
        batch: Sequence[DeviceReadings | Note],
        refused: Counter[tuple[str, str]],
        now: float,
    ) -> tuple[int, int]:
        """On the writer's thread: (rows written, the last seq). Raises ``StoreError``."""
        rows = self._rows(batch)
        _first, last = history.append(rows, refused, now)
        return len(rows), last

    def _failed(self, err: StoreError) -> None:
        self.stats.write_errors += 1
        if self.stats.failing is not None:
            return
        if isinstance(err, StoreFull):
            what = (
                f"the disk holding {self.path.parent} is full; fix: free space there (readings "
                f"wait in memory meanwhile, up to {self._cfg.queue_readings})"
            )
        else:
            what = f"{err} (readings wait in memory meanwhile, up to {self._cfg.queue_readings})"
        self.stats.failing = what
        log.error("telemetry: cannot write readings: %s", what)
        self._alert("critical", "telemetry_write_failed", f"telemetry is not being kept: {what}",
                    "telemetry")  # fmt: skip

    def _rows(self, batch: Sequence[DeviceReadings | Note]) -> list[Row]:
        rows: list[Row] = []
        known = self._series
        for r in batch:
            if isinstance(r, Note):
                rows += self._note_rows(r)
                continue
            found = known.get(r.device)
            if found is None:
                found = known[r.device] = self._series_of(r.device)
            series, prefix, food_safety = found
            at_ns = epoch_ns(r.at)
            safe, other = split_values(r.values, food_safety)
            if safe:
                text = prefix.fields(safe)
                if text is not None:
                    rows.append(Row(series, at_ns, safety=True, fields=text))
            if other:
                text = prefix.fields(other)
                if text is not None:
                    rows.append(Row(series, at_ns, safety=False, fields=text))
        return rows

    def _note_rows(self, note: Note) -> list[Row]:
        tags = tuple(sorted(note.tags.items()))
        key = (note.device, note.measurement, tags)
        prefix = self._note_series.get(key)
        if prefix is None:
            prefix = self._note_series[key] = SeriesPrefix(note.measurement, note.tags)
        text = prefix.fields(note.values)
        if text is None:
            return []
        at_ns = epoch_ns(note.at)
        return [Row((*key, prefix.text), at_ns, safety=False, fields=text)]

    def _series_of(self, device: str) -> _Series:
        schema = self._schemas.get(device)
        tags: tuple[tuple[str, str], ...]
        if schema is None:  # not in the site file: still kept, under a plain name
            measurement, tags, safety = "device", (("device", device),), frozenset[str]()
        else:
            measurement, tags, safety = schema.measurement, schema.tags, schema.food_safety
        prefix = SeriesPrefix(measurement, dict(tags))
        return (device, measurement, tags, prefix.text), prefix, safety

    # --- housekeeping -----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        last_prune: float | None = None
        while True:
            await self._clock.sleep(_HOUSEKEEPING_S)
            now = self._clock.monotonic()
            prune = last_prune is None or now - last_prune >= _DAY_S
            await self.housekeep(prune=prune)
            if prune:
                last_prune = now

    async def housekeep(self, *, prune: bool) -> None:
        """Check the caps now (and prune by age when ``prune``); the work runs on a thread."""
        history = self._history
        if history is None:
            return
        try:
            report = await self._on_thread(self._housekeep, history, prune)
        except StoreError as err:
            log.warning("telemetry: housekeeping of %s failed: %s", self.path, err)
            return
        cfg = self._cfg
        if report.lost:
            self.stats.pruned_unsent.update(report.lost)
            self._alert("medium", "telemetry_pruned_unsent",
                        f"telemetry: {sum(report.lost.values())} readings went past "
                        f"{cfg.history_days:g} days before the database had them",
                        "telemetry")  # fmt: skip
        if report.dropped:
            self.stats.dropped.update(report.dropped)
            if not self._cap_alerted:
                self._cap_alerted = True
                text = (
                    f"telemetry history is over its cap ({cfg.max_mb:g} MB): the oldest "
                    f"readings that are not food-safety are dropped ({sum(report.dropped.values())}"
                    " so far); fix: raise telemetry.max_mb, or shorten history_days"
                )
                log.warning("%s", text)
                self._alert("medium", "telemetry_cap", text, "telemetry")
        if report.used > cfg.food_safety_cap_mb * 1024 * 1024:
            if not self._safety_cap_alerted:
                self._safety_cap_alerted = True
                text = (
                    f"telemetry history holds {report.used / 1e6:.0f} MB, over "
                    f"food_safety_cap_mb = {cfg.food_safety_cap_mb:g}: food-safety readings are "
                    "kept anyway; fix: let the database catch up, or give the state directory "
                    "more room"
                )
                log.error("%s", text)
                self._alert("critical", "telemetry_food_safety_cap", text, "telemetry")
        else:
            self._safety_cap_alerted = False

    def _housekeep(self, history: History, prune: bool) -> _Report:
        cfg = self._cfg
        now = self._clock.now().timestamp()
        report = _Report()
        if prune:
            before = int((now - cfg.history_days * _DAY_S) * _NS)
            report.lost = history.prune(before, list(self._cursors()))
            reason = f"older than {cfg.history_days:g} days before a sink had it"
            history.note_drops(Counter({(d, reason): n for d, n in report.lost.items()}), now)
        cap = int(cfg.max_mb * 1024 * 1024)
        if history.used_bytes() > cap:
            report.dropped = history.make_room(int(cap * 0.9))
            reason = f"history over max_mb = {cfg.max_mb:g} (oldest dropped first)"
            history.note_drops(Counter({(d, reason): n for d, n in report.dropped.items()}), now)
        report.used = history.used_bytes()
        return report


@dataclass
class _Report:
    lost: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    used: int = 0
