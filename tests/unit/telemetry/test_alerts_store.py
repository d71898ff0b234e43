"""The alert store: the active set and the history survive restarts, crashes and damage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gateway.config import AlertsConfig
from gateway.errors import StoreError
from gateway.telemetry.alerts import AlertBook, AlertEvent, Timing
from gateway.telemetry.alerts_store import AlertStateCorrupt, AlertStore, snapshot_of
from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
TIMING = Timing.from_config(AlertsConfig())


def opening(device: str, t: float = 0.0) -> Signal:
    return Signal("open", device, "cold_holding", Priority.HIGH, T0 + timedelta(seconds=t),
                  value=9.0, limit=8.0, text=f"{device} too warm")  # fmt: skip


class Kept:
    """A book and its store, written as the service writes them: events, then the snapshot."""

    def __init__(self, directory: Path, **kw: object) -> None:
        self.store = AlertStore(directory, fsync=True, **kw)  # type: ignore[arg-type]
        self.book = AlertBook(TIMING)

    def write(self, events: list[AlertEvent]) -> None:
        b = self.book
        self.store.write(events, snapshot_of(b.seq, T0, b.active, b.cleared))


def restored(store: AlertStore, *, rebuild: bool = False) -> AlertBook:
    """What a restarted gateway makes of the files."""
    loaded = store.load(rebuild=rebuild)
    snap = loaded.snapshot
    book = AlertBook(
        TIMING,
        active=() if snap is None else snap.active,
        cleared=() if snap is None else snap.cleared,
        seq=0 if snap is None else snap.seq,
    )
    book.replay(loaded.tail, 0.0)
    return book


def test_nothing_on_disk_is_an_empty_book(tmp_path: Path) -> None:
    loaded = AlertStore(tmp_path, fsync=False).load()
    assert (loaded.snapshot, loaded.tail, loaded.dropped) == (None, [], 0)


def test_the_active_set_survives_a_restart(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    kept.write(kept.book.apply(opening("fridge-2"), 0.0, T0))
    kept.write(list(kept.book.ack("fridge-1:cold_holding", "Marta", "door", T0).events))
    kept.store.close()
    again = restored(AlertStore(tmp_path, fsync=True))
    assert again.active == kept.book.active
    assert again.seq == 3
    assert again.get("fridge-1:cold_holding").acked_by == "Marta"  # type: ignore[union-attr]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["opened", "opened", "acknowledged"]


def test_events_written_before_a_crash_that_left_the_old_snapshot_are_replayed(
    tmp_path: Path,
) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    old = (tmp_path / "alerts.json").read_bytes()
    kept.write(kept.book.apply(opening("fridge-2"), 0.0, T0))
    (tmp_path / "alerts.json").write_bytes(old)  # the crash came between append and rename
    loaded = AlertStore(tmp_path, fsync=True).load()
    assert loaded.snapshot is not None
    assert loaded.snapshot.seq == 1
    assert [e.seq for e in loaded.tail] == [2]
    assert restored(AlertStore(tmp_path, fsync=True)).active == kept.book.active


def test_a_torn_last_line_is_dropped_and_cut_off_before_the_next_append(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    kept.store.close()
    history = tmp_path / "alerts.jsonl"
    whole = history.read_bytes()
    with history.open("ab") as f:
        f.write(b'{"seq": 2, "event": "ope')  # killed in the middle of an append
    loaded = AlertStore(tmp_path, fsync=True).load()
    assert (loaded.dropped, loaded.tail) == (1, [])
    store = AlertStore(tmp_path, fsync=True)
    assert store.repair()
    assert history.read_bytes() == whole
    assert not store.repair()
    kept.store = store
    kept.write(kept.book.apply(opening("fridge-2"), 0.0, T0))
    events, dropped = store.history()
    assert ([e.seq for e in events], dropped) == ([1, 2], 0)


def test_a_damaged_snapshot_is_a_clear_error_and_the_history_rebuilds_it(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    kept.write(kept.book.apply(opening("fridge-2"), 0.0, T0))
    kept.store.close()
    state = tmp_path / "alerts.json"
    for damage in (b"", b"\x00" * 40, b'{"format": 1, "seq": "x"}', b"[]"):
        state.write_bytes(damage)
        store = AlertStore(tmp_path, fsync=True)
        with pytest.raises(AlertStateCorrupt) as caught:
            store.load()
        assert caught.value.path == state
        assert str(state) in str(caught.value)
        assert "rebuilds the active alerts from" in str(caught.value)
    assert restored(store, rebuild=True).active == kept.book.active
    aside = store.set_aside()
    assert aside.name == "alerts.json.corrupt"
    assert not state.exists()
    assert restored(AlertStore(tmp_path, fsync=True)).active == kept.book.active


def test_a_time_without_an_offset_is_damage_not_a_crash_later(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    state = tmp_path / "alerts.json"
    data = json.loads(state.read_text())
    data["active"][0]["started_at"] = "2026-12-04T18:00:00"
    state.write_text(json.dumps(data))
    with pytest.raises(AlertStateCorrupt, match="without an offset"):
        AlertStore(tmp_path, fsync=False).load()


def test_a_damaged_line_inside_the_history_is_skipped_and_counted(tmp_path: Path) -> None:
    kept = Kept(tmp_path)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    kept.store.close()
    with (tmp_path / "alerts.jsonl").open("ab") as f:
        f.write(b"not json\n")
    kept.store = AlertStore(tmp_path, fsync=True)
    kept.write(kept.book.apply(opening("fridge-2"), 0.0, T0))
    events, dropped = kept.store.history()
    assert ([e.seq for e in events], dropped) == ([1, 2], 1)


def test_the_history_rotates_and_loading_never_needs_the_rotated_part(tmp_path: Path) -> None:
    kept = Kept(tmp_path, max_history_bytes=2000)
    for n in range(12):
        kept.write(kept.book.apply(opening(f"d{n}"), 0.0, T0))
    kept.store.close()
    assert (tmp_path / "alerts.jsonl.1").exists()
    loaded = AlertStore(tmp_path, fsync=True).load()
    assert loaded.tail == []
    events, _ = kept.store.history()
    assert len(events) >= 2
    assert [e.seq for e in events] == list(range(events[0].seq, 13))
    assert restored(AlertStore(tmp_path, fsync=True)).active == kept.book.active


def test_events_stamped_while_the_clock_is_uncertain_say_so(tmp_path: Path) -> None:
    kept = Kept(tmp_path, time_uncertain=lambda: True)
    kept.write(kept.book.apply(opening("fridge-1"), 0.0, T0))
    (line,) = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["time_uncertain"] is True
    events, dropped = kept.store.history()
    assert (len(events), dropped) == (1, 0)


def test_a_state_directory_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    store = AlertStore(blocked, fsync=True)
    with pytest.raises(StoreError, match="cannot write"):
        store.open_history()
    book = AlertBook(TIMING)
    events = book.apply(opening("fridge-1"), 0.0, T0)
    with pytest.raises(StoreError, match="cannot write"):
        store.write(events, snapshot_of(book.seq, T0, book.active, book.cleared))
