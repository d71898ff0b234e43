"""The audit log of appliance writes: the lasting history of who changed what on which device.

Controllers keep only their last few error codes (one fryer keeps ten), so this file is the record.
One JSON object per line, appended and never rewritten::

    {"time": "2026-01-01T18:00:00.000000+00:00", "device": "fryer1", "point": "vat1_timer",
     "value": 90, "source": "action:0", "outcome": "written", "detail": "read back 90"}

Choices worth knowing:

* **Whole lines.** Each record is one ``os.write`` of one complete line on a file opened with
  ``O_APPEND`` (and under the lock below), so writers in other processes (the running gateway
  and a ``gateway device write``) never interleave inside a line. A power cut, or ``kill -9`` in
  the middle of a write (Linux may stop a write short at a page boundary when the process is
  killed), can tear the record being written, and only that one: the next writer starts on a
  fresh line, so the torn line is the only unreadable one, and nothing was sent for it (the
  record is written before the write it approves).
* **Flushed per record**: there is no user-space buffer, so a record is in the kernel when
  :meth:`AuditLog.record` returns; ``fsync=True`` also waits for the disk (survives power loss).
* **Private**: the file is created ``0600`` (and tightened to it if found wider): it names who
  changed appliances and when.
* **Bounded**: past ``max_bytes`` the file is renamed to ``audit.jsonl.1`` (``.1`` to ``.2``, and
  so on; ``keep`` old files are kept), so a flood of refused writes cannot fill the disk.
* **Several writers**: threads share a lock; logs in other processes (or other ``AuditLog``
  objects on the same path) take an exclusive ``flock`` on ``audit.jsonl.lock`` around each
  record, so a rotation never races a write or another rotation, and a writer whose file was
  rotated away reopens the path before writing. POSIX only, like the gateway.
* **Fail closed**: a record that cannot be written raises :class:`AuditError`; callers write the
  "approved" record *before* sending, so an unaudited write never reaches a device.
* Values that JSON cannot carry (NaN, infinity, any odd type from a bad request) are written as
  their ``repr`` in a string: a refused request is recorded whatever it contained.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from gateway.errors import AuditError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType

    from gateway.devices.guard import WriteRequest

__all__ = ["AuditError", "AuditLog"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
_MODE = 0o600


def _json_value(value: object) -> object:
    """The value as JSON can carry it without lying about it."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)


class AuditLog:
    """Append-only JSON-lines audit log with size-based rotation; safe across threads.

    Use ``with AuditLog(path) as audit:`` or call :meth:`close`; the file is opened lazily by the
    first record.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        fsync: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        time_uncertain: Callable[[], bool] = lambda: False,
    ) -> None:
        """Prepare the log; nothing is opened until the first record.

        Args:
            path: the current file, e.g. ``{state.dir}/audit.jsonl``.
            max_bytes: rotate before a record would take the file past this size.
            keep: how many rotated files (``path.1`` .. ``path.<keep>``) to keep; 0 keeps none.
            fsync: wait for the disk after every record (survives power loss; slower).
            now: the wall clock for the ``time`` field (timezone-aware UTC).
            time_uncertain: whether that clock may be wrong now (not synchronised, or stepped:
                ``ClockWatch.uncertain``); such records carry ``"time_uncertain": true``.
        """
        if max_bytes < 1 or keep < 0:
            msg = "max_bytes must be positive and keep must not be negative"
            raise ValueError(msg)
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._fsync = fsync
        self._now = now
        self._time_uncertain = time_uncertain
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.records = 0

    def __enter__(self) -> Self:
        """Use as a context manager that closes the file."""
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the file."""
        self.close()

    def close(self) -> None:
        """Close the file (a later record reopens it)."""
        with self._lock:
            self._close_all()

    def record(self, request: WriteRequest, outcome: str, detail: str = "") -> None:
        """Append one record as one whole line, flushed to the kernel before returning.

        Args:
            request: the write asked for (recorded whatever its value's type).
            outcome: ``"refused"``, ``"approved"``, ``"written"``, ``"failed"``, ...
            detail: the refusal reason, the value read back, the device's error.

        Raises:
            AuditError: the line could not be written.
        """
        entry = {
            "time": self._now().astimezone(UTC).isoformat(timespec="microseconds"),
            "device": _json_value(request.device),
            "point": _json_value(request.point),
            "value": _json_value(request.value),
            "source": _json_value(request.source),
            "outcome": outcome,
            "detail": detail,
        }
        self._append(entry)

    def note_clock_step(self, size_s: float) -> None:
        """Record that the wall clock jumped by ``size_s`` seconds, in the records' own order.

        Records are ordered by their place in the file, not by their stamps: every record
        above this one, back to the clock's last synchronisation, may carry a time off by up
        to the step. A reader (a person, a report) sees that here rather than trusting them.

        Raises:
            AuditError: the line could not be written.
        """
        self._append(
            {
                "time": self._now().astimezone(UTC).isoformat(timespec="microseconds"),
                "event": "clock_step",
                "step_s": round(size_s, 3),
                "detail": "the records above may carry a time off by up to this step",
            }
        )

    def _append(self, entry: dict[str, object]) -> None:
        if self._time_uncertain():
            entry["time_uncertain"] = True
        # json escapes newlines inside strings, so the record is exactly one line.
        line = (json.dumps(entry, allow_nan=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._write(line)
            except OSError as err:
                self._close_all()
                raise AuditError(self.path, err.strerror or str(err)) from None
            self.records += 1

    # --- internals (called with the lock held) ---------------------------------------------

    def _write(self, line: bytes) -> None:
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._write_locked(line)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write_locked(self, line: bytes) -> None:
        fd = self._open()
        size = os.fstat(fd).st_size
        if size and size + len(line) > self._max_bytes:
            self._rotate()
            fd = self._open()
        view = memoryview(line)
        while view:
            # A regular file takes the whole line at once; the loop only matters when the
            # disk fills mid-write, where os.write raises on the next round.
            written = os.write(fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(fd)

    def _open(self) -> int:
        if self._fd is not None:
            try:
                same = os.path.samestat(os.fstat(self._fd), self.path.stat())
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            # Another writer rotated the file away from under us: follow the path.
            self._close_file()
        # Read access only serves the torn-line check; every write appends.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _MODE)
        try:
            if os.fstat(fd).st_mode & 0o777 != _MODE:
                os.fchmod(fd, _MODE)
            self._end_torn_line(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _end_torn_line(self, fd: int) -> None:
        """Start on a fresh line if the file ends in a line torn by a power cut."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        if os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")

    def _rotate(self) -> None:
        self._close_file()
        if self._keep == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self._keep}")
        oldest.unlink(missing_ok=True)
        for n in range(self._keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.path.exists():
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))

    def _close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _close_all(self) -> None:
        self._close_file()
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)
