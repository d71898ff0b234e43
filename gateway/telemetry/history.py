"""The durable record of every reading: ``{state.dir}/telemetry.db``, SQLite in WAL mode.

A file of its own, beside the order path's ``gateway.db``: telemetry's batches never wait on,
or delay, an order's commit.

Layout:

* ``safety`` and ``other``: one row per device and reading time, the reading's food-safety points
  in ``safety``, the others in ``other`` (a reading with both is a row in each). Two tables, not
  a flag, so that dropping the oldest ``other`` rows empties whole pages, which SQLite reuses:
  with the two kinds interleaved on the same pages, deleting one kind would free no page and
  the file would grow for ever. ``seq`` numbers rows of both tables in the order they were
  written; it never goes back, even when the newest rows are pruned (``meta.next_seq``), so a
  sink's cursor never skips a row. ``fields`` is the reading's InfluxDB line-protocol field set
  (``cabinet_temp=3.2,door_open=false``): typed (an integer is ``12i``), and a sink writes a row
  by joining three strings. ``at_ns``: the time it was read, in nanoseconds since the epoch.
* ``series``: measurement and tags of a device (``gateway.telemetry.schema``); a device whose
  station or location changes in the site file gets a new series, and its old readings keep
  the tags they were read with.
* ``cursors``: each sink's durable cursor (``gateway.telemetry.lanes``).
* ``drops``: readings given up, per device and reason, with when (what ``gateway telemetry
  status`` shows).
* ``sinks``: each sink's last state in words, for ``gateway telemetry status``.

Threads: one writer (the recorder's thread) appends, prunes and caps; each sink and each
command reads through a connection of its own (:meth:`History.reader`), seeing only committed
rows. sqlite3's errors become :class:`~gateway.errors.StoreError` (or ``StoreFull``) here and
nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from gateway.errors import StoreError, StoreFull
from gateway.telemetry.lanes import Cursor

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence
    from pathlib import Path

__all__ = ["History", "HistoryReader", "Row", "SinkRecord"]

_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id          INTEGER PRIMARY KEY,
    device      TEXT NOT NULL,
    measurement TEXT NOT NULL,
    tags        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    UNIQUE (device, measurement, tags)
);
CREATE TABLE IF NOT EXISTS safety (
    seq    INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    at_ns  INTEGER NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS safety_by_time ON safety (series, at_ns);
CREATE TABLE IF NOT EXISTS other (
    seq    INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    at_ns  INTEGER NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS other_by_time ON other (series, at_ns);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    sink  TEXT PRIMARY KEY,
    done  INTEGER NOT NULL,
    split INTEGER NOT NULL,
    live  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS drops (
    device   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    count    INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at  REAL NOT NULL,
    PRIMARY KEY (device, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sinks (
    sink    TEXT PRIMARY KEY,
    state   TEXT NOT NULL,
    detail  TEXT NOT NULL,
    since   REAL NOT NULL,
    written INTEGER NOT NULL
) WITHOUT ROWID;
"""

_ADD_DROPS = (
    "INSERT INTO drops (device, reason, count, first_at, last_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (device, reason) DO UPDATE SET count = count + excluded.count, "
    "last_at = excluded.last_at"
)
_DELETE_CHUNK = 20_000  # rows per DELETE when making room: short transactions


@dataclass(frozen=True, slots=True)
class Row:
    """One row to append.

    Attributes:
        series: (device, measurement, tags as sorted pairs, escaped line-protocol prefix).
        at_ns: when it was read, ns since the epoch.
        safety: whether it holds food-safety points.
        fields: the line-protocol field set.
    """

    series: tuple[str, str, tuple[tuple[str, str], ...], str]
    at_ns: int
    safety: bool
    fields: str


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """A sink's last state as saved for ``gateway telemetry status``."""

    sink: str
    state: str
    detail: str
    since: float
    written: int


def _translate(err: sqlite3.Error, path: Path) -> StoreError:
    text = str(err).lower()
    if "full" in text:
        return StoreFull(path)
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"{path} cannot be written (read-only: {err}); fix: make the state directory "
            "writable by the gateway's user (a card remounted read-only after errors needs a "
            "check and a reboot)"
        )
    return StoreError(f"{path}: {err}")


def _connect(path: Path, durability: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # as_uri() percent-encodes the path: a '?' or '#' in a directory name stays a name.
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                             isolation_level=None, check_same_thread=False)  # fmt: skip
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    db.execute("PRAGMA busy_timeout = 5000")
    return db


