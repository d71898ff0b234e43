"""Whether the wall clock can be trusted: steps detected, the kernel's NTP state watched.

A Raspberry Pi has no battery-backed clock: it boots with the time it was shut down at (or
1970), and NTP steps the wall clock by hours when it first reaches a server, which in a
restaurant can be mid-service. Nothing in the gateway waits on the wall clock (STYLE.md 20), so
a step moves no fire time or timeout; but every record is stamped with it, and a person reading
a food-safety record or the audit needs to know which stamps to doubt. This module says so:

* :class:`StepDetector` (pure): the wall clock minus the monotonic clock is constant while
  nobody touches the time (NTP slewing moves it by at most 0.5 ms a second); a change of more
  than ``threshold_s`` between two looks is a step, reported with its size.
* :func:`kernel_sync`: the kernel's own verdict (``adjtimex(2)`` with no changes: the
  ``STA_UNSYNC`` flag and the estimated maximum error), which chrony, ntpd and
  systemd-timesyncd all keep up to date. Read-only: no privilege needed.
* :class:`ClockWatch` (a service, ``clock``): looks once a second; on a step, one log line with
  its size, a counter and an alert; on a change of synchronisation, one log line (and an alert
  when it is lost). It keeps what it knows in ``{state.dir}/clock.json`` so that ``gateway
  status`` can say whether the clock is synchronised and since when, and it tells the gateway's
  records whether their stamps are certain (:meth:`ClockWatch.uncertain`).
* :func:`check_start_time`: a wall clock earlier than the newest durable record at start-up
  (the box booted with an old time) is named in one log line and an alert.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.lifecycle import Service

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from gateway.clock import Clock

__all__ = [
    "ClockState",
    "ClockWatch",
    "KernelSync",
    "Step",
    "StepDetector",
    "check_start_time",
    "kernel_sync",
    "newest_mtime",
    "read_state",
]

log = logging.getLogger(__name__)

STEP_THRESHOLD_S = 2.0  # far above NTP's slewing (<= 0.5 ms/s), far below a real step
LOOK_EVERY_S = 1.0
_STA_UNSYNC = 0x0040  # <sys/timex.h>
_TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised


@dataclass(frozen=True, slots=True)
class Step:
    """A jump of the wall clock against the monotonic clock.

    Attributes:
        size_s: how far the wall clock jumped (positive: forward).
        at: the wall time just after the step.
    """

    size_s: float
    at: datetime


class StepDetector:
    """Spots wall-clock steps from (wall, monotonic) pairs taken at intervals. Pure."""

    def __init__(self, threshold_s: float = STEP_THRESHOLD_S) -> None:
        """Report changes of wall minus monotonic larger than ``threshold_s``."""
        if threshold_s <= 0:
            raise ValueError("threshold_s must be positive")
        self._threshold_s = threshold_s
        self._offset: float | None = None

    def observe(self, wall: datetime, mono: float) -> Step | None:
        """Take one look; the step since the previous look, if there was one."""
        offset = wall.timestamp() - mono
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= self._threshold_s:
            return None
        return Step(offset - previous, wall)


@dataclass(frozen=True, slots=True)
class KernelSync:
    """The kernel's view of the system clock.

    Attributes:
        synchronised: whether a time service has the clock synchronised; None where the
            kernel cannot be asked (not Linux).
        max_error_s: the kernel's estimate of the largest error, seconds (None if unknown).
    """

    synchronised: bool | None
    max_error_s: float | None = None


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (Linux, glibc and musl alike).
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


def _adjtimex() -> Callable[[Any], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn: Callable[[Any], int] = libc.adjtimex
    except (OSError, AttributeError):
        return None
    return fn


_ADJTIMEX = _adjtimex()


def kernel_sync() -> KernelSync:
    """Ask the kernel whether the system clock is synchronised (``adjtimex`` reading only)."""
    if _ADJTIMEX is None:
        return KernelSync(None)
    tx = _Timex()  # modes = 0: read, change nothing
    state = _ADJTIMEX(ctypes.byref(tx))
    if state < 0:
        return KernelSync(None)
    synced = state != _TIME_ERROR and not tx.status & _STA_UNSYNC
    return KernelSync(synced, tx.maxerror / 1e6)


@dataclass(frozen=True, slots=True)
class ClockState:
    """What ``clock.json`` in the state directory says (``gateway status`` reads it).

    Attributes:
        synchronised: the kernel's last verdict (None: it could not be asked).
        since: the wall time that verdict was first seen by this gateway run (None: unknown).
        steps: wall-clock steps seen by this run.
        last_step_s: the size of the last one, seconds.
        last_step_at: the wall time just after it.
        written_at: when the file was written.
    """

    synchronised: bool | None
    since: datetime | None
    steps: int
    last_step_s: float | None
    last_step_at: datetime | None
    written_at: datetime

    def as_json(self) -> str:
        """The file's content."""

        def stamp(t: datetime | None) -> str | None:
            return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")

        return json.dumps(
            {
                "synchronised": self.synchronised,
                "since": stamp(self.since),
                "steps": self.steps,
                "last_step_s": self.last_step_s,
                "last_step_at": stamp(self.last_step_at),
                "written_at": stamp(self.written_at),
            },
            indent=2,
        )


