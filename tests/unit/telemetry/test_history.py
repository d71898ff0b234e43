"""The history file: rows in seq order across both tables, retention, the cap, failing disks."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from gateway.errors import StoreError, StoreFull
from gateway.telemetry.history import History, HistoryReader, Row, SinkRecord
from gateway.telemetry.lanes import Cursor

if TYPE_CHECKING:
    from pathlib import Path

FRIDGE = (
    "fridge-1",
    "fridge",
    (("device", "fridge-1"), ("site", "s")),
    "fridge,device=fridge-1,site=s",
)
FRYER = ("fryer-1", "fryer", (("device", "fryer-1"), ("site", "s")), "fryer,device=fryer-1,site=s")


def reading(n: int, *, safety: bool = False, series: tuple = FRIDGE) -> Row:  # type: ignore[type-arg]
    fields = f"cabinet_temp={n}.5" if safety else f"door_open=false,n={n}i"
    return Row(series, n * 1_000_000_000, safety, fields)


def test_rows_come_back_as_lines_in_the_order_written(tmp_path: Path) -> None:
    with History(tmp_path / "t.db", "normal") as h:
        first, last = h.append([reading(1, safety=True), reading(1), reading(2, series=FRYER)])
        assert (first, last) == (1, 3)
        with HistoryReader(tmp_path / "t.db") as r:
            lines, through = r.lines(0, 3, 10)
            devices = r.devices_of(0, 3)
            assert lines == [
                "fridge,device=fridge-1,site=s cabinet_temp=1.5 1000000000",
                "fridge,device=fridge-1,site=s door_open=false,n=1i 1000000000",
                "fryer,device=fryer-1,site=s door_open=false,n=2i 2000000000",
            ]
            assert devices == ["fridge-1", "fridge-1", "fryer-1"]
            assert through == 3
            assert r.lines(1, 3, 1) == ([lines[1]], 2)
            assert r.lines(3, 3, 10) == ([], 3)
            assert r.head() == 3


def test_seq_never_goes_back_even_when_the_newest_rows_are_gone(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with History(path, "normal") as h:
        h.append([reading(n) for n in range(1, 6)])
        h.prune(10**18, [])  # everything, delivered or not
        assert h.size()[0] == 0
    with History(path, "normal") as h:
        assert h.append([reading(7)]) == (6, 6)  # a sink at 5 will not skip it


def test_retention_keeps_food_safety_rows_a_sink_lacks(tmp_path: Path) -> None:
    with History(tmp_path / "t.db", "normal") as h:
        h.append([reading(n, safety=n % 2 == 0) for n in range(1, 11)])  # seq n, at n s
        sink = Cursor(4, 4, 4)  # has seq 1-4
        lost = h.prune(8 * 1_000_000_000, [sink])  # rows read before 8 s: seq 1-7
        # Gone: 1-4 (the sink has them); 5 and 7 (not food-safety, lost); kept: 6 (food-safety).
        assert lost == {"fridge-1": 2}
        lines, _ = h.lines(0, 100, 100)
        assert [line.rsplit(" ", 1)[1] for line in lines] == [
            f"{n}000000000" for n in (6, 8, 9, 10)
        ]


def test_making_room_drops_only_other_rows_oldest_first_and_bounds_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    cap = 1_000_000  # the food-safety rows alone reach ~570 KB
    sizes = []
    with History(path, "normal") as h:
        for batch in range(40):
            base = batch * 500
            # Interleaved like a fridge: each poll is a food-safety row and an other row.
            rows = []
            for n in range(base, base + 250):
                rows += [reading(n, safety=True), reading(n)]
            h.append(rows)
            if h.used_bytes() > cap:
                h.make_room(int(cap * 0.9))
            # The file's pages, free ones included (what the disk holds once checkpointed).
            sizes.append(h._all("PRAGMA page_count")[0][0] * h._all("PRAGMA page_size")[0][0])
        safety = h._all("SELECT count(*) FROM safety")[0][0]
        other = h._all("SELECT min(at_ns), count(*) FROM other")[0]
    assert safety == 40 * 250  # every food-safety row kept
    assert other[1] < 40 * 250  # others dropped...
    assert other[0] > 0  # ...oldest first
    # Food-safety rows keep growing the file; the others do not (their emptied pages are
    # reused): over the last ten batches it grows about half as fast as over the first ten,
    # when both kinds grew it (measured: 143 KB against 254 KB).
    assert sizes[-1] - sizes[-11] < 0.75 * (sizes[9] - sizes[0])


def test_a_full_disk_writes_nothing_of_the_batch_and_keeps_the_rest(tmp_path: Path) -> None:
    with History(tmp_path / "t.db", "normal") as h:
        h.append([reading(1)])
        pages = h._all("PRAGMA page_count")[0][0]
        h._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
        with pytest.raises(StoreFull):
            h.append([reading(n) for n in range(2, 5000)])
        h._db.execute("PRAGMA max_page_count = 1000000")
        assert h.lines(0, 10**9, 10)[0] == [
            "fridge,device=fridge-1,site=s door_open=false,n=1i 1000000000"
        ]
        assert h.append([reading(2)]) == (2, 2)  # nothing of the failed batch took a number


def test_a_read_only_history_says_what_to_do(tmp_path: Path) -> None:
    with History(tmp_path / "t.db", "normal") as h:
        h.append([reading(1)])
        h._db.execute("PRAGMA query_only = 1")  # SQLite refuses writes as on a read-only mount
        with pytest.raises(StoreError, match=r"read-only.*fix: make the state directory writable"):
            h.append([reading(2)])


def test_drops_and_sink_states_are_kept(tmp_path: Path) -> None:
    with History(tmp_path / "t.db", "normal") as h:
        h.note_drops(Counter({("fridge-1", "queue full"): 3}), 100.0)
        h.note_drops(Counter({("fridge-1", "queue full"): 2}), 200.0)
        h.save_sink(SinkRecord("influx", "unavailable", "no answer", 150.0, 12))
        h.save_cursor("influx", Cursor(1, 2, 3))
        assert h.drops() == [("fridge-1", "queue full", 5, 100.0, 200.0)]
        assert h.sinks() == [SinkRecord("influx", "unavailable", "no answer", 150.0, 12)]
        assert h.cursor("influx") == Cursor(1, 2, 3)


def test_another_layout_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="move it away"):
        History(path, "normal")


def test_a_reader_opens_a_history_whose_path_has_uri_characters(tmp_path: Path) -> None:
    odd = tmp_path / "state?v=1#x %41"
    odd.mkdir()
    with History(odd / "t.db", "normal") as h:
        h.append([reading(1)])
    with HistoryReader(odd / "t.db", readonly=True) as r:
        assert r.head() == 1
