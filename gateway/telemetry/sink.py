"""A telemetry sink: the history, batch by batch, to a time-series database, with a durable cursor.

The sink reads lines from the history (``gateway.telemetry.history``), writes them through a
:class:`LineWriter` (the InfluxDB adapter in the gateway; the service never imports it), and
moves its cursor (``gateway.telemetry.lanes``) only once a batch is written. So a database
outage, a broker outage or ``kill -9`` loses nothing: the sink goes on from its cursor, and a
batch written twice is the same points again (equal measurement, tags and timestamp).

Batches: up to ``batch_points`` lines. A small live batch waits up to ``flush_s`` for more
(fewer, larger requests at a low rate); a full one, or a backlog, goes at once. With a backlog
the sink alternates a backlog batch and a live batch.

What a failed write does (:class:`~gateway.errors.SinkError`'s kinds):

* ``unavailable``: the same batch again after a capped, jittered backoff (0.5 s doubling to 30 s,
  or the database's ``Retry-After``), for as long as it takes; logged and alerted once per
  outage, and the alert cleared when it is back;
* ``refused`` (a token, a bucket): not retried as if it might pass. Logged and alerted
  (critical) once with the fix; the writer is made again (re-reading the token) and one write
  tried every ``recheck_s`` (5 minutes), so a fixed token or a created bucket is picked up
  without a restart; the readings wait on disk meanwhile;
* ``too_large``, ``rejected``: the batch is halved until the lines at fault are alone; such a
  line is given up: counted per device (``stats.rejected``, the history's ``drops``), logged once
  per device, one alert; the others are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from gateway.errors import SinkError, StoreError
from gateway.lifecycle import Service
from gateway.telemetry.history import HistoryReader, SinkRecord
from gateway.telemetry.lanes import Cursor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from gateway.clock import Clock
    from gateway.telemetry.lanes import Lane

__all__ = ["LineWriter", "Sink", "SinkStats"]

log = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_RECHECK_S = 300.0
_SAVE_STATE_S = 5.0  # the state for `gateway telemetry status` is saved at most this often
_HISTORY_RETRY_S = 5.0  # after the history could not be read or the cursor not saved
_CURSOR_SAVE_S = 1.0  # the cursor is saved at most this often (and at every stop)

State = Literal["starting", "ok", "unavailable", "refused"]


class LineWriter(Protocol):
    """What a sink writes through (``gateway.telemetry.influx.InfluxWriter``); blocking."""

    def write(self, body: str) -> None:
        """Write lines joined by newlines; raise ``SinkError`` when not written."""
        ...

    def close(self) -> None:
        """Let go of connections."""
        ...


@dataclass
class SinkStats:
    """How a sink is doing, as data.

    Attributes:
        state: ``ok``, ``unavailable`` (it may pass), ``refused`` (a person must fix something).
        detail: the last error in words ("" when ok).
        since: wall time (epoch s) of the last state change.
        written: points written (counted once the database took them).
        batches: successful writes.
        errors: failed writes, by kind.
        rejected: lines the database refused and that were given up, per device.
        cursor: where the sink is.
        head: the newest seq in the history, as last told.
        newest_ns: the reading time of the newest reading written (0: none yet).
    """

    state: State = "starting"
    detail: str = ""
    since: float = 0.0
    written: int = 0
    batches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    cursor: Cursor = field(default_factory=Cursor)
    head: int = 0
    newest_ns: int = 0

    @property
    def pending(self) -> int:
        """Readings not written yet (approximately: pruned holes count)."""
        return self.cursor.pending(self.head)

    def lag_s(self, now_s: float) -> float:
        """How far behind the database is, in seconds of readings (0 when nothing waits).

        Args:
            now_s: the wall time now (epoch s), from the caller's clock.
        """
        if self.pending == 0:
            return 0.0
        return max(0.0, now_s - self.newest_ns / 1e9) if self.newest_ns else float("inf")


class Sink(Service):
    """Streams the history to one database (see the module docstring)."""

    def __init__(
        self,
        name: str,
        history: Path,
        make_writer: Callable[[], LineWriter],
        clock: Clock,
        *,
        batch_points: int = 5000,
        flush_s: float = 1.0,
        alert: Callable[[str, str, str, str], None],
        split_after: int | None = None,
        recheck_s: float = _RECHECK_S,
    ) -> None:
        """Prepare; the history is opened on start.

        Args:
            name: the sink's name (its cursor's key): ``influx``.
            history: the history's file (the recorder creates it; start the recorder first).
            make_writer: makes a writer (again after a ``refused``, so a fixed token counts).
            clock: real time, for the waits.
            batch_points: lines per write, at most.
            flush_s: how long a small live batch waits for more.
            alert: tells people ``(level, kind, text, subject)``.
            split_after: pending readings past which the backlog gets a lane of its own
                (default: two batches).
            recheck_s: the pause between tries while the database refuses.
        """
        self.name = f"telemetry-{name}"
        self.sink = name
        self._path = history
        self._make_writer = make_writer
        self._clock = clock
        self._batch = batch_points
        self._flush_s = flush_s
        self._alert = alert
        self._split_after = split_after if split_after is not None else 2 * batch_points
        self._recheck_s = recheck_s
        self._reader: HistoryReader | None = None
        self._writer: LineWriter | None = None
        self._more = asyncio.Event()
        self._full = asyncio.Event()
        self._last_lane: Lane | None = None
        self._saved_at = -_SAVE_STATE_S
        self._logged_rejects: set[str] = set()
        self._devices: list[str] | None = None  # of the batch being written, when needed
        self._range = (0, 0)
        self._cursor_saved: Cursor | None = None
        self._cursor_saved_at = -_CURSOR_SAVE_S
        self.stats = SinkStats()

    @property
    def cursor(self) -> Cursor:
        """Where the sink is (what retention must keep)."""
        return self.stats.cursor

    def notify(self, head: int) -> None:
        """The history now goes up to ``head`` (``Recorder.on_written``)."""
        self.stats.head = max(self.stats.head, head)
        self._more.set()
        if self.stats.head - self.stats.cursor.live >= self._batch:
            self._full.set()

    async def start(self) -> None:
        """Open the history, load the cursor, start streaming."""
        reader = await asyncio.to_thread(HistoryReader, self._path)
        self._reader = reader
        saved = await asyncio.to_thread(reader.cursor, self.sink)
        self.stats.cursor = saved or Cursor()
        self.stats.head = max(self.stats.head, await asyncio.to_thread(reader.head))
        self.stats.since = self._clock.now().timestamp()
        self.spawn(self._run(), "stream")

    async def stop(self) -> None:
        """Save the state, close the writer and the history."""
        reader, self._reader = self._reader, None
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
        if reader is not None:
            self._reader = reader
            # A history that cannot take the cursor or the state now (its disk failing) is no
            # reason to fail the stop: the batches since are written again next time.
            with contextlib.suppress(StoreError):
                await self._save_cursor(force=True)
                await asyncio.to_thread(reader.save_sink, self._record())
            self._reader = None
            await asyncio.to_thread(reader.close)

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self._step()
            except StoreError as err:
                # The history's disk, not the database: nothing is lost (the cursor did not
                # move); the recorder alerts about its disk, this says what the sink saw.
                if not failing:
                    log.warning("telemetry sink %s cannot use the history: %s", self.sink, err)
                failing = True
                await self._clock.sleep(_HISTORY_RETRY_S)
            else:
                failing = False

    async def _step(self) -> None:
        """Write the next batch, or wait for readings."""
        reader = self._reader
        assert reader is not None
        s = self.stats
        # Cleared before the head is read: a notify() while this step runs (during the
        # cursor's save, say) leaves it set, so the wait below cannot sleep through it.
        self._more.clear()
        cursor, take = s.cursor.plan(s.head, self._split_after, self._last_lane)
        if cursor != s.cursor:
            log.info(
                "telemetry sink %s: %d readings behind; the backlog drains beside live readings",
                self.sink, cursor.split - cursor.done,
            )  # fmt: skip
            s.cursor = cursor
        if take is None:
            await self._save_cursor(force=True)  # caught up: say so before waiting
            await self._more.wait()
            return
        small = take.upto - take.after < self._batch
        if take.lane == "live" and not cursor.splitting and small:
            # A small live batch: give it up to flush_s to fill (fewer, larger writes).
            self._full.clear()
            await self._wait(self._full, self._flush_s)
            cursor, take = s.cursor.plan(s.head, self._split_after, self._last_lane)
            if take is None:
                return
        lines, last = await asyncio.to_thread(reader.lines, take.after, take.upto, self._batch)
        through = take.upto if len(lines) < self._batch else last
        if lines:
            self._devices = None
            self._range = (take.after, last)
            await self._deliver(lines, 0)
            s.newest_ns = max(s.newest_ns, int(lines[-1].rsplit(" ", 1)[1]))
        s.cursor = cursor.advance(take, through)
        self._last_lane = take.lane
        await self._save_cursor(force=False)
        await self._save_state(force=False)

    async def _save_cursor(self, *, force: bool) -> None:
        # At most once a second: a save waits for the recorder's commit to let go of the file
        # (18 ms beside back-to-back commits, against 0.2 ms alone: bench/telemetry), which
        # held the sink to half the recorder's rate. After a crash the batches of the last
        # second are written again: the same points, which the database takes as the same.
        now = self._clock.monotonic()
        if not force and now - self._cursor_saved_at < _CURSOR_SAVE_S:
            return
        reader = self._reader
        if reader is not None and self.stats.cursor != self._cursor_saved:
            self._cursor_saved_at = now
            cursor = self.stats.cursor
            await asyncio.to_thread(reader.save_cursor, self.sink, cursor)
            self._cursor_saved = cursor

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)

    async def _deliver(self, lines: Sequence[str], first: int) -> None:
        """Write ``lines`` (the batch's from ``first`` on), as long as it takes.

        On ``too_large`` or ``rejected`` the lines are halved until the bad ones are alone.
        """
        backoff = _BACKOFF_FIRST_S
        while True:
            try:
                writer = self._writer
                if writer is None:
                    writer = self._writer = await asyncio.to_thread(self._make_writer)
                await asyncio.to_thread(writer.write, "\n".join(lines))
            except SinkError as err:
                self.stats.errors[err.kind] += 1
                if err.kind in ("too_large", "rejected"):
                    await self._split(err, lines, first)
                    return
                if err.kind == "refused":
                    await self._enter("refused", err.message)
                    await self._drop_writer()
                    await self._clock.sleep(self._recheck_s)
                    continue
                await self._enter("unavailable", err.message)
                pause = err.retry_after_s if err.retry_after_s is not None else backoff
                await self._clock.sleep(min(_BACKOFF_MAX_S, pause) * random.uniform(0.8, 1.2))  # noqa: S311 -- jitter, not secrets
                backoff = min(_BACKOFF_MAX_S, backoff * 2)
                continue
            self.stats.written += len(lines)
            self.stats.batches += 1
            if self.stats.state != "ok":
                await self._enter("ok", "")
            return

    async def _split(self, err: SinkError, lines: Sequence[str], first: int) -> None:
        if len(lines) > 1:
            half = len(lines) // 2
            await self._deliver(lines[:half], first)
            await self._deliver(lines[half:], first + half)
            return
        device = await self._device_of(first)
        self.stats.rejected[device] += 1
        if device not in self._logged_rejects:
            self._logged_rejects.add(device)
            text = f"telemetry sink {self.sink}: a reading of {device} was refused: {err.message}"
            log.warning("%s; given up (counted per device)", text)
            self._alert("medium", "telemetry_rejected", text, device)
        reader = self._reader
        if reader is not None:
            reason = f"refused by {self.sink} ({err.status})"
            now = self._clock.now().timestamp()
            await asyncio.to_thread(reader.note_drops, Counter({(device, reason): 1}), now)

    async def _device_of(self, index: int) -> str:
        """The device of the batch's line ``index`` (looked up only when a line is refused)."""
        if self._devices is None:
            reader = self._reader
            after, last = self._range
            self._devices = [] if reader is None else await asyncio.to_thread(
                reader.devices_of, after, last
            )
        return self._devices[index] if index < len(self._devices) else "?"

    async def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)

    async def _enter(self, state: State, detail: str) -> None:
        s = self.stats
        if s.state == state and s.detail == detail:
            return
        before = s.state
        s.state, s.detail, s.since = state, detail, self._clock.now().timestamp()
        behind = s.pending
        if before in ("unavailable", "refused") and state != before:
            # What held is over: a sink that works again, or one now failing another way (whose
            # own alert follows).
            if state == "ok":
                log.warning("telemetry sink %s works again; %d readings to catch up", self.sink,
                            behind)  # fmt: skip
            self._alert("clear", f"telemetry_sink_{before}",
                        f"telemetry sink {self.sink} works again ({behind} readings to catch up)"
                        if state == "ok" else f"telemetry sink {self.sink} is {state} now",
                        self.sink)  # fmt: skip
        if state not in ("ok", before):
            level = "critical" if state == "refused" else "medium"
            text = (
                f"telemetry sink {self.sink}: {detail}; readings wait on disk ({behind} so far)"
                + ("" if state == "unavailable" else f"; tried again every {self._recheck_s:g} s")
            )
            log.log(logging.ERROR if state == "refused" else logging.WARNING, "%s", text)
            self._alert(level, f"telemetry_sink_{state}", text, self.sink)
        await self._save_state(force=True)

    async def _save_state(self, *, force: bool) -> None:
        now = self._clock.monotonic()
        if not force and now - self._saved_at < _SAVE_STATE_S:
            return
        self._saved_at = now
        reader = self._reader
        if reader is not None:
            await asyncio.to_thread(reader.save_sink, self._record())

    def _record(self) -> SinkRecord:
        s = self.stats
        return SinkRecord(self.sink, s.state, s.detail, s.since, s.written)

