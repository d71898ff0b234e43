"""The poll scheduler of one Modbus connection: every device behind it, at its intervals.

One :class:`Poller` per :class:`~gateway.devices.connector.Connection`, one task each in
the device service's TaskGroup (STYLE.md 8): devices on different connections never wait for
each other, and the devices sharing a connection (units behind one Modbus TCP gateway) take
turns, one request at a time.

Scheduling (the pure helpers, in :mod:`gateway.devices.jobs` with the jobs and counters, are
unit-tested on their own):

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
* Units behind one Modbus TCP-to-RTU gateway share the connection and this one task, and take
  turns in due order: a request to a silent unit costs the others at most its timeout, once
  per backoff period. A silent unit's timeout is never adapted upwards (it gave no answer to
  measure), and a gateway's exception 10 or 11 for a unit is an answer: that unit is offline,
  backed off like a failure, and the connection (the other units) is left alone.

Devices as they are (:mod:`gateway.devices.refusals` says what each exception code means):

* A read refused with exception 2 (or 3) is probed at once, in the same poll
  (:class:`~gateway.devices.sparse.Probe`: split at its holes, then bisected), and the jobs of
  the device are planned again around what was learnt (``PollJob.replan``); the device's
  ``DeviceMap`` is handed to ``learnt`` (the service keeps it in the state directory). Points
  the device lacks are not polled again; the poll that found them out is a full one if every
  other point was read.
* Exception 5 or 6 (acknowledge, busy): the poll stops, its readings so far are reported with
  ``Outcome.BUSY`` (no state change, no failure counted), and the job is asked again after
  0.1 s, doubling up to its interval.
* A slow controller: each device's request timeout follows its measured answers
  (:class:`~gateway.devices.pace.Pace`: twice the slowest recent answer, between the profile's
  ``timeout_s`` and ``timeout_cap_s``), so a controller answering in 300-800 ms is read instead
  of timing out in a loop. A poll that takes longer than its interval skips the slots that went
  by (``next_due``, counted in ``DeviceStats.skipped``): the device is polled at the rate it can
  take, and ``DeviceStats.interval_s`` shows that effective interval (``answer_s`` and
  ``timeout_s`` beside it).

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
import copy
import heapq
import logging
import random
from typing import TYPE_CHECKING, NoReturn, Protocol

from gateway.devices.availability import Outcome
from gateway.devices.jobs import (
    DeviceStats,
    PollJob,
    backoff_due,
    block_decoder,
    first_due,
    next_due,
    snap,
)
from gateway.devices.pace import Pace
from gateway.devices.refusals import Policy, policy, run_probe
from gateway.devices.sparse import DeviceMap, Probe
from gateway.errors import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gateway.clock import Clock
    from gateway.devices.codec import BlockDecoder, CodecError, Value
    from gateway.devices.connector import Connection
    from gateway.devices.plan import ReadBlock
    from gateway.devices.profile import ModbusPoint

    #: Told when a device's map gained something: the device, its map, the points newly
    #: found undefined (maybe none: a hole or a cut was learnt).
    LearntCallback = Callable[[str, DeviceMap, list[ModbusPoint]], None]

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
_BUSY_FIRST_S = 0.1  # the first retry after a busy answer


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
        maps: per device, what it was found to refuse (shared with the caller, who may have
            loaded it from the state directory).
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
        timeout_cap_s: float = 2.0,
        maps: dict[str, DeviceMap] | None = None,
        learnt: LearntCallback | None = None,
        fault: Callable[[str, str], None] | None = None,
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
            timeout_cap_s: the most a slow device's adapted request timeout may grow to.
            maps: what devices were found to refuse, by device id (jobs are planned around
                it now, and it is updated as more is learnt).
            learnt: called when a device's map gains something.
            fault: called with the device and the reason when a device starts reporting its own
                failure (exception 4); again only after a full poll in between.
        """
        self.connection = connection
        self._jobs = list(jobs)
        self._sink = sink
        self._clock = clock
        self._backoff_max_s = backoff_max_s
        self._tick_s = tick_s
        self._rand = rand
        self._learnt = learnt
        self._fault = fault
        self.maps = maps if maps is not None else {}
        # Devices that have answered with data (this run, or an earlier one that left a map):
        # only their refusals teach anything. Before that, a refusal is as likely a wrong unit
        # id or profile, and learning from it would save, and advise, the wrong "fix".
        self._answered = {device for device, m in self.maps.items() if m}
        self.stats = {job.device: DeviceStats() for job in self._jobs}
        self._pace: dict[str, Pace] = {}
        for job in self._jobs:
            pace = self._pace.setdefault(job.device, Pace(job.timeout_s, timeout_cap_s))
            self.stats[job.device].timeout_s = pace.timeout_s
            if self.maps.get(job.device):
                job.replan(self.maps[job.device])
        self._bad_points: set[tuple[str, str]] = set()
        self._faulty: set[str] = set()

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
            gap = start - job.last_start
            stats.jitter_s.append(gap - job.interval)
            # Smoothed, so one late poll does not make a device look slow.
            stats.interval_s = gap if stats.interval_s == 0 else 0.8 * stats.interval_s + 0.2 * gap
        values: dict[str, Value] = {}
        read = 0
        error: DeviceError | None = None
        learnt: list[ModbusPoint] = []
        known = self.maps.get(job.device)
        revision = -1 if known is None else known.revision
        fresh = job.device not in self._answered
        before = copy.deepcopy(known) if fresh else None
        if not job.blocks:
            error = DeviceError(job.device, "the device defines none of these points")
        for block, decoder in zip(job.blocks, job.decoders, strict=True):
            try:
                await self._read_block(job, block, decoder, values, stats, learnt)
            except DeviceRefused as err:
                error = err
                stats.refused += 1
                if policy(err.code) in (Policy.FAULTY, Policy.BUSY, Policy.UNREACHABLE):
                    break  # about the device, not this block: the other reads would fare alike
                continue  # this block's addresses are refused; the others may be fine
            except DeviceError as err:
                error = err  # no answer or no connection: the other reads would fare the same
                break
            read += 1
        now = self._clock.monotonic()
        stats.busy_s += now - start
        error, read = self._settle_map(job, values, (fresh, before, revision), error, read, learnt)
        self._schedule(job, stats, error, read, now, start)
        outcome = self._outcome(job, stats, error, read)
        self._sink.polled(job.device, outcome, "" if error is None else error.detail, values)

    # --- one block ------------------------------------------------------------------------

    async def _read_block(  # noqa: PLR0917 - one poll's state, passed down once
        self,
        job: PollJob,
        block: ReadBlock,
        decoder: BlockDecoder,
        values: dict[str, Value],
        stats: DeviceStats,
        learnt: list[ModbusPoint],
    ) -> None:
        """Read one block into ``values``, learning the device's map if it is refused.

        A block refused with exception 2 (or 3) is probed at once (:class:`Probe`); one
        refused with exception 1 names its points unsupported. Other refusals are raised.
        """
        try:
            words = await self._request(job, block)
        except DeviceRefused as err:
            what = policy(err.code)
            if what is Policy.SPLIT:
                stats.refused += 1
                await self._probe(job, block, values, stats, learnt)
                return
            if what is Policy.UNSUPPORTED:
                # The function is missing, not an address: every point of that table of the
                # device (all of its jobs) is named at once.
                stats.refused += 1
                device_map = self.maps.setdefault(job.device, DeviceMap())
                table = [p for p in self._points(job.device) if p.table is block.table]
                new = device_map.add_undefined(table, err.code)
                learnt += [p for p in table if p.id in new]
                return
            raise
        errors = decoder.decode_into(words, values)
        if errors:
            self._undecodable(job, errors, stats)

    async def _probe(
        self,
        job: PollJob,
        block: ReadBlock,
        values: dict[str, Value],
        stats: DeviceStats,
        learnt: list[ModbusPoint],
    ) -> None:
        device_map = self.maps.setdefault(job.device, DeviceMap())
        probe = Probe(block, job.covered.get(block.table, frozenset()), device_map)
        async def read(part: ReadBlock) -> list[int]:
            stats.split_reads += 1
            return await self._request(job, part)

        try:
            await run_probe(probe, read)
        finally:
            # What was read and learnt before another error stays read and learnt.
            for part, words in probe.read:
                errors = block_decoder(part, job.settings).decode_into(words, values)
                if errors:
                    self._undecodable(job, errors, stats)
            learnt += probe.undefined

    async def _request(self, job: PollJob, block: ReadBlock) -> list[int]:
        """One read, on the device's adapted timeout, timed (real seconds) for the next one."""
        pace = self._pace[job.device]
        clock = self._clock
        sent = clock.monotonic()
        try:
            words = await self.connection.read(
                block.table, block.start, block.count,
                unit=job.unit, device=job.device, timeout_s=pace.timeout_s,
            )  # fmt: skip
        except DeviceTimeout as err:
            pace.timed_out(err.late_s)
            self.stats[job.device].timeout_s = pace.timeout_s
            raise
        except DeviceRefused:
            pace.answered(clock.real_seconds(clock.monotonic() - sent))
            raise
        pace.answered(clock.real_seconds(clock.monotonic() - sent))
        stats = self.stats[job.device]
        stats.timeout_s, stats.answer_s = pace.timeout_s, pace.slowest_s or 0.0
        return words

    # --- after the poll -------------------------------------------------------------------

    def _schedule(  # noqa: PLR0917 - one poll's state, passed down once
        self,
        job: PollJob,
        stats: DeviceStats,
        error: DeviceError | None,
        read: int,
        now: float,
        start: float,
    ) -> None:
        if isinstance(error, DeviceRefused) and policy(error.code) is Policy.BUSY:
            # Asked to come back later: soon, then less soon, never later than the interval,
            # and neither a failure nor a backoff.
            job.busy += 1
            # The exponent is capped: 2.0 ** 1024 is an OverflowError, and a controller can be
            # busy for hours (an oven's self-clean, a firmware update).
            doubling = 2.0 ** min(job.busy - 1, 30)
            delay = min(_BUSY_FIRST_S * doubling, max(job.interval, _BUSY_FIRST_S))
            job.due = snap(now + delay, self._tick_s)
            job.last_start = None
            return
        job.busy = 0
        if error is None or read:
            job.failures = 0
            job.due, skipped = next_due(job.due, job.interval, now)
            stats.skipped += skipped
            job.last_start = start
        elif isinstance(error, DeviceUnavailable):
            retry = snap(now + self._until_retry(), self._tick_s)
            job.due = max(next_due(job.due, job.interval, now)[0], retry)
            job.last_start = None
        else:
            job.failures += 1
            due = backoff_due(now, job.interval, job.failures, self._backoff_max_s)
            job.due = snap(due, self._tick_s)
            job.last_start = None

    def _outcome(
        self, job: PollJob, stats: DeviceStats, error: DeviceError | None, read: int
    ) -> Outcome:
        code = error.code if isinstance(error, DeviceRefused) else None
        what = policy(code) if code is not None else None
        if what is Policy.BUSY:
            stats.busy += 1
            return Outcome.BUSY
        if what is Policy.FAULTY:
            stats.faults += 1
            if job.device not in self._faulty:
                self._faulty.add(job.device)
                log.warning("device %s reports a device failure: %s", job.device, error)
                if self._fault is not None and error is not None:
                    self._fault(job.device, error.detail)
        elif error is None:
            self._faulty.discard(job.device)
        if error is None:
            return Outcome.FULL
        if what is Policy.UNREACHABLE:
            stats.unreachable += 1
            stats.failed += 1
            return Outcome.UNREACHABLE
        if read and what is not Policy.FAULTY:
            stats.partial += 1
            return Outcome.PARTIAL
        stats.failed += 1
        return Outcome.DISCONNECTED if isinstance(error, DeviceUnavailable) else Outcome.FAILED

    @property
    def faulty(self) -> frozenset[str]:
        """Devices whose last polls ended with exception 4 (until a full poll)."""
        return frozenset(self._faulty)

    def _points(self, device: str) -> list[ModbusPoint]:
        return [p for j in self._jobs if j.device == device for p in j.points]

    def _settle_map(  # noqa: PLR0917 - one poll's state, passed down once
        self,
        job: PollJob,
        values: dict[str, Value],
        start_state: tuple[bool, DeviceMap | None, int],
        error: DeviceError | None,
        read: int,
        learnt: list[ModbusPoint],
    ) -> tuple[DeviceError | None, int]:
        """Keep, or forget, what the poll learnt of the device's map; the poll's error and reads.

        ``start_state`` is (had the device never answered, its map then, the map's revision).
        """
        fresh, before, revision = start_state
        if values:
            self._answered.add(job.device)
        elif fresh and self._learnt_something(job.device, revision):
            learnt.clear()
            self._forget(job, before)
            # A busy, faulty or unreachable device says so itself: that is the poll's error.
            # Only refusals of addresses (what would have been learnt) say "check the unit id".
            teaching = error is None or (
                isinstance(error, DeviceRefused)
                and policy(error.code) in (Policy.SPLIT, Policy.UNSUPPORTED)
            )
            return (self._never_answered(job) if teaching else error), 0
        if self._learnt_something(job.device, revision):
            # Learnt something (maybe before another error cut the poll short): plan again.
            if not self.maps[job.device].readable(self._points(job.device)):
                return self._refuses_everything(job), 0
            self._replan(job.device, learnt)
        return error, read

    def _learnt_something(self, device: str, revision: int) -> bool:
        device_map = self.maps.get(device)
        return device_map is not None and device_map.revision != revision

    def _forget(self, job: PollJob, before: DeviceMap | None) -> None:
        """Forget what a poll that read nothing, of a device that never answered, taught."""
        if before is None:
            self.maps.pop(job.device, None)
        else:
            self.maps[job.device] = before
        for j in self._jobs:
            if j.device == job.device:
                j.replan(before or DeviceMap())

    def _never_answered(self, job: PollJob) -> DeviceError:
        if (job.device, "") not in self._bad_points:
            self._bad_points.add((job.device, ""))
            log.warning(
                "device %s refuses every point asked so far: check its unit id and profile "
                "(nothing is learnt of its map until it answers)",
                job.device,
            )
        return DeviceError(
            job.device,
            "refuses every point asked so far (check its unit id and profile); its map is "
            "learnt once it answers",
        )

    def _refuses_everything(self, job: PollJob) -> DeviceError:
        """A device that refused every point: the unit id or the profile is wrong, not the map.

        Nothing is learnt from it (a map saying "nothing" would stop it being read for good,
        across restarts): the map is forgotten and the poll fails with the reason.
        """
        self.maps.pop(job.device, None)
        self._answered.discard(job.device)
        for j in self._jobs:
            if j.device == job.device:
                j.replan(DeviceMap())
        if self._learnt is not None:
            self._learnt(job.device, DeviceMap(), [])  # so the kept file forgets it too
        if (job.device, "") not in self._bad_points:
            self._bad_points.add((job.device, ""))
            log.warning(
                "device %s refuses every point of its profile: check its unit id and profile",
                job.device,
            )
        return DeviceError(job.device, "refuses every point (check its unit id and profile)")

    def _replan(self, device: str, undefined: list[ModbusPoint]) -> None:
        device_map = self.maps[device]
        for job in self._jobs:
            if job.device == device:
                job.replan(device_map)
        if self._learnt is not None:
            self._learnt(device, device_map, undefined)

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
