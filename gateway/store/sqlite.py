"""The gateway's durable state: one SQLite file in WAL mode, written in batched transactions.

What lives here, and why it is enough to resume after ``kill -9``:

- ``replies``: the one final reply to every order id ever answered (accepted or rejected), so a
  resent order gets the same reply and creates nothing new; with the device it went to and the
  commit's wall time, so the replies of the last seconds before a crash are sent again at the
  next start.
- ``orders``: a snapshot of every order the kitchen still works on (lines, tickets, versions,
  acks), by the kitchen's order number ``seq``. Tickets sent but not acknowledged are rebuilt
  from it and resent at start-up; closed orders stay (``open = 0``) until purged.
- ``acks``: the newest version each screen acknowledged, one small row per ticket, so an ack
  does not rewrite its order's snapshot (acks are the most frequent event).
- ``tickets``: the latest version of each open order's tickets exactly as sent, written once per
  version, so a resend after a restart repeats the same bytes.
- ``commands``: the reply to every tablet command id, for the same idempotency.

The order service commits a batch *before* it acknowledges the MQTT messages in it and before it
publishes anything the batch produced: the durability boundary is this commit (screens' acks
excepted: acknowledged at once, saved with the next commit; losing one costs a resend). With
``durability = "full"`` SQLite fsyncs each commit (an accepted order survives a power cut); with
``"normal"`` it survives a crash of the gateway but may lose the last batches on power loss.
Batching (many messages per transaction) is what keeps either fast.

sqlite3 errors are translated into :mod:`gateway.errors` here and nowhere else.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Literal, Self
from uuid import UUID

from gateway.errors import StoreError, StoreFull

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator
    from pathlib import Path

    from gateway.store.batch import Batch

log = logging.getLogger(__name__)

_VERSION = 2  # PRAGMA user_version of the layout below
# Ids per look-up statement: under SQLite's oldest limit on parameters (999).
_IN_CHUNK = 500
_RECENT_LIMIT = 5000  # replies sent again at a start, at most: a burst's 30 s at ~170/s

# Orders, acks and sent tickets are keyed by the kitchen's order number (``seq``, increasing in
# order of acceptance), not by the random order id: the rows of the orders in the kitchen now sit
# together in the last pages of each table, so a batch of changes rewrites a few pages instead
# of one random page per row. Measured with a realistic batch (35 orders accepted, acked, bumped
# and closed per commit): 4x less CPU per order and a 3x smaller file than random-id keys.
# Ids are stored as 16-byte blobs.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    order_id BLOB PRIMARY KEY,
    device   TEXT NOT NULL,
    reply    BLOB NOT NULL,
    at       REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    seq      INTEGER PRIMARY KEY,
    open     INTEGER NOT NULL,
    snapshot BLOB NOT NULL,
    at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open ON orders(open) WHERE open = 1;
CREATE TABLE IF NOT EXISTS acks (
    seq       INTEGER NOT NULL,
    ticket_id BLOB NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (seq, ticket_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tickets (
    seq       INTEGER NOT NULL,
    ticket_id BLOB NOT NULL,
    version   INTEGER NOT NULL,
    payload   BLOB NOT NULL,
    PRIMARY KEY (seq, ticket_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    command_id BLOB PRIMARY KEY,
    reply      BLOB NOT NULL,
    at         REAL NOT NULL
) WITHOUT ROWID;
"""


