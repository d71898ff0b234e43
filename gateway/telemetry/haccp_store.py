"""The HACCP record on disk: monthly segment files, append-only, and the check that proves them.

The records and their hash chain are made in :mod:`gateway.telemetry.haccp`; here they are
kept. Layout of the record's directory (``[haccp] dir``, default ``{state.dir}/haccp``)::

    haccp-2026-11.jsonl        segments: one record a line, in seq order; a record goes into
    haccp-2026-12.jsonl        the segment of its month (UTC), or the newest one if its time is
                               earlier (a clock set back never reopens an old file)
    anchor.json                what retention retired: per segment, its seq range, times and
                               last hash, and the seq of the ``retired`` record that says so
    haccp.lock                 held (flock) by the one gateway that writes here
    haccp-2026-12.jsonl.torn   bytes of a line torn by a power cut, set aside (if ever)

The chain runs across segments: a segment's first record carries the hash of the previous
segment's last one. **Retention** drops the oldest segment whole once its newest record is
``keep_days`` older than the newest record of the chain (age measured on the records, never
by a clock reading), at most one segment per run: first a ``retired`` record is appended to the
chain and fsynced, then ``anchor.json`` is replaced (write, fsync, rename, fsync the
directory), then the file is deleted. A crash between the steps leaves a segment the anchor
names, deleted at the next open; verification skips it. Verification starts the chain where the
anchor's last entry ends, and insists that every retirement still in the retained chain is
recorded by a ``retired`` record that matches the anchor: removing the oldest segments and
editing the anchor to match would need a record inserted into the chain.

**Durability**: each append is one ``os.write`` per segment of whole lines on an ``O_APPEND``
file; with ``fsync`` (``state.durability = "full"``) it returns only once the disk has them,
otherwise once the kernel has them (they survive a crash of the gateway, not a power cut). A
write that fails is cut back to where it began, so a failed append leaves no partial line.
Retirement always fsyncs. A line torn by a power cut (the last, without its newline) was never
acknowledged; the next open moves it to ``<segment>.torn`` and the service records that it did.

What a chain cannot show alone: records cut off its *end* (the newest ones deleted). ``gateway
haccp verify`` prints the newest seq and hash; a copy of them kept off the box shows it.

``OSError`` becomes :class:`~gateway.errors.StoreError` here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Self

from gateway.errors import StoreError
from gateway.telemetry.haccp import GATEWAY, GENESIS, ChainCheck, Draft, Head, Problem, stamp

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path
    from types import TracebackType

    from gateway.telemetry.haccp import Json, Sealed

__all__ = ["HaccpStore", "Segment", "Verdict", "due_for_retirement", "read_records", "verify"]

ANCHOR = "anchor.json"
LOCK = "haccp.lock"
_SEGMENT = re.compile(r"^haccp-\d{4}-\d{2}\.jsonl$")
_FILE_MODE = 0o640
_DIR_MODE = 0o750
_TAIL = 4096
_MATCH = ("segment", "first_seq", "last_seq", "last_hash")  # an anchor entry and its record


def segment_name(at: datetime) -> str:
    """The segment a record of time ``at`` belongs to."""
    return f"haccp-{at.astimezone(UTC):%Y-%m}.jsonl"


def _segments(directory: Path) -> list[str]:
    try:
        return sorted(p.name for p in directory.iterdir() if _SEGMENT.match(p.name))
    except FileNotFoundError:
        return []


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _error(err: OSError, what: str) -> StoreError:
    if err.errno == errno.ENOSPC:
        return StoreError(f"the disk is full: cannot {what} (fix: free space there; food-safety "
                          "records wait in memory meanwhile)")  # fmt: skip
    return StoreError(f"cannot {what}: {err.strerror or err}")


@dataclass(frozen=True, slots=True)
class Segment:
    """One file of the record: its name, its first and last record."""

    name: str
    first_seq: int
    last_seq: int
    first_at: datetime
    last_at: datetime
    last_hash: str

    def retired(self, at: datetime, keep_days: int) -> Draft:
        """The record that says this segment was retired by age."""
        return Draft("retired", at, {
            "segment": self.name, "first_seq": self.first_seq, "last_seq": self.last_seq,
            "first_at": stamp(self.first_at), "last_at": stamp(self.last_at),
            "records": self.last_seq - self.first_seq + 1, "last_hash": self.last_hash,
            "keep_days": keep_days,
        })  # fmt: skip


def due_for_retirement(
    segments: Iterable[Segment], newest: datetime, keep_days: int
) -> Segment | None:
    """The oldest segment, if all its records are ``keep_days`` older than ``newest``.

    Pure. Age is measured from the newest record, not from a clock reading. The newest segment
    is never retired: the chain continues in it.
    """
    ordered = sorted(segments, key=lambda s: s.first_seq)
    if len(ordered) < 2:
        return None
    oldest = ordered[0]
    return oldest if oldest.last_at < newest - timedelta(days=keep_days) else None


def _anchor(directory: Path) -> list[dict[str, Json]]:
    """The anchor's entries, oldest first; [] when there is none.

    Raises:
        ValueError: it is not an anchor (the callers say so; a person must restore it).
    """
    try:
        data = json.loads((directory / ANCHOR).read_bytes())
    except FileNotFoundError:
        return []
    entries = data.get("retired") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("it has no list of retired segments")
    for e in entries:
        for key in ("first_seq", "last_seq", "recorded_seq"):
            if not isinstance(e.get(key), int) or isinstance(e.get(key), bool):
                raise ValueError(f"an entry's {key} is not an integer")  # noqa: TRY004
        if not isinstance(e.get("segment"), str) or not isinstance(e.get("last_hash"), str):
            raise ValueError("an entry has no segment name or last hash")  # noqa: TRY004
    return entries


def _record_of(line: bytes) -> dict[str, Json] | None:
    """The record on a line if it has what the writer needs (seq, hash, at), else None."""
    try:
        record = json.loads(line)
        ok = isinstance(record, dict) and isinstance(record.get("seq"), int)
        ok = ok and isinstance(record.get("hash"), str)
        if ok:
            datetime.fromisoformat(record["at"])
    except (ValueError, TypeError, KeyError):
        return None
    return record if ok else None


class HaccpStore:
    """The one writer of a record directory (see the module docstring).

    Not thread-safe: one thread at a time (the service's writer) calls it.
    """

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        """Nothing is opened until :meth:`open`."""
        self.directory = directory
        self._fsync = fsync
        self._lock: int | None = None
        self._fd: int | None = None
        self._current: str | None = None
        #: Problems found on open that a person should hear of (an unreadable anchor).
        self.warnings: list[str] = []

    def __enter__(self) -> Self:
        """Open (see :meth:`open`); the head is in :attr:`head`."""
        self.head = self.open()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close."""
        self.close()

    def open(self) -> Head:
        """Take the directory and return the newest record.

        Creates the directory, finishes a retirement a crash cut short, and sets a torn last
        line aside (:attr:`Head.torn` says so).

        Raises:
            StoreError: the directory cannot be used, or another gateway writes in it.
        """
        d = self.directory
        try:
            d.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            lock = os.open(d / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except OSError as err:
            raise _error(err, f"use the HACCP record directory {d}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            msg = (f"another gateway is writing the HACCP record in {d} (it holds {LOCK}); "
                   "fix: stop it, or give this one another [haccp] dir")  # fmt: skip
            raise StoreError(msg) from None
        self._lock = lock
        try:
            self._finish_retirements()
            return self._head()
        except OSError as err:
            self.close()
            raise _error(err, f"read the HACCP record in {d}") from None

    def _finish_retirements(self) -> None:
        try:
            retired = {str(e["segment"]) for e in _anchor(self.directory)}
        except ValueError as err:
            self.warnings.append(f"{self.directory / ANCHOR} cannot be read ({err}): no segment "
                                 "is retired until it is restored")  # fmt: skip
            return
        for name in retired & set(_segments(self.directory)):
            (self.directory / name).unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{name}.torn").unlink()

    def _head(self) -> Head:
        torn, torn_to = 0, ""
        for name in reversed(_segments(self.directory)):
            path = self.directory / name
            data = path.read_bytes()
            if self._current is None:
                self._current = name
                if data and not data.endswith(b"\n"):
                    cut = data.rfind(b"\n") + 1
                    torn, torn_to = len(data) - cut, f"{name}.torn"
                    self._set_aside(data[cut:], self.directory / torn_to)
                    os.truncate(path, cut)
                    data = data[:cut]
            for line in reversed(data.splitlines()):
                record = _record_of(line)
                if record is not None:
                    at = datetime.fromisoformat(str(record.get("at")))
                    clean = record.get("kind") == "gap_start" and record.get("scope") == GATEWAY
                    return Head(int(str(record["seq"])), str(record["hash"]), at, clean, torn,
                                torn_to)  # fmt: skip
        return Head(torn=torn, torn_to=torn_to)

    def _set_aside(self, tail: bytes, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.write(fd, tail + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, records: Sequence[Sealed], *, fsync: bool | None = None) -> int:
        """Write the leading records that go into one segment; return how many were written.

        Call again with the rest. Either all of the returned count are on disk (fsynced when
        the store fsyncs) or none is.

        Raises:
            StoreError: nothing of this call was written (the disk is full, read-only...).
        """
        if not records:
            return 0
        if self._lock is None:
            raise StoreError(f"the HACCP record in {self.directory} is not open")
        target = self._target(records[0])
        run = [records[0]]
        for r in records[1:]:
            if self._target(r) != target:
                break
            run.append(r)
        data = b"".join(r.line for r in run)
        path = self.directory / target
        try:
            fd = self._open_segment(target)
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync if fsync is None else fsync:
                    os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # no partial line stays behind
                raise
        except OSError as err:
            raise _error(err, f"write the HACCP record {path}") from None
        return len(run)

    def _target(self, record: Sealed) -> str:
        name = segment_name(record.at)
        current = self._current
        return name if current is None or name > current else current

    def _open_segment(self, name: str) -> int:
        if self._fd is not None and name == self._current:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.directory / name
        new = not path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(path, flags, _FILE_MODE)
        self._current = name
        if new and self._fsync:
            _fsync_dir(self.directory)
        return self._fd

    def segments(self) -> list[Segment]:
        """The segments from the oldest, up to (not including) the first that cannot be read.

        Retention works from the oldest only, so one it cannot read stops it there.
        """
        out: list[Segment] = []
        for name in _segments(self.directory):
            try:
                first, last = _first_and_last(self.directory / name)
            except OSError:
                break
            if first is None or last is None:
                break
            first_at = datetime.fromisoformat(str(first["at"]))
            last_at = datetime.fromisoformat(str(last["at"]))
            out.append(Segment(name, int(str(first["seq"])), int(str(last["seq"])), first_at,
                               last_at, str(last["hash"])))  # fmt: skip
        return out

    def retire(self, segment: Segment, record: Sealed) -> None:
        """Retire ``segment``: ``record`` (its ``retired`` record) fsynced, then the rest.

        Raises:
            StoreError: a step failed; the steps before it stand (see the module docstring).
        """
        self.append([record], fsync=True)
        self.finish_retirement(segment, record)

    def finish_retirement(self, segment: Segment, record: Sealed) -> None:
        """After ``record`` is on disk: the anchor, then the file goes.

        A failure leaves the segment in place and its ``retired`` record in the chain (a
        retirement announced, not carried out): retention tries again on its next run.

        Raises:
            StoreError: the anchor could not be read or written, or the file not deleted.
        """
        try:
            entries = _anchor(self.directory)
        except ValueError as err:
            raise StoreError(f"{self.directory / ANCHOR} cannot be read ({err}): {segment.name} "
                             "is kept until it is restored") from None  # fmt: skip
        entry: dict[str, Json] = {
            "segment": segment.name, "first_seq": segment.first_seq,
            "last_seq": segment.last_seq, "first_at": stamp(segment.first_at),
            "last_at": stamp(segment.last_at), "last_hash": segment.last_hash,
            "recorded_seq": record.seq, "retired_at": stamp(record.at),
        }  # fmt: skip
        body = {"v": 1, "retired": [*entries, entry]}
        tmp = self.directory / f"{ANCHOR}.tmp"
        try:
            with tmp.open("wb") as f:
                f.write(json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.directory / ANCHOR)
            _fsync_dir(self.directory)
            (self.directory / segment.name).unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{segment.name}.torn").unlink()
            _fsync_dir(self.directory)
        except OSError as err:
            raise _error(err, f"retire {segment.name}") from None

    def close(self) -> None:
        """Let go of the files and the lock."""
        for fd in (self._fd, self._lock):
            if fd is not None:
                os.close(fd)  # closing the lock's descriptor releases the flock
        self._fd = self._lock = None
        self._current = None


def _first_and_last(path: Path) -> tuple[dict[str, Json] | None, dict[str, Json] | None]:
    with path.open("rb") as f:
        first = _record_of(f.readline())
        size = f.seek(0, os.SEEK_END)
        back = _TAIL
        while True:
            start = max(0, size - back)
            f.seek(start)
            lines = f.read().rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return first, _record_of(lines[-1])
            back *= 4


# --- verification and reading ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`verify` found.

    Attributes:
        records: records checked and found sound (before the first bad one, if any).
        segments: the segment files checked, oldest first.
        retired: records retired by age (before the first retained one).
        head_seq: the newest sound record's seq.
        head_hash: its hash: keep a copy off the box to show later that nothing was cut off.
        file: where the first bad record is (a segment, or the anchor); None when all is sound.
        line: its line in that file (1-based), None for the anchor.
        problem: what is wrong with it.
    """

    records: int
    segments: tuple[str, ...]
    retired: int
    head_seq: int
    head_hash: str
    file: str | None = None
    line: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the whole record is sound."""
        return self.problem is None


def verify(directory: Path) -> Verdict:
    """Check every retained record, in order, and the anchor against the chain.

    Raises:
        StoreError: a file could not be read.
    """
    try:
        return _verify(directory)
    except OSError as err:
        raise _error(err, f"read the HACCP record in {directory}") from None


def _verify(directory: Path) -> Verdict:
    try:
        entries = _anchor(directory)
    except ValueError as err:
        return Verdict(0, (), 0, 0, GENESIS, ANCHOR, None, f"the anchor cannot be read: {err}")
    retired_names = {str(e["segment"]) for e in entries}
    names = tuple(n for n in _segments(directory) if n not in retired_names)
    base_seq, base_hash = 0, GENESIS
    for n, e in enumerate(entries):
        expected = 1 if n == 0 else int(str(entries[n - 1]["last_seq"])) + 1
        if e["first_seq"] != expected:
            what = f"entry {n + 1} ({e['segment']}) starts at seq {e['first_seq']}, not {expected}"
            return Verdict(0, names, 0, 0, GENESIS, ANCHOR, None, what)
        base_seq, base_hash = int(str(e["last_seq"])), str(e["last_hash"])
    check = ChainCheck(base_seq, base_hash)
    retirements: dict[int, dict[str, Json]] = {}
    where: tuple[str, int | None, str] | None = _walk(directory, names, check, retirements)
    if where is None:
        where = _anchored(entries, base_seq, retirements)
    if where is None:
        return Verdict(check.checked, names, base_seq, check.seq, check.prev)
    file, line, what = where
    return Verdict(check.checked, names, base_seq, check.seq, check.prev, file, line, what)


def _walk(
    directory: Path,
    names: Sequence[str],
    check: ChainCheck,
    retirements: dict[int, dict[str, Json]],
) -> tuple[str, int, str] | None:
    """Feed every line to ``check``; where the first bad one is, or None."""
    for name in names:
        lines = (directory / name).read_bytes().split(b"\n")
        torn = lines.pop() != b""  # what follows the last newline: nothing, unless torn
        for number, line in enumerate(lines, 1):
            record = check.feed(line)
            if isinstance(record, Problem):
                return name, number, record.what
            if record["kind"] == "retired":
                retirements[int(str(record["seq"]))] = record
        if torn:
            what = ("a torn last line (a write cut short by a power loss or a crash): the "
                    "gateway sets it aside when it starts")  # fmt: skip
            return name, len(lines) + 1, what
    return None


def _anchored(
    entries: Sequence[dict[str, Json]], base_seq: int, retirements: dict[int, dict[str, Json]]
) -> tuple[str, int | None, str] | None:
    """Whether each retirement still in the chain is recorded there as the anchor says."""
    for e in entries:
        seq = int(str(e["recorded_seq"]))
        if seq <= base_seq:
            continue  # the record that said so was retired since
        found = retirements.get(seq)
        if found is None or any(found.get(k) != e.get(k) for k in _MATCH):
            return ANCHOR, None, (f"{e['segment']} is said to be retired by record {seq}, but "
                                  "the chain has no such retired record: records were removed "
                                  "and the anchor edited to hide it")  # fmt: skip
    return None


def read_records(directory: Path) -> Iterator[dict[str, Json]]:
    """Every retained record in order, as stored (for reports; :func:`verify` judges them).

    Raises:
        StoreError: a file could not be read.
    """
    try:
        retired = {str(e["segment"]) for e in _anchor(directory)}
    except ValueError:
        retired = set()
    for name in _segments(directory):
        if name in retired:
            continue
        try:
            data = (directory / name).read_bytes()
        except OSError as err:
            raise _error(err, f"read {directory / name}") from None
        for line in data.splitlines():
            record = _record_of(line)
            if record is not None:
                yield record