def read_state(path: Path) -> ClockState | None:
    """Read ``clock.json``; None when it is missing or unreadable."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None

    def when(key: str) -> datetime | None:
        value = raw.get(key)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    try:
        return ClockState(
            raw.get("synchronised"),
            when("since"),
            int(raw.get("steps", 0)),
            raw.get("last_step_s"),
            when("last_step_at"),
            when("written_at") or datetime.fromtimestamp(0, UTC),
        )
    except (TypeError, ValueError):
        return None


class ClockWatch(Service):
    """Looks at the clocks once a second: steps, synchronisation, and what records should say.

    Attributes:
        behind_records: the clock was found earlier than the newest record at start-up.
        steps: wall-clock steps seen since start.
        last_step: the last one, if any.
        synchronised: the kernel's last verdict (None: it could not be asked).
        since: when that verdict was first seen (None before the first look).
    """

    name = "clock"

    def __init__(
        self,
        clock: Clock,
        state_file: Path,
        alert: Callable[[str, str, str], None],
        *,
        sync: Callable[[], KernelSync] = kernel_sync,
        threshold_s: float = STEP_THRESHOLD_S,
    ) -> None:
        """Watch ``clock``.

        Args:
            clock: the real clock (not the demo's faster kitchen clock).
            state_file: ``{state.dir}/clock.json``.
            alert: called with ``(level, kind, text)`` for people: level ``"medium"``, kind
                ``"clock_step"`` or ``"clock_unsynchronised"``; level ``"clear"`` with kind
                ``"clock_unsynchronised"`` once the clock is synchronised again.
            sync: how to ask the kernel (injectable for tests).
            threshold_s: the smallest step reported.
        """
        self._clock = clock
        self._state_file = state_file
        self._alert = alert
        self._sync = sync
        self._detector = StepDetector(threshold_s)
        self.steps = 0
        self.last_step: Step | None = None
        self.synchronised: bool | None = None
        self.since: datetime | None = None
        self.behind_records = False
        #: Told about each step, after it is logged (the audit log marks its place with it).
        self.on_step: list[Callable[[Step], None]] = []

    def uncertain(self) -> bool:
        """Whether a stamp taken now may be wrong: not synchronised, stepped, or behind.

        A clock that was stepped during this run may have been wrong before the step, and the
        records stamped meanwhile with it; after a step (or a start on a clock earlier than
        the newest record) the gateway keeps saying so until it restarts on a clock that is
        synchronised from the start.
        """
        return self.synchronised is not True or self.steps > 0 or self.behind_records

    async def start(self) -> None:
        """Take the first look (so ``uncertain()`` is meaningful at once), then one a second."""
        self.look()
        self.spawn(self._watch(), "watch")

    async def _watch(self) -> None:
        while True:
            await self._clock.sleep(LOOK_EVERY_S)
            self.look()

    def look(self) -> None:
        """One look at the clocks (the loop's body; public for tests)."""
        now = self._clock.now()
        changed = False
        step = self._detector.observe(now, self._clock.monotonic())
        if step is not None:
            self.steps += 1
            self.last_step = step
            changed = True
            direction = "forward" if step.size_s > 0 else "back"
            text = (
                f"the system clock jumped {direction} by {abs(step.size_s):.0f} s (now "
                f"{now.isoformat(timespec='seconds')}); waits are unaffected, but records "
                "stamped before it may be wrong and are marked time-uncertain"
            )
            log.warning("%s", text)
            self._alert("medium", "clock_step", text)
            for hook in self.on_step:
                hook(step)
        synced = self._sync().synchronised
        if synced != self.synchronised or self.since is None:
            was, self.synchronised, self.since = self.synchronised, synced, now
            changed = True
            self._announce(was, synced)
        if changed:
            self._save(now)

    def _announce(self, was: bool | None, synced: bool | None) -> None:
        if synced is True:
            if was is not None:
                log.info("the system clock is synchronised again")
                self._alert("clear", "clock_unsynchronised", "the system clock is synchronised")
            return
        if synced is None:
            log.info("cannot ask the kernel whether the system clock is synchronised")
            return
        text = (
            "the system clock is not synchronised (no NTP server reached, or none configured): "
            "records are marked time-uncertain; see the README, 'Keeping time'"
        )
        log.warning("%s", text)
        self._alert("medium", "clock_unsynchronised", text)

    def _save(self, now: datetime) -> None:
        last = self.last_step
        state = ClockState(
            self.synchronised,
            self.since,
            self.steps,
            None if last is None else round(last.size_s, 3),
            None if last is None else last.at,
            now,
        )
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        try:
            tmp.write_text(state.as_json())
            tmp.replace(self._state_file)  # whole or not at all, for `gateway status`
        except OSError as err:
            log.warning("cannot write %s: %s", self._state_file, err)


def check_start_time(
    now: datetime, newest_record: datetime | None, alert: Callable[[str, str, str], None]
) -> bool:
    """At start-up: say so when the wall clock is earlier than the newest durable record.

    Returns:
        Whether the clock is behind (the box probably booted with an old time).
    """
    if newest_record is None or now >= newest_record:
        return False
    behind = (newest_record - now).total_seconds()
    text = (
        f"the system clock ({now.isoformat(timespec='seconds')}) is {behind:.0f} s earlier "
        f"than the newest record on disk ({newest_record.isoformat(timespec='seconds')}): it "
        "was probably not set at boot; records are marked time-uncertain until it is"
    )
    log.warning("%s", text)
    alert("medium", "clock_behind_records", text)
    return True


def newest_mtime(*paths: Path) -> datetime | None:
    """The newest modification time of the files that exist among ``paths`` (wall time)."""
    times = []
    for p in paths:
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times), UTC) if times else None