class Store:
    """The SQLite file.

    Threads: ``commit`` and ``purge`` may run on one writer thread (the order service's) while
    the event loop thread reads; reads go through a connection of their own, so they see only
    committed data and never wait on, or join, the writer's open transaction. Everything else
    is for start-up and tests, before or after the writer runs.
    """

    def __init__(self, path: Path, durability: Literal["full", "normal"] = "full") -> None:
        """Open (creating if needed) the database at ``path``."""
        self.path = path
        opened: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            opened.append(self._db)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            _check_version(self._db, path)
            # Tables and layout version in one transaction: a crash in between would leave a
            # file that later starts take for another layout.
            self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {_VERSION}; COMMIT;")
            # WAL lets this reader run beside the writer's transaction. It looks up the replies
            # the in-memory cache does not hold (for a new order: not found), one row at a
            # time, so a small page cache (memory) will do.
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            opened.append(self._reader)
            self._reader.execute("PRAGMA cache_size = -256")
            newest = self._reader.execute(
                "SELECT max(m) FROM (SELECT max(at) AS m FROM replies "
                "UNION ALL SELECT max(at) FROM orders UNION ALL SELECT max(at) FROM commands)"
            ).fetchone()[0]
            self._last_at: float = float(newest or 0.0)
        except BaseException as err:
            for conn in opened:
                conn.close()
            if isinstance(err, sqlite3.Error):
                raise _translate(err, path) from err
            if isinstance(err, OSError):
                raise StoreError(f"cannot open {path}: {err.strerror}") from err
            raise
        self.commits = 0

    def close(self) -> None:
        """Close the database (checkpointing the WAL)."""
        self._reader.close()
        self._db.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()

    # --- reads ------------------------------------------------------------------------

    def reply_for(self, order_id: UUID) -> bytes | None:
        """The reply already given to ``order_id``, if any."""
        row = self._one("SELECT reply FROM replies WHERE order_id = ?", (order_id.bytes,))
        return None if row is None else bytes(row[0])

    def replies_for(self, order_ids: Collection[UUID]) -> dict[UUID, bytes]:
        """The replies already given to any of ``order_ids`` (those never answered are absent).

        One statement per ``_IN_CHUNK`` ids: a batch of new orders costs one read transaction
        instead of one per order, which measured ~45 us each on the 2-core VM (most of it
        starting the read, not finding the row).
        """
        found: dict[UUID, bytes] = {}
        ids = [o.bytes for o in order_ids]
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT order_id, reply FROM replies WHERE order_id IN ({marks})"  # noqa: S608 - placeholders only
            try:
                rows = self._reader.execute(sql, chunk).fetchall()
            except sqlite3.Error as err:
                raise _translate(err, self.path) from err
            found.update((UUID(bytes=o), bytes(r)) for o, r in rows)
        return found

    def recent_replies(
        self, window_s: float, limit: int = _RECENT_LIMIT
    ) -> list[tuple[str, bytes]]:
        """``(device, reply)`` of the order replies committed in the last ``window_s`` of commits.

        The last seconds *of the file*, not of the clock now: measured back from the newest
        commit's stamp, so a restart after a long reboot still finds them, and a wall clock
        stepped while the gateway was down (stamps never go backwards, see ``commit``) neither
        hides them nor brings back a whole evening. At most ``limit``, the newest; oldest first
        (replies of one commit in no particular order). For start-up: the replies of the orders
        committed just before a crash may never have been published, and are sent again. A
        scan of the table (no index on ``at``: one would cost every commit a second b-tree
        write for a read made once per start); measured ~30 ms for 100,000 replies on the
        2-core VM. Through the reader's connection, so it may run while the writer's is in use.
        """
        try:
            rows = self._reader.execute(
                "SELECT device, reply FROM replies "
                "WHERE at >= (SELECT max(at) FROM replies) - ? ORDER BY at DESC LIMIT ?",
                (window_s, limit),
            ).fetchall()
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err
        return [(str(d), bytes(r)) for d, r in reversed(rows)]

    def command_reply(self, command_id: UUID) -> bytes | None:
        """The reply already given to a command, if any."""
        row = self._one("SELECT reply FROM commands WHERE command_id = ?", (command_id.bytes,))
        return None if row is None else bytes(row[0])

    def open_orders(self) -> Iterator[bytes]:
        """Snapshots of every open order (start-up)."""
        try:
            for (snap,) in self._db.execute("SELECT snapshot FROM orders WHERE open = 1"):
                yield bytes(snap)
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err

    def acks(self) -> dict[UUID, int]:
        """The newest acknowledged version per ticket of the open orders (start-up)."""
        try:
            rows = self._db.execute("SELECT ticket_id, version FROM acks").fetchall()
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err
        return {UUID(bytes=t): int(v) for t, v in rows}

    def tickets(self) -> dict[UUID, bytes]:
        """The latest sent version of every ticket of the open orders (start-up)."""
        try:
            rows = self._db.execute("SELECT ticket_id, payload FROM tickets").fetchall()
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err
        return {UUID(bytes=t): bytes(p) for t, p in rows}

    def max_seq(self) -> int:
        """The highest order number ever stored, closed orders included (0 if none)."""
        row = self._one("SELECT max(seq) FROM orders", ())
        return int(row[0]) if row and row[0] is not None else 0

    def count(self, table: Literal["replies", "orders", "acks", "tickets", "commands"]) -> int:
        """Rows in a table (for stats and tests)."""
        row = self._one(f"SELECT count(*) FROM {table}", ())  # noqa: S608 - fixed names only
        return int(row[0]) if row else 0

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._reader.execute(sql, args).fetchone()
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err
        return row

    # --- writes -----------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Write a batch in one transaction; raises StoreError (nothing written) on failure."""
        if not batch:
            return
        # Wall time, not monotonic: the stamps outlive the process (and the boot), and they
        # serve retention by age (``purge``) and "the last seconds of commits" at the next
        # start. They never go backwards (a wall clock stepped back repeats the newest stamp
        # until it catches up), so the newest stamp is always the last commit's; a step makes
        # retention off by the step, a purge a little early or late out of weeks.
        now = max(batch.at if batch.at is not None else time.time(), self._last_at)
        db = self._db
        try:
            db.execute("BEGIN")
            # Empty statements are skipped: most batches carry one or two kinds of change.
            if batch.replies:
                db.executemany(
                    "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?)",
                    [(o.bytes, d, r, now) for o, d, r in batch.replies],
                )
            if batch.snapshots:
                db.executemany(
                    "INSERT OR REPLACE INTO orders VALUES (?, 1, ?, ?)",
                    [(seq, snap, now) for seq, snap in batch.snapshots.items()],
                )
            if batch.acks:
                db.executemany(
                    "INSERT INTO acks VALUES (?, ?, ?) ON CONFLICT(seq, ticket_id) "
                    "DO UPDATE SET version = max(version, excluded.version)",
                    [(seq, t.bytes, v) for t, seq, v in batch.acks],
                )
            if batch.tickets:
                db.executemany(
                    "INSERT INTO tickets VALUES (?, ?, ?, ?) ON CONFLICT(seq, ticket_id) "
                    "DO UPDATE SET version = excluded.version, payload = excluded.payload "
                    "WHERE excluded.version > tickets.version",
                    [(seq, t.bytes, v, p) for t, seq, v, p in batch.tickets],
                )
            if batch.closed:
                closed = [(seq,) for seq in batch.closed]
                db.executemany(
                    "UPDATE orders SET open = 0, at = ? WHERE seq = ?",
                    [(now, seq) for seq in batch.closed],
                )
                db.executemany("DELETE FROM acks WHERE seq = ?", closed)
                db.executemany("DELETE FROM tickets WHERE seq = ?", closed)
            if batch.commands:
                db.executemany(
                    "INSERT OR IGNORE INTO commands VALUES (?, ?, ?)",
                    [(c.bytes, r, now) for c, r in batch.commands],
                )
            db.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise _translate(err, self.path) from err
        self._last_at = now
        self.commits += 1

    def _rollback(self) -> None:
        # After a failed statement the transaction may still be open; a closed connection
        # raises ProgrammingError on any use, and then there is nothing to roll back.
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback failed (connection closed?)", exc_info=True)

    def purge(self, older_than_s: float, now: float | None = None) -> int:
        """Forget closed orders and replies older than ``older_than_s`` (bounded disk use).

        Args:
            older_than_s: age, in seconds of wall time, past which rows go.
            now: the wall time (epoch seconds) ages are counted from; default: the system's.
                Wall time, like the stamps it is compared with (see ``commit``).

        Returns:
            The number of rows removed.
        """
        cutoff = (time.time() if now is None else now) - older_than_s
        try:
            db = self._db
            db.execute("BEGIN")
            n = db.execute("DELETE FROM orders WHERE open = 0 AND at < ?", (cutoff,)).rowcount
            n += db.execute("DELETE FROM replies WHERE at < ?", (cutoff,)).rowcount
            n += db.execute("DELETE FROM commands WHERE at < ?", (cutoff,)).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise _translate(err, self.path) from err
        return n

    def free_bytes(self) -> int:
        """Free space on the disk holding the database."""
        return shutil.disk_usage(self.path.parent).free


def _check_version(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a file written in another layout rather than misread it."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    has_tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'orders'").fetchone()
    if version == _VERSION or (version == 0 and not has_tables[0]):
        return
    newer = version > _VERSION
    raise StoreError(
        f"{path} was written by {'a newer' if newer else 'an older'} gateway (state layout "
        f"{version}, this one reads {_VERSION}). "
        + (
            "Run the gateway version that wrote it, or move it away (with its -wal and -shm "
            "files) to start empty."
            if newer
            else "Let the old gateway finish the open orders (every ticket bumped), stop it, "
            "then move the file away with its -wal and -shm files; this gateway starts with "
            "an empty one."
        )
    )


def _translate(err: sqlite3.Error, path: Path) -> StoreError:
    if isinstance(err, sqlite3.OperationalError) and "full" in str(err).lower():
        return StoreFull(path)
    return StoreError(f"{path}: {err}")
