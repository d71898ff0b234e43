"""The recorder: every reading on disk before it counts; a full or read-only disk loses nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.clock import SystemClock
from gateway.config import TelemetryConfig
from gateway.devices.events import DeviceReadings
from gateway.telemetry.history import HistoryReader
from gateway.telemetry.lineproto import parse_field_set
from gateway.telemetry.recorder import Note, Recorder
from gateway.telemetry.schema import DeviceSchema

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
FRIDGE = DeviceSchema("fridge-1", "fridge", (("device", "fridge-1"), ("site", "s")),
                      frozenset({"cabinet_temp"}), {"cabinet_temp": "°C"})  # fmt: skip
FRYER = DeviceSchema("fryer-1", "fryer", (("device", "fryer-1"), ("site", "s")), frozenset(), {})


def recorder(path: Path, alerts: list[tuple[str, str]], **cfg: object) -> Recorder:
    return Recorder(
        TelemetryConfig(**cfg),  # type: ignore[arg-type]
        path, "normal", {"fridge-1": FRIDGE, "fryer-1": FRYER}, SystemClock(),
        alert=lambda level, kind, _t, _s: alerts.append((level, kind)), retry_s=0.2,
    )  # fmt: skip


def fridge(n: int) -> DeviceReadings:
    return DeviceReadings("fridge-1", T0 + timedelta(seconds=n),
                          {"cabinet_temp": 3.0 + n / 10, "door_open": n % 2 == 0})  # fmt: skip


def fryer(n: int) -> DeviceReadings:
    return DeviceReadings("fryer-1", T0 + timedelta(seconds=n), {"oil": 175.5, "n": n})


async def until(check: object, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_a_reading_is_split_into_food_safety_and_other_rows(tmp_path: Path) -> None:
    path, alerts = tmp_path / "t.db", []

    async def main() -> Recorder:
        async with recorder(path, alerts) as rec:
            rec.take(fridge(1))
            rec.take(fryer(1))
            await until(lambda: rec.stats.written == 2)
            return rec

    rec = asyncio.run(main())
    assert rec.stats.rows == 3
    with HistoryReader(path) as h:
        rows = list(h.query("fridge-1", 0, 2**62))
        assert [(safety, parse_field_set(f)) for _, safety, f in rows] == [
            (True, {"cabinet_temp": 3.1}),
            (False, {"door_open": False}),
        ]
        assert rows[0][0] == int(fridge(1).at.timestamp()) * 1_000_000_000  # when it was read
        lines, _ = h.lines(0, 10, 10)
        assert "fryer,device=fryer-1,site=s oil=175.5,n=1i " in lines[2]
    assert alerts == []


def test_readings_taken_up_to_the_stop_are_written(tmp_path: Path) -> None:
    path = tmp_path / "t.db"

    async def main() -> None:
        async with recorder(path, []) as rec:
            for n in range(5000):
                rec.take(fryer(n))  # no await: all still queued when the stop begins

    asyncio.run(main())
    with HistoryReader(path) as h:
        assert h.head() == 5000


def test_a_full_disk_keeps_readings_queued_and_writes_them_once_there_is_room(
    tmp_path: Path,
) -> None:
    path, alerts = tmp_path / "t.db", []

    async def main() -> Recorder:
        async with recorder(path, alerts) as rec:
            rec.take(fryer(0))
            await until(lambda: rec.stats.written == 1)
            db = rec._history._db  # type: ignore[union-attr]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL
            for n in range(1, 2000):
                rec.take(fryer(n))
            await until(lambda: rec.stats.write_errors >= 1)
            assert rec.stats.failing is not None
            assert "is full; fix: free space" in rec.stats.failing
            assert rec.queued == 1999  # nothing lost, nothing half-written
            db.execute("PRAGMA max_page_count = 1073741823")
            await until(lambda: rec.stats.written == 2000, timeout_s=15)
            return rec

    rec = asyncio.run(main())
    assert rec.stats.failing is None
    assert alerts == [("critical", "telemetry_write_failed"), ("clear", "telemetry_write_failed")]
    with HistoryReader(path) as h:
        lines, _ = h.lines(0, 10_000, 10_000)
    assert [int(parse_field_set(line.split(" ")[1])["n"]) for line in lines] == list(range(2000))


def test_past_its_bound_the_queue_refuses_other_readings_but_keeps_food_safety_ones(
    tmp_path: Path,
) -> None:
    path, alerts = tmp_path / "t.db", []

    async def main() -> Recorder:
        async with recorder(path, alerts, queue_readings=100) as rec:
            rec.take(fryer(0))
            await until(lambda: rec.stats.written == 1)
            rec._history._db.execute("PRAGMA query_only = 1")  # type: ignore[union-attr]
            for n in range(1, 151):
                rec.take(fryer(n))  # 100 queued, then 50 refused
            for n in range(1, 101):
                rec.take(fridge(n))  # food-safety: taken past the bound (up to twice it)
            for n in range(101, 111):
                rec.take(fridge(n))  # past twice the bound: refused too
            assert rec.stats.refused == {"fryer-1": 50, "fridge-1": 10}
            await until(lambda: rec.stats.write_errors >= 1)
            assert "read-only" in (rec.stats.failing or "")
            rec._history._db.execute("PRAGMA query_only = 0")  # type: ignore[union-attr]
            await until(lambda: rec.queued == 0, timeout_s=15)
            return rec

    rec = asyncio.run(main())
    assert rec.stats.written == 1 + 100 + 100
    kinds = [k for _, k in alerts]
    assert kinds.count("telemetry_refused") == 1  # once per outage
    assert ("critical", "telemetry_write_failed") in alerts
    with HistoryReader(path) as h:
        drops = {(d, n) for d, _r, n, _f, _l in h.drops()}
    assert drops == {("fryer-1", 50), ("fridge-1", 10)}  # the refusals are on disk too


def test_the_cap_drops_other_readings_first_and_alerts_once(tmp_path: Path) -> None:
    path, alerts = tmp_path / "t.db", []

    async def main() -> Recorder:
        async with recorder(path, alerts, max_mb=0.2, food_safety_cap_mb=0.1) as rec:
            for n in range(6000):
                rec.take(fridge(n))
            await until(lambda: rec.stats.written == 6000)
            await rec.housekeep(prune=False)
            await rec.housekeep(prune=False)
            return rec

    rec = asyncio.run(main())
    assert rec.stats.dropped["fridge-1"] > 0
    with HistoryReader(path) as h:
        assert h._all("SELECT count(*) FROM safety")[0][0] == 6000  # every HACCP record kept
    assert [k for _, k in alerts].count("telemetry_cap") == 1
    assert ("critical", "telemetry_food_safety_cap") in alerts


def test_a_note_is_written_beside_the_readings_under_its_own_series(tmp_path: Path) -> None:
    path = tmp_path / "t.db"

    async def main() -> None:
        async with recorder(path, []) as rec:
            rec.note(Note("fridge-1", "availability", {"site": "s", "device": "fridge-1"},
                          T0, {"state": "offline", "online": False}))  # fmt: skip
            rec.take(fridge(1))
            await until(lambda: rec.stats.written == 2)

    asyncio.run(main())
    with HistoryReader(path) as h:
        lines, _ = h.lines(0, 10, 10)
        devices = h.devices_of(0, 10)
    assert lines[0] == (
        'availability,device=fridge-1,site=s state="offline",online=false '
        f"{int(T0.timestamp()) * 1_000_000_000}"
    )
    assert devices[:1] == ["fridge-1"]


def test_housekeeping_beside_the_writer_writes_every_reading_once(tmp_path: Path) -> None:
    # Both run on threads over one connection: one at a time, or a prune's BEGIN would roll
    # back a commit in flight and its rows come twice or not at all.
    path = tmp_path / "t.db"

    async def main() -> Recorder:
        async with recorder(path, [], max_mb=0.05) as rec:
            for round_ in range(20):
                for n in range(300):
                    rec.take(fryer(round_ * 300 + n))
                await asyncio.gather(rec.housekeep(prune=True), asyncio.sleep(0.01))
            await until(lambda: rec.queued == 0)
            return rec

    rec = asyncio.run(main())
    assert rec.stats.write_errors == 0
    with HistoryReader(path) as h:
        assert h.head() == 6000  # every reading got one number, none twice
