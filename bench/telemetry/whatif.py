"""What-if: the changes bench/telemetry's profile points at, patched into the bench's process only.

``BENCH_TELEMETRY_WHATIF=lines,append,gzip1 python bench/telemetry/run.py ...`` measures the
pipeline with some of these replacements. They are sketches to estimate a gain, written for
this bench, never imported by the gateway; ``gateway/`` is not changed. Each keeps the
method's contract as the pipeline uses it.

* ``lines``: ``HistoryReader.lines`` builds the whole batch in SQLite, one statement that
  returns one string (``group_concat`` over the rows in seq order), instead of one Python row
  per line. Python's ``sqlite3`` lets go of the GIL around every step, i.e. every row: with
  another thread busy in Python, each row waits for the GIL (up to the 5 ms switch interval),
  and the sink starves. The devices of the lines are looked up only if they are used (when
  a write is rejected and the batch is halved). Caveat: SQLite 3.40 has no ``ORDER BY``
  inside an aggregate (3.44 has); the order comes from the ordered subquery, which SQLite
  does not promise: a real change would use 3.44's form or check the order.
* ``append``: ``History.append`` inserts each table's rows with one statement over one JSON
  text (``json_each``) instead of ``executemany`` (one step, so one GIL hand-off, per row).
* ``gzip1``: the request body compressed at zlib level 1 instead of influxdb-client's
  ``gzip.compress`` default, level 9 (a real change: compress in the adapter, client gzip
  off, and send the bytes with ``Content-Encoding: gzip``).
* ``cursor1s``: the sink's cursor saved at most once a second instead of after every batch:
  the save is a write on the history, so it waits for SQLite's write lock, which the
  recorder's commits hold back to back under load. A batch written twice after a crash is
  the same points again, so saving less often only widens what may be sent twice.
* ``lingerMS``, ``cacheMIB``: the recorder's linger, the writer's page cache (tried; no
  clear effect in the pipeline).
* ``noindex``: the ``(series, at_ns)`` indexes dropped, to measure what they cost (the
  history's per-device queries need them: not a proposal as it stands).
"""

from __future__ import annotations

import functools
import gzip
import json
import sqlite3
import time
from collections.abc import Sequence

from gateway.errors import StoreError
from gateway.telemetry import history as history_module
from gateway.telemetry import recorder as recorder_module
from gateway.telemetry.history import History, HistoryReader

_LINES_SQL = (
    "SELECT group_concat(line, char(10)), max(seq), count(*) FROM ("
    "SELECT seq, line FROM ("
    "SELECT t.seq AS seq, s.prefix || ' ' || t.fields || ' ' || t.at_ns AS line "
    "FROM safety t JOIN series s ON s.id = t.series WHERE t.seq > ?1 AND t.seq <= ?2 "
    "UNION ALL "
    "SELECT t.seq AS seq, s.prefix || ' ' || t.fields || ' ' || t.at_ns AS line "
    "FROM other t JOIN series s ON s.id = t.series WHERE t.seq > ?1 AND t.seq <= ?2"
    ") ORDER BY seq LIMIT ?3)"
)


class _LazyDevices(Sequence[str]):
    """The device of each line, read from the history only when asked for."""

    def __init__(self, reader: HistoryReader, after: int, upto: int) -> None:
        self._reader, self._after, self._upto = reader, after, upto
        self._list: list[str] | None = None

    def _get(self) -> list[str]:
        if self._list is None:
            self._list = self._reader.devices_of(self._after, self._upto)
        return self._list

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())


def _lines(self: HistoryReader, after: int, upto: int, limit: int):
    try:
        body, last, n = self._db.execute(_LINES_SQL, (after, upto, limit)).fetchone()
    except sqlite3.Error as err:
        raise history_module._translate(err, self.path) from err  # noqa: SLF001 -- its own translation
    if not n:
        return [], [], after
    # The sink joins the lines again: split and join are C loops, ~0.05 us a line each.
    return body.split("\n"), _LazyDevices(self, after, last), last


def _append(self: History, rows):
    first = self._next
    if not rows:
        return first, first - 1
    db = self._db
    try:
        db.execute("BEGIN")
        safety: list[list[object]] = []
        other: list[list[object]] = []
        seq = first
        for r in rows:
            sid = self._series.get(r.series[:3])
            if sid is None:
                sid = self._new_series(r.series)
            (safety if r.safety else other).append([seq, sid, r.at_ns, r.fields])
            seq += 1
        for table, items in (("safety", safety), ("other", other)):
            if items:
                db.execute(
                    f"INSERT INTO {table} SELECT value->>0, value->>1, value->>2, value->>3 "
                    "FROM json_each(?)",
                    (json.dumps(items),),
                )
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)", (seq,))
        db.execute("COMMIT")
        self._pending_series.clear()
    except sqlite3.Error as err:
        self._rollback()
        raise history_module._translate(err, self.path) from err  # noqa: SLF001 -- as History does
    self._next = seq
    return first, seq - 1


def apply(names: str) -> list[str]:
    done = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name == "lines":
            HistoryReader.lines = _lines  # type: ignore[method-assign]
        elif name == "append":
            History.append = _append  # type: ignore[method-assign]
        elif name == "gzip1":
            gzip.compress = functools.partial(gzip.compress, compresslevel=1)
        elif name.startswith("linger"):  # linger250: the recorder waits 250 ms, not 50
            recorder_module._LINGER_S = int(name[6:]) / 1000  # noqa: SLF001 -- a what-if
        elif name.startswith("cache"):  # cache64: a 64 MiB page cache for the writer
            mib = int(name[5:])

            def with_cache(self: History, *args: object, mib: int = mib,
                           init: object = History.__init__, **kw: object) -> None:  # fmt: skip
                init(self, *args, **kw)  # type: ignore[operator]
                self._db.execute(f"PRAGMA cache_size = -{mib * 1024}")

            History.__init__ = with_cache  # type: ignore[method-assign]
        elif name == "cursor1s":  # the sink's cursor saved at most once a second

            def throttled(self: HistoryReader, sink: str, cursor: object,
                          save: object = HistoryReader.save_cursor,
                          last: dict = {"t": -1e9}) -> None:  # noqa: B006 -- the state, on purpose  # fmt: skip
                now = time.monotonic()
                if now - last["t"] >= 1.0:
                    last["t"] = now
                    save(self, sink, cursor)  # type: ignore[operator]

            HistoryReader.save_cursor = throttled  # type: ignore[method-assign]
        elif name == "noindex":  # measure only: what the (series, at_ns) indexes cost

            def without(self: History, *args: object, init: object = History.__init__,
                        **kw: object) -> None:  # fmt: skip
                init(self, *args, **kw)  # type: ignore[operator]
                self._db.executescript("DROP INDEX IF EXISTS other_by_time; "
                                       "DROP INDEX IF EXISTS safety_by_time;")  # fmt: skip

            History.__init__ = without  # type: ignore[method-assign]
        else:
            raise StoreError(f"unknown what-if {name!r}: lines, append, gzip1, lingerMS, "
                             "cacheMIB, cursor1s, noindex")  # fmt: skip
        done.append(name)
    return done
