"""HaccpRecorder as a service on real files: restarts, crashes, durability, overflow, retention."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli import effective_config
from gateway.clock import ManualClock, SystemClock
from gateway.config import HaccpConfig
from gateway.devices.events import DeviceReadings
from gateway.errors import ConfigError, StoreError
from gateway.site_file import parse_site
from gateway.telemetry.haccp import Chain, Draft
from gateway.telemetry.haccp_service import HaccpRecorder, food_safety_units
from gateway.telemetry.haccp_store import HaccpStore, read_records, verify
from gateway.telemetry.schema import DeviceSchema
from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.clock import Clock
    from gateway.telemetry.haccp import Sealed

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
UNITS = {"fridge-1": {"cabinet_temp": "°C"}}


def recorder(directory: Path, clock: Clock, alerts: list[str] | None = None,
             **more: Any) -> HaccpRecorder:  # fmt: skip
    seen = alerts if alerts is not None else []
    return HaccpRecorder(HaccpConfig(**more.pop("cfg", {})), directory, "full", UNITS, clock,
                         site="trattoria",
                         alert=lambda level, kind, _t, _s: seen.append(
                             kind if level != "clear" else f"clear {kind}"),
                         **more)  # fmt: skip


def fridge(at: datetime, value: float) -> DeviceReadings:
    return DeviceReadings("fridge-1", at, {"cabinet_temp": value, "door_open": False})


def kinds(directory: Path) -> list[str]:
    return [str(r["kind"]) for r in read_records(directory)]


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)


def test_the_chain_continues_across_a_restart_with_the_stop_recorded_as_a_gap(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)

    async def run(minutes: int) -> HaccpRecorder:
        async with recorder(tmp_path, clock) as rec:
            start = clock.now()
            for m in range(minutes):
                rec.reading(fridge(start + timedelta(minutes=m), 3.0 + m / 100))
            clock.advance(minutes * 60)
        return rec

    first = asyncio.run(run(40))
    clock.advance(600)  # the gateway is down for 10 minutes
    second = asyncio.run(run(20))
    verdict = verify(tmp_path)
    assert verdict.ok, verdict
    assert verdict.head_seq == second.stats.head > first.stats.head
    # 18:45's window (18:37:30-18:52:30) is written by both runs, each with what it saw.
    assert kinds(tmp_path) == [
        "gateway_start", "interval", "interval", "interval", "interval", "gap_start",
        "gap", "gateway_start", "interval", "interval", "interval", "gap_start",
    ]  # fmt: skip
    records = list(read_records(tmp_path))
    stop, gap = records[5], records[6]
    assert (stop["scope"], stop["reason"]) == ("gateway", "gateway stopped")
    assert (gap["scope"], gap["reason"], gap["seconds"]) == ("gateway", "gateway stopped", 600)
    assert gap["since"] == stop["at"] == "2026-12-04T18:40:00.000000+00:00"
    # The part window at each stop is written, cut at the stop; the next run's begins later.
    mark = "2026-12-04T18:45:00.000000+00:00"
    assert (records[4]["at"], records[4]["to"]) == (mark, "2026-12-04T18:40:00.000000+00:00")
    assert (records[8]["at"], records[8]["from"]) == (mark, "2026-12-04T18:50:00.000000+00:00")
    assert records[-2]["to"] == "2026-12-04T19:10:00.000000+00:00"


def test_after_a_crash_the_torn_record_is_set_aside_and_the_gap_says_so(tmp_path: Path) -> None:
    with HaccpStore(tmp_path, fsync=True) as store:
        chain = Chain()
        first = Draft("gateway_start", T0)
        lines: list[Sealed] = [chain.seal(first), chain.seal(Draft("interval", T0, {"n": 1}))]
        while lines:
            del lines[: store.append(lines)]
    with next(tmp_path.glob("*.jsonl")).open("ab") as f:
        f.write(b'{"at":"2026-12-04T18:15')  # the power went mid-write
    clock = ManualClock(T0 + timedelta(hours=1))

    async def run() -> None:
        async with recorder(tmp_path, clock):
            pass

    asyncio.run(run())
    assert verify(tmp_path).ok
    records = list(read_records(tmp_path))
    assert [r["kind"] for r in records[2:5]] == ["repair", "gap", "gateway_start"]
    assert records[2]["bytes"] == 23
    assert records[3]["reason"].startswith("the gateway ended without a clean stop")
    assert records[3]["seconds"] == 3600


def test_an_action_is_on_disk_before_its_future_says_so(tmp_path: Path) -> None:
    async def run() -> None:
        async with recorder(tmp_path, SystemClock()) as rec:
            sig = Signal("open", "fridge-1", "cold_holding", Priority.HIGH, T0,
                         point="cabinet_temp", value=7.5, limit=5.0, food_safety=True)  # fmt: skip
            seq = await rec.signal(sig)
            assert seq is not None
            assert kinds(tmp_path)[seq - 1] == "excursion_start"
            later = T0 + timedelta(minutes=5)
            seq = await rec.action("fridge-1:cold_holding", "fridge-1", "anna",
                                   "moved stock to fridge-2", later)  # fmt: skip
            assert seq is not None
            record = list(read_records(tmp_path))[seq - 1]
            assert (record["by"], record["note"]) == ("anna", "moved stock to fridge-2")
            other = Signal("open", "fridge-1", "trend", Priority.LOW, T0)  # not food safety
            assert await rec.signal(other) is None
            assert await rec.availability("fryer-1", "offline", T0) is None  # not a unit

    asyncio.run(run())


def test_a_stop_during_a_write_waits_for_it_and_writes_nothing_twice(tmp_path: Path) -> None:
    async def run() -> None:
        async with recorder(tmp_path, SystemClock()) as rec:
            store = rec._store
            assert store is not None
            real = store.append

            def slow(records: Any, **kw: Any) -> int:
                time.sleep(0.3)  # on the writer's thread
                return real(records, **kw)

            store.append = slow  # type: ignore[method-assign]
            rec.action("a:b", "fridge-1", "anna", "checked", T0)
            await asyncio.sleep(0.05)  # the write is in flight when the stop begins

    asyncio.run(run())
    assert verify(tmp_path).ok
    assert kinds(tmp_path).count("action") == 1


def test_past_its_bound_intervals_are_refused_and_the_loss_is_recorded_as_a_gap(
    tmp_path: Path,
) -> None:
    alerts: list[str] = []

    async def run() -> HaccpRecorder:
        rec = recorder(tmp_path, SystemClock(), alerts, max_pending=4, retry_s=0.05,
                       cfg={"interval_min": 1})  # fmt: skip
        async with rec:
            base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
            store = rec._store
            assert store is not None
            real = store.append

            def full(records: Any, **kw: Any) -> int:
                raise StoreError("the disk is full: cannot write the HACCP record")

            store.append = full  # type: ignore[method-assign]
            done = rec.action("fridge-1:x", "fridge-1", "anna", "kept anyway", base)
            await until(lambda: rec.stats.write_errors >= 1)
            for m in range(12):  # 11 intervals close
                rec.reading(fridge(base + timedelta(minutes=m, seconds=1), 3.0))
            assert rec.stats.refused["interval"] == 8  # the action and 3 intervals wait
            assert rec.action("fridge-1:x", "fridge-1", "ben", "also kept", base) is not None
            assert not done.done()
            store.append = real  # type: ignore[method-assign]
            assert await done is not None
            await until(lambda: rec.stats.failing is None)
        return rec

    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    rec = asyncio.run(run())
    assert alerts == ["haccp_write_failed", "haccp_records_lost", "clear haccp_write_failed"]
    assert verify(tmp_path).ok
    records = list(read_records(tmp_path))
    lost = [r for r in records if r["kind"] == "gap" and "could not be kept" in str(r["reason"])]
    assert len(lost) == 1
    assert str(lost[0]["reason"]).startswith("8 records could not be kept: the disk is full")
    # The refused ones are the intervals of the marks 3..10 minutes on; the gap spans them.
    first, last = base + timedelta(minutes=3), base + timedelta(minutes=10)
    assert lost[0]["since"] == first.isoformat(timespec="microseconds")
    assert lost[0]["until"] == last.isoformat(timespec="microseconds")
    # What waited went first (the second action was taken past the bound), then the gap
    # that says what was lost, once there was room again.
    assert [r["kind"] for r in records] == [
        "gateway_start", "action", "interval", "interval", "interval", "action", "gap",
        "interval", "gap_start",
    ]  # fmt: skip
    assert [r["note"] for r in records if r["kind"] == "action"] == ["kept anyway", "also kept"]
    assert rec.stats.head == records[-1]["seq"]


def test_ticks_close_an_interval_no_reading_closed_and_silence_becomes_a_gap(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)

    async def run() -> None:
        async with recorder(tmp_path, clock, tick_s=10.0) as rec:
            rec.reading(fridge(T0 + timedelta(seconds=30), 3.0))
            await clock.run(30 * 60)  # no reading since: 18:00's window closes, 18:15 is empty
            await until(lambda: "gap_start" in kinds(tmp_path))
            assert kinds(tmp_path) == ["gateway_start", "interval", "gap_start"]

    asyncio.run(run())
    records = list(read_records(tmp_path))
    assert records[2]["at"] == "2026-12-04T18:00:30.000000+00:00"  # since the last reading
    assert records[-2]["reason"] == "no reading (until the gateway stopped)"
    assert records[-2]["seconds"] == 30 * 60 - 30


def test_retention_retires_one_old_segment_a_day_and_the_chain_verifies(tmp_path: Path) -> None:
    with HaccpStore(tmp_path, fsync=False) as store:
        chain = Chain()
        old = [chain.seal(Draft("interval", datetime(2026, month, 5, tzinfo=UTC)))
               for month in range(1, 6) for _ in range(3)]  # January to May  # fmt: skip
        while old:
            del old[: store.append(old)]
    # 90 days before 1 June is 3 March: January and February are due, March (5 March) not yet.
    clock = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))

    async def run() -> None:
        async with recorder(tmp_path, clock, tick_s=3600.0) as rec:
            await until(lambda: rec.stats.retired == 1)
            await clock.run(86_400)  # the next day: the next one
            await until(lambda: rec.stats.retired == 2)
            await clock.run(86_400)  # 3 June: March is not yet 90 days older than the newest
            await asyncio.sleep(0.2)
            assert rec.stats.retired == 2

    asyncio.run(run())
    names = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert names[0] == "haccp-2026-03.jsonl"
    verdict = verify(tmp_path)
    assert verdict.ok, verdict
    assert verdict.retired == 6


def test_events_outside_a_run_are_counted_not_recorded(tmp_path: Path) -> None:
    async def run() -> HaccpRecorder:
        rec = recorder(tmp_path, SystemClock())
        rec.reading(fridge(T0, 3.0))
        assert await rec.action("a:b", "fridge-1", "anna", "too early", T0) is None
        return rec

    assert asyncio.run(run()).stats.ignored == 2
    assert not tmp_path.joinpath("haccp.lock").exists()


def test_food_safety_units_come_from_the_schemas() -> None:
    schemas = {
        "fridge-1": DeviceSchema("fridge-1", "fridge", (), frozenset({"cabinet_temp"}),
                                 {"cabinet_temp": "°C", "evaporator_temp": "°C"}),
        "fryer-1": DeviceSchema("fryer-1", "fryer", (), frozenset(), {"oil": "°C"}),
    }  # fmt: skip
    assert food_safety_units(schemas) == UNITS


# --- [haccp] in the site file ------------------------------------------------------------------


def site(**haccp: Any) -> dict[str, Any]:
    return {
        "site": {"id": "s", "name": "n"}, "state": {"dir": "/var/lib/gw"},
        "tables": {"count": 1}, "stations": [{"id": "c", "name": "C"}],
        "groups": [{"id": "g", "names": {"en": "g"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "c"}],
    } | ({"haccp": haccp} if haccp else {})  # fmt: skip


def test_haccp_config_defaults_and_where_the_record_lives() -> None:
    cfg = parse_site(site())
    assert (cfg.haccp.interval_min, cfg.haccp.keep_days, cfg.haccp.dir) == (15, 90, None)
    assert cfg.haccp.directory(cfg.state.dir) == Path("/var/lib/gw/haccp")
    moved = effective_config(cfg, {"GATEWAY_STATE_DIR": "/srv/gw"})
    assert moved.haccp.directory(moved.state.dir) == Path("/srv/gw/haccp")
    relative = parse_site(site(dir="records", keep_days=365, interval_min=10)).haccp
    assert relative.directory(Path("/var/lib/gw")) == Path("/var/lib/gw/records")
    assert HaccpConfig(dir=Path("/mnt/usb/haccp")).directory(Path("/x")) == Path("/mnt/usb/haccp")


@pytest.mark.parametrize(
    ("haccp", "message"),
    [
        ({"keep_days": 30}, "keep_days = 30 is too short: food-safety records are kept 90 days"),
        ({"interval_min": 7}, "interval_min = 7 does not divide the hour"),
        ({"interval_min": 0}, "greater than or equal to 1"),
        ({"every": 5}, "Extra inputs are not permitted"),
    ],
)
def test_haccp_config_errors_name_the_key_and_the_fix(haccp: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_site(site(**haccp))
    (problem,) = caught.value.problems
    assert problem.key.startswith("haccp")
    assert message in problem.message


def test_records_made_while_the_clock_is_not_trusted_say_so(tmp_path: Path) -> None:
    asyncio.run(_one_run(tmp_path, time_uncertain=lambda: True))
    for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines():
        record = json.loads(line)
        assert (record["v"], record["time_uncertain"]) == (1, True)
    assert verify(tmp_path).records == 2


async def _one_run(directory: Path, **more: Any) -> None:
    async with recorder(directory, ManualClock(T0), **more):
        pass


def test_a_retirement_cut_short_is_said_and_blocks_nothing_and_finishes_later(
    tmp_path: Path,
) -> None:
    with HaccpStore(tmp_path, fsync=False) as store:
        chain = Chain()
        old = [chain.seal(Draft("interval", datetime(2026, month, 5, tzinfo=UTC)))
               for month in range(1, 6)]  # fmt: skip
        while old:
            del old[: store.append(old)]
    clock, alerts = ManualClock(datetime(2026, 6, 1, tzinfo=UTC)), []

    async def run() -> None:
        rec = recorder(tmp_path, clock, alerts, tick_s=3600.0)
        real = HaccpStore.finish_retirement

        def refuse(self: HaccpStore, *_: Any) -> None:
            raise StoreError("cannot retire haccp-2026-01.jsonl: Read-only file system")

        HaccpStore.finish_retirement = refuse  # type: ignore[method-assign]
        try:
            async with rec:
                await until(lambda: "haccp_retention" in alerts)
                assert await rec.action("a:b", "fridge-1", "anna", "after it", clock.now())
                HaccpStore.finish_retirement = real  # type: ignore[method-assign]
                await clock.run(86_400)
                await until(lambda: rec.stats.retired == 1)
        finally:
            HaccpStore.finish_retirement = real  # type: ignore[method-assign]

    asyncio.run(run())
    retired = [r for r in read_records(tmp_path) if r["kind"] == "retired"]
    assert [r["segment"] for r in retired] == ["haccp-2026-01.jsonl"] * 2  # said twice, done once
    assert not (tmp_path / "haccp-2026-01.jsonl").exists()
    verdict = verify(tmp_path)
    assert verdict.ok, verdict
    assert verdict.retired == 1
