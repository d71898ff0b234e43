"""Where the alerts live on disk: the active set and the history, two small files of their own.

Two files in the state directory:

* ``alerts.jsonl``, the history: one :class:`~gateway.telemetry.alerts.AlertEvent` per line, in
  sequence order, appended (one ``write`` per batch, fsynced when ``state.durability`` is
  ``full``) *before* anyone hears of the events. It is the durable record: past
  ``max_history_bytes`` it is renamed to ``alerts.jsonl.1`` (the one before is dropped).
* ``alerts.json``, the snapshot: the active alerts, the recently cleared ones and the sequence
  number of the last event in it, replaced whole (written to ``alerts.json.tmp``, fsynced,
  renamed) after each append.

Loading reads the snapshot, then replays the history's events after its sequence number: a crash
between the append and the snapshot loses nothing. A torn last line of the history (a crash in
the middle of an append, before anyone was told) is dropped with a warning. A snapshot that
cannot be read raises :class:`AlertStateCorrupt`; the gateway then sets it aside and rebuilds
the state from the whole history (``rebuild``).

Why files and not SQLite: the active set is tens of alerts and changes a few times an hour, so
rewriting it whole is cheap; a file replaced by ``rename`` is always whole for a reader, so
``gateway alerts list`` reads it beside a running gateway without locks or write access; both
files can be read (and mended) with a text editor; and nothing else in the gateway's SQLite
files has to know about alerts.

Reading never writes: :meth:`AlertStore.load` and :meth:`AlertStore.history` are what the command
line uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime  # noqa: TC003 - pydantic reads the snapshot's annotations
from typing import TYPE_CHECKING, Literal, Self

from pydantic import TypeAdapter, ValidationError

from gateway.errors import StoreError
from gateway.telemetry.alerts import AlertEvent, AlertRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

__all__ = ["AlertStateCorrupt", "AlertStore", "Loaded", "Snapshot", "snapshot_of"]

log = logging.getLogger(__name__)

STATE_FILE = "alerts.json"
HISTORY_FILE = "alerts.jsonl"
DEFAULT_MAX_HISTORY = 5 * 1024 * 1024  # some 10,000 events: months of a kitchen's alerts
_FORMAT: Literal[1] = 1


class AlertStateCorrupt(StoreError):
    """The alert state file cannot be read (damaged, or edited by hand).

    Attributes:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        """Keep the path and the reason."""
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path} is not a readable alert state ({reason}); the gateway sets it aside and "
            f"rebuilds the active alerts from {path.with_name(HISTORY_FILE)} when it next starts"
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of the book after the event numbered ``seq``.

    Attributes:
        format: the file's layout version.
        seq: the last event included.
        saved_at: when it was written (wall time, for people).
        active: the active alerts.
        cleared: the recently cleared alerts, oldest first.
    """

    format: Literal[1]
    seq: int
    saved_at: datetime
    active: list[AlertRecord]
    cleared: list[AlertRecord]


@dataclass(frozen=True, slots=True)
class Loaded:
    """What was read at start.

    Attributes:
        snapshot: the snapshot (None: there was none, or it is being rebuilt).
        tail: events of the history after the snapshot, to replay, in order.
        dropped: lines of the history that could not be read (a torn last one, damage).
    """

    snapshot: Snapshot | None
    tail: list[AlertEvent] = field(default_factory=list)
    dropped: int = 0


_EVENT: TypeAdapter[AlertEvent] = TypeAdapter(AlertEvent)
_SNAPSHOT: TypeAdapter[Snapshot] = TypeAdapter(Snapshot)


class AlertStore:
    """The alert files of one state directory (use as a context manager: it closes the history)."""

    name = "alert-store"

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool,
        max_history_bytes: int = DEFAULT_MAX_HISTORY,
        time_uncertain: Callable[[], bool] = lambda: False,
    ) -> None:
        """Prepare; nothing is read or written yet.

        Args:
            directory: the state directory.
            fsync: wait for the disk after each write (``state.durability = "full"``).
            max_history_bytes: rotate the history before an append takes it past this.
            time_uncertain: whether the wall clock may be wrong now; events written meanwhile
                say so in the history.
        """
        self.path = directory / STATE_FILE
        self.history_path = directory / HISTORY_FILE
        self._fsync = fsync
        self._max_history = max_history_bytes
        self._time_uncertain = time_uncertain
        self._fd: int | None = None

    def __enter__(self) -> Self:
        """Nothing to do: files are opened on use."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the history."""
        self.close()

    def close(self) -> None:
        """Close the history (a later write opens it again)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # --- reading ------------------------------------------------------------------------

    def load(self, *, rebuild: bool = False) -> Loaded:
        """Read the snapshot and the history's events after it. Never writes.

        Args:
            rebuild: ignore the snapshot: every event of the history (``.1`` first) is to be
                replayed from nothing.

        Raises:
            AlertStateCorrupt: the snapshot cannot be read (not with ``rebuild``).
            StoreError: a file cannot be read at all (permissions, I/O).
        """
        snapshot = None if rebuild else self._read_snapshot()
        after = 0 if snapshot is None else snapshot.seq
        paths = [self._rotated, self.history_path] if snapshot is None else [self.history_path]
        tail: list[AlertEvent] = []
        dropped = 0
        for path in paths:
            events, bad = self._read_events(path, after)
            tail += events
            dropped += bad
        tail.sort(key=lambda e: e.seq)
        return Loaded(snapshot, tail, dropped)

    def history(self) -> tuple[list[AlertEvent], int]:
        """Every event the history still has (``.1`` first), and how many lines were unreadable."""
        events: list[AlertEvent] = []
        dropped = 0
        for path in (self._rotated, self.history_path):
            found, bad = self._read_events(path, 0)
            events += found
            dropped += bad
        events.sort(key=lambda e: e.seq)
        return events, dropped

    @property
    def _rotated(self) -> Path:
        return self.history_path.with_name(HISTORY_FILE + ".1")

    def _read_snapshot(self) -> Snapshot | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err}") from err
        try:
            snap = _SNAPSHOT.validate_json(data)
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "the file"
            raise AlertStateCorrupt(self.path, f"{where}: {first['msg']}") from err
        naive = next((r.alert_id for r in [*snap.active, *snap.cleared] if not _aware(r)), None)
        if naive is not None or snap.saved_at.tzinfo is None:
            raise AlertStateCorrupt(self.path, f"a time without an offset ({naive or 'saved_at'})")
        return snap

    def _read_events(self, path: Path, after: int) -> tuple[list[AlertEvent], int]:
        """Events numbered above ``after`` in ``path``, and the lines that could not be read."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return [], 0
        except OSError as err:
            raise StoreError(f"cannot read {path}: {err}") from err
        lines = data.split(b"\n")
        torn = lines.pop()  # after the last newline: empty, or a line a crash cut short
        events: list[AlertEvent] = []
        bad = 1 if torn.strip() else 0
        # From the end: at start only the few events after the snapshot are wanted.
        for line in reversed(lines):
            if not line.strip():
                continue
            try:
                seq = json.loads(line)["seq"]
                if not isinstance(seq, int):
                    raise TypeError(seq)  # noqa: TRY301 - one path for every unreadable line
                if seq <= after:
                    break
                ev = _EVENT.validate_json(line)
            except (ValueError, KeyError, TypeError, ValidationError):
                bad += 1
                continue
            if _aware(ev.alert) and ev.at.tzinfo is not None:
                events.append(ev)
            else:
                bad += 1
        events.reverse()
        return events, bad

    # --- writing ------------------------------------------------------------------------

    def repair(self) -> bool:
        """Cut a torn last line off the history (the service's start, before it appends).

        Returns:
            Whether there was one.
        """
        try:
            with self.history_path.open("rb+") as f:
                data = f.read()
                if not data or data.endswith(b"\n"):
                    return False
                f.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise StoreError(f"cannot repair {self.history_path}: {err}") from err
        log.warning("%s: a torn last line (a crash while writing it) was cut off",
                    self.history_path)  # fmt: skip
        return True

    def open_history(self) -> None:
        """Open the history for appending now, so a file that cannot be written says so early.

        Raises:
            StoreError: it cannot be opened for writing.
        """
        try:
            self._open(0)
        except OSError as err:
            raise StoreError(f"cannot write {self.history_path}: {err}") from err

    def set_aside(self) -> Path:
        """Move an unreadable snapshot out of the way; returns where it went."""
        aside = self.path.with_name(STATE_FILE + ".corrupt")
        try:
            self.path.replace(aside)
        except OSError as err:
            raise StoreError(f"cannot move {self.path} aside: {err}") from err
        return aside

    def write(self, events: Sequence[AlertEvent], snapshot: Snapshot) -> None:
        """Append ``events`` to the history, then replace the snapshot with ``snapshot``.

        Raises:
            StoreError: either could not be written (the caller must not announce them).
        """
        if events:
            extra = b',"time_uncertain":true}' if self._time_uncertain() else b"}"
            text = b"".join(_EVENT.dump_json(e)[:-1] + extra + b"\n" for e in events)
            try:
                fd = self._open(len(text))
                _write_all(fd, text)
                if self._fsync:
                    os.fsync(fd)
            except OSError as err:
                raise StoreError(f"cannot write {self.history_path}: {err}") from err
        tmp = self.path.with_name(STATE_FILE + ".tmp")
        try:
            with tmp.open("wb") as f:
                f.write(_SNAPSHOT.dump_json(snapshot, indent=1) + b"\n")
                if self._fsync:
                    f.flush()
                    os.fsync(f.fileno())
            tmp.replace(self.path)  # whole or not at all, for the command line too
            if self._fsync:
                _fsync_dir(self.path.parent)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write {self.path}: {err}") from err

    def _open(self, adding: int) -> int:
        if self._fd is not None and os.fstat(self._fd).st_size + adding > self._max_history:
            # Everything in it is in the snapshot already (written after each append), so
            # the rotated file is never needed to load: only to show the history.
            self.close()
            self.history_path.replace(self._rotated)
        if self._fd is None:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd


def _aware(rec: AlertRecord) -> bool:
    times = (rec.started_at, rec.acked_at, rec.cleared_at)
    return all(t is None or t.tzinfo is not None for t in times)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    # The rename is durable once the directory's entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_of(
    seq: int, saved_at: datetime, active: Sequence[AlertRecord], cleared: Sequence[AlertRecord]
) -> Snapshot:
    """The snapshot of a book's state."""
    return Snapshot(_FORMAT, seq, saved_at, list(active), list(cleared))

