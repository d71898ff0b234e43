"""The SQLite store: round trips, all-or-nothing batches, durability settings, purge, full disk."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import pytest

from gateway.errors import StoreError, StoreFull
from gateway.store.batch import Batch
from gateway.store.sqlite import Store, _translate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DAY_S = 24 * 3600.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gateway.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


def _side_connection(path: Path) -> sqlite3.Connection:
    """A second connection to the same file, as another process would have (for sabotage)."""
    return sqlite3.connect(path, isolation_level=None)


def _add_failing_trigger(path: Path, table: str, op: str = "INSERT") -> None:
    """Make every ``op`` on ``table`` fail: an error in the middle of a transaction."""
    side = _side_connection(path)
    try:
        side.execute(
            f"CREATE TRIGGER sabotage BEFORE {op} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'sabotaged'); END"
        )
    finally:
        side.close()


def _age_rows(path: Path, table: str, key: str, ids: list[UUID], seconds: float) -> None:
    side = _side_connection(path)
    try:
        side.executemany(
            f"UPDATE {table} SET at = at - ? WHERE {key} = ?",
            [(seconds, n(i) if key == "seq" else i.bytes) for i in ids],
        )
    finally:
        side.close()


_seqs: dict[UUID, int] = {}


def n(order_id: UUID) -> int:
    """The order number a kitchen would give this order (stable per id in a test run)."""
    return _seqs.setdefault(order_id, len(_seqs) + 1)


# --- round trips ---------------------------------------------------------------------------


def test_creates_parent_directory_and_empty_tables(store: Store, db_path: Path) -> None:
    assert db_path.exists()
    assert store.count("replies") == 0
    assert store.count("orders") == 0
    assert store.count("commands") == 0
    assert list(store.open_orders()) == []


def test_commit_then_read_back_replies_commands_and_open_orders(store: Store) -> None:
    order_a, order_b, cmd = uuid4(), uuid4(), uuid4()
    store.commit(
        Batch(
            replies=[(order_a, "tab-1", b'{"a":1}'), (order_b, "tab-2", b'{"b":2}')],
            snapshots={n(order_a): b"snap-a", n(order_b): b"snap-b"},
            commands=[(cmd, b'{"c":3}')],
        )
    )
    assert store.reply_for(order_a) == b'{"a":1}'
    assert store.reply_for(order_b) == b'{"b":2}'
    assert store.reply_for(uuid4()) is None
    assert store.command_reply(cmd) == b'{"c":3}'
    assert store.command_reply(uuid4()) is None
    assert sorted(store.open_orders()) == [b"snap-a", b"snap-b"]
    assert store.commits == 1


def test_replies_for_finds_the_answered_ids_among_many(store: Store) -> None:
    answered = [uuid4() for _ in range(700)]  # more than one statement's worth
    store.commit(Batch(replies=[(o, "tab", o.bytes) for o in answered]))
    never = [uuid4() for _ in range(600)]
    asked = answered[::2] + never + answered[1::2]
    found = store.replies_for(asked)
    assert found == {o: o.bytes for o in answered}
    assert all(type(r) is bytes for r in found.values())
    assert store.replies_for([]) == {}
    assert store.replies_for(never) == {}


def test_reads_return_bytes(store: Store) -> None:
    oid, cid = uuid4(), uuid4()
    store.commit(
        Batch(replies=[(oid, "t", b"r")], snapshots={n(oid): b"s"}, commands=[(cid, b"c")])
    )
    assert type(store.reply_for(oid)) is bytes
    assert type(store.command_reply(cid)) is bytes
    assert all(type(s) is bytes for s in store.open_orders())


def test_the_first_reply_is_final(store: Store) -> None:
    oid, cid = uuid4(), uuid4()
    store.commit(Batch(replies=[(oid, "tab", b"first")], commands=[(cid, b"first")]))
    store.commit(Batch(replies=[(oid, "tab", b"second")], commands=[(cid, b"second")]))
    assert store.reply_for(oid) == b"first"
    assert store.command_reply(cid) == b"first"


def test_a_newer_snapshot_replaces_the_older_one(store: Store) -> None:
    oid = uuid4()
    store.commit(Batch(snapshots={n(oid): b"v1"}))
    store.commit(Batch(snapshots={n(oid): b"v2"}))
    assert list(store.open_orders()) == [b"v2"]
    assert store.count("orders") == 1


def test_closed_orders_are_not_open_but_their_reply_stays(store: Store) -> None:
    keep, close = uuid4(), uuid4()
    store.commit(
        Batch(
            replies=[(keep, "tab", b"rk"), (close, "tab", b"rc")],
            snapshots={n(keep): b"keep", n(close): b"close"},
        )
    )
    store.commit(Batch(closed={n(close)}))
    assert list(store.open_orders()) == [b"keep"]
    assert store.reply_for(close) == b"rc"  # a resent order still gets its one reply
    assert store.count("orders") == 2  # kept until purged


def test_closing_an_unknown_order_is_harmless(store: Store) -> None:
    store.commit(Batch(closed={n(uuid4())}))
    assert list(store.open_orders()) == []


def test_an_empty_batch_writes_nothing(store: Store) -> None:
    store.commit(Batch())
    assert store.commits == 0
    assert not Batch()
    assert Batch(closed={n(uuid4())})


def test_data_survives_reopening(db_path: Path) -> None:
    oid, cid = uuid4(), uuid4()
    with Store(db_path) as first:
        first.commit(
            Batch(replies=[(oid, "tab", b"r")], snapshots={n(oid): b"s"}, commands=[(cid, b"c")])
        )
    with Store(db_path) as second:
        assert second.reply_for(oid) == b"r"
        assert second.command_reply(cid) == b"c"
        assert list(second.open_orders()) == [b"s"]


def test_a_committed_batch_is_visible_to_another_connection_without_close(
    store: Store, db_path: Path
) -> None:
    # What a restart after kill -9 sees: the WAL, not a checkpointed file.
    oid = uuid4()
    store.commit(Batch(replies=[(oid, "tab", b"r")], snapshots={n(oid): b"s"}))
    with Store(db_path) as other:
        assert other.reply_for(oid) == b"r"
        assert list(other.open_orders()) == [b"s"]


# --- all or nothing ------------------------------------------------------------------------


def test_a_batch_that_fails_midway_writes_nothing(store: Store, db_path: Path) -> None:
    # The commands insert is the last statement of the transaction: replies and orders are
    # written by then, and must be rolled back.
    _add_failing_trigger(db_path, "commands")
    oid, cid = uuid4(), uuid4()
    with pytest.raises(StoreError, match="sabotaged"):
        store.commit(
            Batch(replies=[(oid, "tab", b"r")], snapshots={n(oid): b"s"}, commands=[(cid, b"c")])
        )
    assert store.reply_for(oid) is None
    assert list(store.open_orders()) == []
    assert store.count("replies") == 0
    assert store.count("orders") == 0
    assert store.commits == 0
    assert not store._db.in_transaction


def test_a_failing_close_rolls_back_the_rest_of_the_batch(store: Store, db_path: Path) -> None:
    open_id, close_id = uuid4(), uuid4()
    store.commit(Batch(snapshots={n(close_id): b"old"}))
    _add_failing_trigger(db_path, "orders", "UPDATE")
    with pytest.raises(StoreError):
        store.commit(
            Batch(
                replies=[(open_id, "tab", b"r")],
                snapshots={n(open_id): b"new"},
                closed={n(close_id)},
            )
        )
    assert store.reply_for(open_id) is None
    assert list(store.open_orders()) == [b"old"]


def test_the_store_keeps_working_after_a_failed_batch(store: Store, db_path: Path) -> None:
    _add_failing_trigger(db_path, "commands")
    with pytest.raises(StoreError):
        store.commit(Batch(commands=[(uuid4(), b"c")]))
    side = _side_connection(db_path)
    side.execute("DROP TRIGGER sabotage")
    side.close()
    oid = uuid4()
    store.commit(Batch(replies=[(oid, "tab", b"r")]))
    assert store.reply_for(oid) == b"r"


def test_commit_on_a_closed_store_raises_store_error(db_path: Path) -> None:
    s = Store(db_path)
    s.close()
    with pytest.raises(StoreError):
        s.commit(Batch(replies=[(uuid4(), "tab", b"r")]))


# --- durability settings -------------------------------------------------------------------


def test_wal_mode_is_on(store: Store, db_path: Path) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # WAL is a property of the file: another connection sees it too.
    side = _side_connection(db_path)
    try:
        assert side.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        side.close()


@pytest.mark.parametrize(("durability", "level"), [("full", 2), ("normal", 1)])
def test_synchronous_matches_durability(db_path: Path, durability: str, level: int) -> None:
    with Store(db_path, durability) as s:  # type: ignore[arg-type]
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == level


def test_default_durability_is_full(store: Store) -> None:
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_an_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        Store(blocker / "gateway.db")


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(bad)


def test_commits_are_stamped_with_the_wall_time_they_are_given(store: Store, db_path: Path) -> None:
    oid, cid = uuid4(), uuid4()
    store.commit(Batch(replies=[(oid, "tab", b"r")], commands=[(cid, b"c")], at=1234.5))
    side = _side_connection(db_path)
    try:
        assert side.execute("SELECT at FROM replies").fetchall() == [(1234.5,)]
        assert side.execute("SELECT at FROM commands").fetchall() == [(1234.5,)]
    finally:
        side.close()


def test_recent_replies_are_the_last_seconds_of_commits_with_their_device(store: Store) -> None:
    old, edge, new = uuid4(), uuid4(), uuid4()
    store.commit(Batch(replies=[(old, "tab-1", b"old")], at=1000.0))
    store.commit(Batch(replies=[(edge, "tab-2", b"edge")], at=1030.0))
    store.commit(Batch(replies=[(new, "tab-3", b"new")], commands=[(uuid4(), b"c")], at=1040.0))
    # Measured back from the newest commit, not from the clock now.
    assert store.recent_replies(10.0) == [("tab-2", b"edge"), ("tab-3", b"new")]
    assert store.recent_replies(0.0) == [("tab-3", b"new")]
    assert store.recent_replies(10.0, limit=1) == [("tab-3", b"new")]


def test_commit_stamps_never_go_backwards(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with Store(path) as store:
        store.commit(Batch(replies=[(uuid4(), "tab-1", b"before")], at=5000.0))
    # Reopened on a clock stepped back two hours: the newest stamp stays the last commit's.
    with Store(path) as store:
        store.commit(Batch(replies=[(uuid4(), "tab-2", b"after")], at=5000.0 - 7200))
        # Both carry the newest stamp now; replies of equal stamps come in no particular order.
        assert sorted(store.recent_replies(0.0)) == [("tab-1", b"before"), ("tab-2", b"after")]


def test_purge_counts_age_from_the_wall_time_it_is_given(store: Store) -> None:
    oid = uuid4()
    store.commit(Batch(replies=[(oid, "tab", b"r")], at=1000.0))
    assert store.purge(100.0, now=1099.0) == 0
    assert store.purge(100.0, now=1101.0) == 1
    assert store.reply_for(oid) is None


# --- purge ---------------------------------------------------------------------------------


def test_purge_removes_only_old_rows(store: Store, db_path: Path) -> None:
    old_closed, new_closed, old_open = uuid4(), uuid4(), uuid4()
    old_cmd, new_cmd = uuid4(), uuid4()
    store.commit(
        Batch(
            replies=[(old_closed, "t", b"a"), (new_closed, "t", b"b"), (old_open, "t", b"c")],
            snapshots={n(old_closed): b"a", n(new_closed): b"b", n(old_open): b"c"},
            commands=[(old_cmd, b"x"), (new_cmd, b"y")],
        )
    )
    store.commit(Batch(closed={n(old_closed), n(new_closed)}))
    _age_rows(db_path, "orders", "seq", [old_closed, old_open], 40 * DAY_S)
    _age_rows(db_path, "replies", "order_id", [old_closed], 40 * DAY_S)
    _age_rows(db_path, "commands", "command_id", [old_cmd], 40 * DAY_S)

    removed = store.purge(30 * DAY_S)

    assert removed == 3  # the old closed order, its reply, the old command
    assert store.reply_for(old_closed) is None
    assert store.command_reply(old_cmd) is None
    assert store.reply_for(new_closed) == b"b"
    assert store.reply_for(old_open) == b"c"
    assert store.command_reply(new_cmd) == b"y"
    # An open order is never purged, however old: the kitchen still works on it.
    assert list(store.open_orders()) == [b"c"]
    assert store.count("orders") == 2


def test_purge_with_nothing_old_removes_nothing(store: Store) -> None:
    oid = uuid4()
    store.commit(Batch(replies=[(oid, "t", b"r")], snapshots={n(oid): b"s"}, closed=set()))
    store.commit(Batch(closed={n(oid)}))
    assert store.purge(DAY_S) == 0
    assert store.reply_for(oid) == b"r"


def test_a_failed_purge_leaves_the_store_usable(store: Store, db_path: Path) -> None:
    oid = uuid4()
    store.commit(Batch(replies=[(oid, "t", b"r")], snapshots={n(oid): b"s"}))
    store.commit(Batch(closed={n(oid)}))
    _add_failing_trigger(db_path, "replies", "DELETE")
    with pytest.raises(StoreError):
        store.purge(-DAY_S)  # everything is "old": the orders delete runs, replies fails
    assert not store._db.in_transaction
    store.commit(Batch(replies=[(uuid4(), "t", b"next")]))  # the next batch must still work


# --- full disk -----------------------------------------------------------------------------


def _fill(store: Store, committed: list[UUID]) -> None:
    """Commit batches of three replies until the store refuses one."""
    for _ in range(200):
        batch = Batch(replies=[(uuid4(), "tab", b"x" * 1500) for _ in range(3)])
        store.commit(batch)
        committed += [oid for oid, _, _ in batch.replies]


def test_a_full_database_raises_store_full_and_writes_nothing(store: Store) -> None:
    # max_page_count makes SQLite report SQLITE_FULL exactly as a full disk does.
    store._db.execute("PRAGMA max_page_count = 12")
    committed: list[UUID] = []
    with pytest.raises(StoreFull) as info:
        _fill(store, committed)
    assert committed  # some batches fitted before the disk "filled up"
    assert info.value.path == store.path
    assert "full" in str(info.value)
    assert not store._db.in_transaction
    # Nothing of the refused batch was written: only whole batches are there.
    assert store.count("replies") == len(committed)
    assert all(store.reply_for(o) is not None for o in committed)


def test_translate_maps_disk_full_to_store_full(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    err = _translate(sqlite3.OperationalError("database or disk is full"), path)
    assert isinstance(err, StoreFull)
    assert err.path == path


@pytest.mark.parametrize(
    "err",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        sqlite3.DatabaseError("file is not a database"),
    ],
)
def test_translate_maps_other_errors_to_store_error(tmp_path: Path, err: sqlite3.Error) -> None:
    translated = _translate(err, tmp_path / "g.db")
    assert type(translated) is StoreError
    assert str(err) in str(translated)
    assert "g.db" in str(translated)


def test_acks_and_sent_tickets_live_in_their_own_rows_until_the_order_closes(
    store: Store,
) -> None:
    order, ticket, other = uuid4(), uuid4(), uuid4()
    store.commit(
        Batch(
            snapshots={n(order): b"{}"},
            acks=[(ticket, n(order), 1)],
            tickets=[(ticket, n(order), 2, b"v2"), (other, n(order), 1, b"o1")],
        )
    )
    assert store.acks() == {ticket: 1}
    assert store.tickets() == {ticket: b"v2", other: b"o1"}
    # An ack only ever moves forward; an older sent version never replaces a newer one.
    store.commit(Batch(acks=[(ticket, n(order), 2)], tickets=[(ticket, n(order), 1, b"v1")]))
    store.commit(Batch(acks=[(ticket, n(order), 1)]))
    assert store.acks() == {ticket: 2}
    assert store.tickets()[ticket] == b"v2"
    store.commit(Batch(closed={n(order)}))
    assert store.acks() == {}
    assert store.tickets() == {}


# --- layout and order numbers ---------------------------------------------------------------


def test_max_seq_counts_closed_orders_too(store: Store) -> None:
    assert store.max_seq() == 0
    store.commit(Batch(snapshots={7: b"a", 9: b"b"}))
    store.commit(Batch(closed={9}))
    # A restarted kitchen numbers new orders above 9, so it never overwrites a closed row.
    assert store.max_seq() == 9


def test_a_file_from_an_older_layout_is_refused_with_what_to_do(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(db_path)
    old.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, open INTEGER, snapshot BLOB)")
    old.commit()
    old.close()
    with pytest.raises(StoreError, match="older gateway") as err:
        Store(db_path)
    assert "move the file away" in str(err.value)


def test_a_file_from_a_newer_layout_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    side = _side_connection(db_path)
    side.execute("PRAGMA user_version = 99")
    side.close()
    with pytest.raises(StoreError, match="newer gateway"):
        Store(db_path)


def test_reopening_a_current_file_is_accepted(db_path: Path) -> None:
    Store(db_path).close()
    with Store(db_path) as again:
        assert again.count("orders") == 0


def test_reads_beside_an_open_write_transaction_see_only_committed_rows(store: Store) -> None:
    """The loop thread reads while the writer thread is inside a transaction."""
    oid = uuid4()
    store._db.execute("BEGIN")
    store._db.execute("INSERT INTO replies VALUES (?, 't', x'00', 0)", (oid.bytes,))
    assert store.reply_for(oid) is None  # not committed yet, and the read did not block
    store._db.execute("COMMIT")
    assert store.reply_for(oid) == b"\x00"
