"""The poll scheduler of one Modbus connection: every device behind it, at its intervals.

One :class:`Poller` per :class:`~gateway.devices.connector.Connection`, one task each in
the device service's TaskGroup (STYLE.md 8): devices on different connections never wait for
each other, and the devices sharing a connection (units behind one Modbus TCP gateway) take
turns, one request at a time.

Scheduling (the pure helpers below are unit-tested on their own):

* A :class:`PollJob` is one device's points that share an interval, planned into read blocks
  (``plan_reads``). Each job starts at a random phase inside its first interval, so devices
  configured alike are spread over the interval, and then runs at a fixed rate: a late poll
  does not push the later ones back. When a poll is so late that whole slots went by, they are
  skipped, never bunched up (``next_due``).
* Phases are put on a grid of ``tick_s`` shared by every poller (``snap``), so the devices that
  share a slot are woken in the same loop iteration. Waking once per slot instead of once per
  device is most of the CPU at low rates: 200 devices at 1 s took ~9 % of a core with phases at
  random, ~4 % on a 50 ms grid and ~3.5 % on a 100 ms grid (bench/RESULTS.md, bench/polling).
  Intervals that are multiples of the tick keep every poll on the grid.
* The task sleeps until the earliest job is due; it never polls in a loop. Sleeps under 1 ms are
  not taken (uvloop turns them into a busy loop, MEASURED.md): the job runs at once instead.
* A job whose poll failed although connected (no answer, every read refused) is backed off:
  ``interval * 2^failures``, capped, so a dead device behind a shared connection costs one
  timeout per backoff period instead of one per interval (Home Assistant #51326). A job that
  failed because the connection is down waits for the connection's next connect attempt.
* Poll-interval jitter, the time between two starts of a job minus its interval, is measured for
  consecutive polls that stayed on schedule (a backoff is deliberate, not jitter).

Time (STYLE.md 20): every schedule decision counts the injected clock's ``monotonic()`` seconds
and waits with its ``sleep()``, so a step of the wall clock moves no poll, and tests run the
poller on virtual time. Two waits stay on the event loop's own clock (``loop.time()``, which is
monotonic too), on purpose:

* A request's timeout (``timeout_s``, enforced by the connection with
  :class:`~gateway.devices.deadline.Deadlines`) bounds socket I/O, which happens in real time
  whatever the kitchen clock says; it is a measured hot path (one loop timer per connection,
  about 4 us a request cheaper than ``asyncio.timeout`` under uvloop), and routing it through
  the injected clock would put a Python-level sleep and a wake-up on every request.
* The connection's ``retry_at`` (its next connect attempt) is loop time, because the reconnect
  backoff lives inside the connection (STYLE.md 6). The poller turns it into a wait of loop
  seconds from now and schedules that wait on its own clock, so the two clocks never meet in
  one comparison.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, Protocol

from gateway.devices.availability import Outcome
from gateway.devices.codec import BlockDecoder
from gateway.errors import DeviceError, DeviceRefused, DeviceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gateway.clock import Clock
    from gateway.devices.codec import CodecError, Value
    from gateway.devices.connector import Connection
    from gateway.devices.plan import ReadBlock
    from gateway.devices.profile import ModbusSettings

__all__ = [
    "DeviceStats",
    "PollJob",
    "PollSink",
    "Poller",
    "backoff_due",
    "first_due",
    "next_due",
    "snap",
]

log = logging.getLogger(__name__)

_MIN_SLEEP_S = 0.001
_SAMPLES = 512  # jitter samples kept per device: enough for a p99, bounded memory


def snap(t: float, tick_s: float) -> float:
    """``t`` rounded up to the shared grid of ``tick_s`` (unchanged when ``tick_s`` is 0)."""
    # A millionth of a tick of tolerance: float noise must not push a time into the next slot.
    return math.ceil(t / tick_s - 1e-6) * tick_s if tick_s > 0 else t


def first_due(now: float, interval: float, rand: Callable[[], float], tick_s: float = 0.0) -> float:
    """When a job polls first: a random phase inside its first interval, on the tick grid."""
    return snap(now + rand() * interval, tick_s)


def next_due(due: float, interval: float, now: float) -> tuple[float, int]:
    """The next slot on a job's grid after a poll that was due at ``due`` and ended at ``now``.

    Returns:
        ``(next due time, slots skipped)``: the first slot after ``now``; slots that went by
        while the poll ran late are skipped rather than run back to back.
    """
    nxt = due + interval
    if nxt > now:
        return nxt, 0
    skipped = int((now - nxt) // interval) + 1
    return nxt + skipped * interval, skipped


def backoff_due(now: float, interval: float, failures: int, cap_s: float) -> float:
    """When a job that failed ``failures`` times in a row polls again.

    The delay doubles from ``2 * interval`` and is capped at ``cap_s`` (never below
    ``interval``: a slow job is not polled faster because it fails).
    """
    delay = interval * 2.0 ** min(failures, 30)
    return now + min(delay, max(cap_s, interval))


@dataclass(slots=True)
class PollJob:
    """One device's points that share an interval, and where the job stands.

    Attributes:
        device: the device id.
        unit: its Modbus unit id.
        interval: seconds between polls.
        timeout_s: how long each read may take.
        blocks: the reads of one poll.
        settings: the profile's Modbus settings (byte and word order for decoding).
        due: the clock's monotonic time of the next poll.
        failures: polls in a row that failed although connected.
        last_start: start of the previous poll if it stayed on schedule, else None.
    """

    device: str
    unit: int
    interval: float
    timeout_s: float
    blocks: tuple[ReadBlock, ...]
    settings: ModbusSettings
    due: float = 0.0
    failures: int = 0
    last_start: float | None = None
    #: Per block, its decoder: where each point sits in the block's words and how it decodes,
    #: compiled once here rather than worked out on every poll.
    decoders: tuple[BlockDecoder, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Compile each block's decoder."""
        for block in self.blocks:
            for point in block.points:
                block.words_for(point, [0] * block.count)  # raises if the plan is inconsistent
        self.decoders = tuple(
            BlockDecoder([(p, p.address - b.start) for p in b.points], b.count, self.settings)
            for b in self.blocks
        )