class HistoryReader:
    """The history through a connection of its own: what sinks and commands use.

    A sink also saves its cursor, its state and the readings it gave up through it; SQLite
    serialises those small writes with the recorder's (``busy_timeout``).
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """Open a reader on ``path``.

        Raises:
            StoreError: it cannot be opened.
        """
        self.path = path
        try:
            self._db = _connect(path, "normal", readonly=readonly)
        except sqlite3.Error as err:
            raise _translate(err, path) from err
        self._prefixes: dict[int, tuple[str, str]] = {}

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err

    def save_cursor(self, sink: str, cursor: Cursor) -> None:
        """Keep a sink's cursor (durable when this returns)."""
        self._write(
            "INSERT OR REPLACE INTO cursors (sink, done, split, live) VALUES (?, ?, ?, ?)",
            (sink, cursor.done, cursor.split, cursor.live),
        )

    def save_sink(self, record: SinkRecord) -> None:
        """Keep a sink's state for ``gateway telemetry status``."""
        self._write(
            "INSERT OR REPLACE INTO sinks (sink, state, detail, since, written) "
            "VALUES (?, ?, ?, ?, ?)",
            (record.sink, record.state, record.detail, record.since, record.written),
        )

    def note_drops(self, counts: Counter[tuple[str, str]], at: float) -> None:
        """Add readings given up, per (device, reason)."""
        if not counts:
            return
        self._write_many(_ADD_DROPS, [(d, r, n, at, at) for (d, r), n in counts.items()])

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self._write_many(sql, [args])

    def _write_many(self, sql: str, args: Iterable[tuple[Any, ...]]) -> None:
        try:
            self._db.execute("BEGIN")
            self._db.executemany(sql, args)
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise _translate(err, self.path) from err

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # none is open when BEGIN itself failed
            self._db.execute("ROLLBACK")

    def head(self) -> int:
        """The newest ``seq`` ever written (0: none)."""
        rows = self._all("SELECT value FROM meta WHERE key = 'next_seq'")
        return int(rows[0][0]) - 1 if rows else 0

    def cursor(self, sink: str) -> Cursor | None:
        """A sink's saved cursor, None when it has none yet."""
        rows = self._all("SELECT done, split, live FROM cursors WHERE sink = ?", (sink,))
        return Cursor(*rows[0]) if rows else None

    def lines(self, after: int, upto: int, limit: int) -> tuple[list[str], int]:
        """Line protocol of the rows with ``after < seq <= upto``, oldest first, at most ``limit``.

        One statement returns the whole batch as one string: Python's sqlite3 lets go of the
        GIL for every row it steps, and beside a busy thread a batch read row by row took 252 us
        a line, against 2.6 us in one string (bench/telemetry).

        Returns:
            (lines, the last seq read: ``after`` when none).
        """
        rows = self._all(
            # A scalar subquery, not a join: the rows are concatenated in the order scanned.
            "SELECT group_concat(coalesce((SELECT prefix FROM series WHERE id = r.series), "
            "'unknown_series') || ' ' || r.fields || ' ' || r.at_ns, char(10)), "
            "max(r.seq) FROM (SELECT seq, series, fields, at_ns FROM ("
            "SELECT * FROM (SELECT seq, series, fields, at_ns FROM safety "
            "WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3) "
            "UNION ALL SELECT * FROM (SELECT seq, series, fields, at_ns FROM other "
            "WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3)"
            ") ORDER BY seq LIMIT ?3) AS r",
            (after, upto, limit),
        )
        text, last = rows[0] if rows else (None, None)
        if not text:
            return [], after
        return str(text).split("\n"), int(last)

    def devices_of(self, after: int, upto: int) -> list[str]:
        """The device of each row with ``after < seq <= upto``, oldest first (as :meth:`lines`)."""
        rows = self._all(
            "SELECT seq, series FROM safety WHERE seq > ?1 AND seq <= ?2 UNION ALL "
            "SELECT seq, series FROM other WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
            (after, upto),
        )
        return [(self._prefixes.get(s) or self._load_prefix(s))[0] for _, s in rows]

    def _load_prefix(self, series: int) -> tuple[str, str]:
        rows = self._all("SELECT device, prefix FROM series WHERE id = ?", (series,))
        known = (str(rows[0][0]), str(rows[0][1])) if rows else ("?", "unknown")
        self._prefixes[series] = known
        return known

    def oldest_pending_ns(self, cursor: Cursor) -> int | None:
        """Reading time of the oldest row the sink does not have, None when it has them all.

        Looks at the first rows of the oldest pending range only (readings are written about
        in time order), so it stays cheap however long the backlog.
        """
        after = cursor.done if cursor.splitting else cursor.live
        found = [
            self._all(
                f"SELECT min(at_ns) FROM (SELECT at_ns FROM {table} WHERE seq > ? "  # noqa: S608 -- a table name of ours
                "ORDER BY seq LIMIT 1000)",
                (after,),
            )[0][0]
            for table in ("safety", "other")
        ]
        times = [int(t) for t in found if t is not None]
        return min(times) if times else None

    def pending_rows(self, cursor: Cursor) -> tuple[int, int]:
        """(rows, bytes of their field sets) a sink with ``cursor`` does not have yet."""
        rows, size = 0, 0
        for table in ("safety", "other"):
            n, b = self._all(
                f"SELECT count(*), coalesce(sum(length(fields)), 0) FROM {table} "  # noqa: S608 -- a table name of ours
                "WHERE (seq > ? AND seq <= ?) OR seq > ?",
                (cursor.done, cursor.split, cursor.live),
            )[0]
            rows, size = rows + int(n), size + int(b)
        return rows, size

    def drops(self) -> list[tuple[str, str, int, float, float]]:
        """(device, reason, count, first_at, last_at) of every reading given up."""
        return [
            (str(d), str(r), int(c), float(f), float(la))
            for d, r, c, f, la in self._all(
                "SELECT device, reason, count, first_at, last_at FROM drops ORDER BY device, reason"
            )
        ]

    def sinks(self) -> list[SinkRecord]:
        """Every sink's last saved state."""
        return [
            SinkRecord(str(s), str(st), str(d), float(si), int(w))
            for s, st, d, si, w in self._all(
                "SELECT sink, state, detail, since, written FROM sinks ORDER BY sink"
            )
        ]

    def size(self) -> tuple[int, int]:
        """(rows, bytes used by the file's pages)."""
        rows = self._all("SELECT (SELECT count(*) FROM safety) + (SELECT count(*) FROM other)")
        return int(rows[0][0]), _used_bytes(self._db, self.path)

    def query(
        self,
        device: str,
        since_ns: int,
        until_ns: int,
        limit: int | None = None,
        *,
        leave_out: Collection[str] = (),
    ) -> Iterator[tuple[int, bool, str]]:
        """(at_ns, safety, field set) of one device's rows with ``since <= at < until``.

        In time order; a reading with food-safety and other points comes as two rows.
        ``leave_out``: measurements not wanted (the gateway's own notes beside the readings).
        """
        ids = [
            s
            for s, measurement in self._all(
                "SELECT id, measurement FROM series WHERE device = ?", (device,)
            )
            if measurement not in leave_out
        ]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        where = f"series IN ({marks}) AND at_ns >= ? AND at_ns < ?"
        sql = (
            f"SELECT at_ns, 1, fields, seq FROM safety WHERE {where} UNION ALL "  # noqa: S608 -- only '?' marks are formatted in
            f"SELECT at_ns, 0, fields, seq FROM other WHERE {where} ORDER BY 1, 4"
        )
        args = (*ids, since_ns, until_ns) * 2
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            for at_ns, safety, fields, _seq in self._db.execute(sql, args):
                yield int(at_ns), bool(safety), str(fields)
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err

    def devices(self) -> list[str]:
        """Every device that has readings (or had)."""
        return [str(d) for (d,) in self._all("SELECT DISTINCT device FROM series ORDER BY device")]