@dataclass(slots=True)
class DeviceStats:
    """Poll counters of one device, exposed as data.

    Attributes:
        polls: polls made.
        failed: polls that read nothing.
        partial: polls that read some blocks but not all.
        skipped: slots skipped because a poll ran more than an interval late.
        decode_errors: points whose words could not be decoded.
        busy_s: time the device's polls held its connection, in total.
        jitter_s: recent poll-interval jitter samples (seconds, late positive).
    """

    polls: int = 0
    failed: int = 0
    partial: int = 0
    skipped: int = 0
    decode_errors: int = 0
    busy_s: float = 0.0
    jitter_s: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))


class PollSink(Protocol):
    """Where a poller reports each poll (the device service)."""

    def polled(self, device: str, outcome: Outcome, detail: str, values: dict[str, Value]) -> None:
        """One poll of ``device`` ended: how it went, and what was read (maybe nothing)."""
        ...


class Poller:
    """Polls every job of one connection, one request at a time.

    Attributes:
        connection: the connection polled.
        stats: per-device counters.
    """

    def __init__(
        self,
        connection: Connection,
        jobs: Sequence[PollJob],
        sink: PollSink,
        clock: Clock,
        *,
        backoff_max_s: float = 15.0,
        tick_s: float = 0.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """Prepare; nothing is polled before :meth:`run`.

        Args:
            connection: the connection every job's device sits behind.
            jobs: the jobs (at least one).
            sink: told about every poll.
            clock: the monotonic time every schedule decision counts, and the sleeps.
            backoff_max_s: cap of the delay after failed polls.
            tick_s: the grid that start phases (and restarts after a failure) are put on,
                shared by every poller of the loop; 0 for none.
            rand: floats in [0, 1) for the start phases (injectable for tests).
        """
        self.connection = connection
        self._jobs = list(jobs)
        self._sink = sink
        self._clock = clock
        self._backoff_max_s = backoff_max_s
        self._tick_s = tick_s
        self._rand = rand
        self.stats = {job.device: DeviceStats() for job in self._jobs}
        self._bad_points: set[tuple[str, str]] = set()

    async def run(self) -> NoReturn:
        """Poll until cancelled."""
        clock = self._clock
        now = clock.monotonic()
        heap: list[tuple[float, int, PollJob]] = []
        for i, job in enumerate(self._jobs):
            job.due = first_due(now, job.interval, self._rand, self._tick_s)
            heap.append((job.due, i, job))
        heapq.heapify(heap)
        while True:
            delay = heap[0][0] - clock.monotonic()
            if delay > _MIN_SLEEP_S:
                await clock.sleep(delay)
            _, i, job = heapq.heappop(heap)  # only this task touches the heap
            await self.poll(job, clock.monotonic())
            heapq.heappush(heap, (job.due, i, job))

    async def poll(self, job: PollJob, start: float) -> None:
        """Poll ``job`` once, report it, and schedule its next poll (``job.due``).

        Args:
            job: the job to poll.
            start: the clock's monotonic time the poll starts at.
        """
        stats = self.stats[job.device]
        stats.polls += 1
        if job.last_start is not None:
            stats.jitter_s.append(start - job.last_start - job.interval)
        values: dict[str, Value] = {}
        read = 0
        error: DeviceError | None = None
        for block, decoder in zip(job.blocks, job.decoders, strict=True):
            try:
                words = await self.connection.read(
                    block.table, block.start, block.count,
                    unit=job.unit, device=job.device, timeout_s=job.timeout_s,
                )  # fmt: skip
            except DeviceRefused as err:
                error = err  # this block's addresses are refused; the others may be fine
                continue
            except DeviceError as err:
                error = err  # no answer or no connection: the other reads would fare the same
                break
            read += 1
            errors = decoder.decode_into(words, values)
            if errors:
                self._undecodable(job, errors, stats)
        now = self._clock.monotonic()
        stats.busy_s += now - start
        if error is None or read:
            outcome = Outcome.FULL if error is None else Outcome.PARTIAL
            stats.partial += outcome is Outcome.PARTIAL
            job.failures = 0
            job.due, skipped = next_due(job.due, job.interval, now)
            stats.skipped += skipped
            job.last_start = start
        elif isinstance(error, DeviceUnavailable):
            outcome = Outcome.DISCONNECTED
            stats.failed += 1
            retry = snap(now + self._until_retry(), self._tick_s)
            job.due = max(next_due(job.due, job.interval, now)[0], retry)
            job.last_start = None
        else:
            outcome = Outcome.FAILED
            stats.failed += 1
            job.failures += 1
            due = backoff_due(now, job.interval, job.failures, self._backoff_max_s)
            job.due = snap(due, self._tick_s)
            job.last_start = None
        self._sink.polled(job.device, outcome, "" if error is None else error.detail, values)

    def _until_retry(self) -> float:
        """Seconds of this poller's clock until the connection's next connect attempt."""
        retry_at = self.connection.retry_at
        if retry_at <= 0:
            return 0.0  # connected, or a lost connection that may reconnect at once
        # retry_at is loop time (the backoff lives in the connection): a wait of real seconds,
        # turned into seconds of the clock (a ScaledClock's kitchen seconds run faster).
        real_wait = max(retry_at - asyncio.get_running_loop().time(), 0.0)
        return real_wait / self._clock.real_seconds(1.0)

    def _undecodable(self, job: PollJob, errors: Sequence[CodecError], stats: DeviceStats) -> None:
        # One undecodable point does not cost the others their reading (the decoder skips
        # it); it is counted every time and logged once.
        stats.decode_errors += len(errors)
        for err in errors:
            if (job.device, err.point) not in self._bad_points:
                self._bad_points.add((job.device, err.point))
                log.warning("cannot decode %s.%s: %s", job.device, err.point, err)