def _used_bytes(db: sqlite3.Connection, path: Path) -> int:
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error as err:
        raise _translate(err, path) from err
    return int((pages - free) * size)


class History(HistoryReader):
    """The writer's side: append, prune, make room. One thread at a time uses it."""

    def __init__(self, path: Path, durability: Literal["full", "normal"] = "full") -> None:
        """Open (creating if needed) the history at ``path``.

        Raises:
            StoreError: it cannot be opened or created (the message says what to do).
        """
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _connect(path, durability)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, _VERSION):
                raise StoreError(
                    f"{path} was written by another gateway version (telemetry layout {version}, "
                    f"this one reads {_VERSION}); move it away (with its -wal and -shm files) to "
                    "start an empty history"
                )
            self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {_VERSION}; COMMIT;")
            self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
            for sid, device, measurement, tags in self._db.execute(
                "SELECT id, device, measurement, tags FROM series"
            ):
                key = (device, measurement, tuple(tuple(t) for t in json.loads(tags)))
                self._series[key] = sid
            row = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            top = self._db.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM safety), 0), "
                "coalesce((SELECT max(seq) FROM other), 0))"
            ).fetchone()[0]
            self._next = max(int(row[0]) if row else 1, int(top) + 1)
        except sqlite3.Error as err:
            raise _translate(err, path) from err
        except OSError as err:
            raise StoreError(
                f"cannot create {path}: {err.strerror}; fix: make {path.parent} writable by the "
                "gateway's user"
            ) from err
        self._prefixes = {}
        self._pending_series: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []

    def append(
        self,
        rows: Sequence[Row],
        drops: Counter[tuple[str, str]] | None = None,
        at: float = 0.0,
    ) -> tuple[int, int]:
        """Write ``rows`` (and readings given up, ``drops`` at ``at``) in one transaction.

        Durable when this returns; one transaction, so a failure leaves neither half behind
        (a batch put back after its drops failed would be written twice).

        Returns:
            (first, last) seq given to them; (n, n - 1) for no rows.

        Raises:
            StoreError: they could not be written (nothing of them was); ``StoreFull`` when
                the disk is full.
        """
        first = self._next
        if not rows and not drops:
            return first, first - 1
        db = self._db
        try:
            db.execute("BEGIN")
            safety: list[tuple[int, int, int, str]] = []
            other: list[tuple[int, int, int, str]] = []
            seq = first
            for r in rows:
                sid = self._series.get(r.series[:3])
                if sid is None:
                    sid = self._new_series(r.series)
                (safety if r.safety else other).append((seq, sid, r.at_ns, r.fields))
                seq += 1
            if safety:
                db.executemany("INSERT INTO safety VALUES (?, ?, ?, ?)", safety)
            if other:
                db.executemany("INSERT INTO other VALUES (?, ?, ?, ?)", other)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)", (seq,))
            if drops:
                db.executemany(_ADD_DROPS, [(d, r, n, at, at) for (d, r), n in drops.items()])
            db.execute("COMMIT")
            self._pending_series.clear()
        except sqlite3.Error as err:
            self._rollback()
            raise _translate(err, self.path) from err
        self._next = seq
        return first, seq - 1

    def _new_series(self, series: tuple[str, str, tuple[tuple[str, str], ...], str]) -> int:
        device, measurement, tags, prefix = series
        cur = self._db.execute(
            "INSERT INTO series (device, measurement, tags, prefix) VALUES (?, ?, ?, ?)",
            (device, measurement, json.dumps(tags), prefix),
        )
        sid = int(cur.lastrowid or 0)
        # Only once the transaction commits is the id real; a rollback forgets every new one.
        self._pending_series.append(series[:3])
        self._series[series[:3]] = sid
        return sid

    def _rollback(self) -> None:
        super()._rollback()
        for key in self._pending_series:
            self._series.pop(key, None)
        self._pending_series = []

    def prune(self, before_ns: int, cursors: Sequence[Cursor]) -> Counter[str]:
        """Delete rows read before ``before_ns`` (retention).

        A food-safety row some sink does not have yet stays; any other row goes.

        Returns:
            Per device, the rows deleted that some sink did not have (a loss to report).
        """
        lost: Counter[str] = Counter()
        series = {sid: dev for (dev, _m, _t), sid in self._series.items()}
        for table in ("safety", "other"):
            after = 0
            while True:
                rows = self._all(
                    f"SELECT seq, series FROM {table} WHERE seq > ? AND at_ns < ? "  # noqa: S608 -- a table name of ours
                    "ORDER BY seq LIMIT ?",
                    (after, before_ns, _DELETE_CHUNK),
                )
                doomed = []
                for seq, sid in rows:
                    if all(c.delivered(seq) for c in cursors):
                        doomed.append((seq,))
                    elif table == "other":
                        lost[series.get(sid, "?")] += 1
                        doomed.append((seq,))
                if doomed:
                    self._write_many(f"DELETE FROM {table} WHERE seq = ?", doomed)  # noqa: S608
                if len(rows) < _DELETE_CHUNK:
                    break
                after = rows[-1][0]
        return lost

    def make_room(self, max_bytes: int) -> Counter[str]:
        """Drop the oldest rows that are not food-safety until the file uses under ``max_bytes``.

        Returns:
            Per device, the rows dropped.
        """
        dropped: Counter[str] = Counter()
        series = {sid: dev for (dev, _m, _t), sid in self._series.items()}
        while _used_bytes(self._db, self.path) > max_bytes:
            rows = self._all("SELECT seq, series FROM other ORDER BY seq LIMIT ?", (_DELETE_CHUNK,))
            if not rows:
                break
            self._write("DELETE FROM other WHERE seq <= ?", (rows[-1][0],))
            for _seq, sid in rows:
                dropped[series.get(sid, "?")] += 1
        return dropped

    def used_bytes(self) -> int:
        """Bytes the file's pages hold (a deleted row's page is reused once it is empty)."""
        return _used_bytes(self._db, self.path)
