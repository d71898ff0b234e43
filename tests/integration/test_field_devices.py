"""Appliances as they are in the field, over real Modbus TCP on loopback: sparse register maps,
each Modbus exception code, a TCP-to-RTU gateway with a silent unit, a slow controller.

The devices are real pymodbus 3.16 servers (``simulators.appliances.field``): ``SimDevice``s
holding only the registers their profile defines (exception 2 elsewhere), quirks answering
exceptions 1, 3, 4, 6, 10 and 11, a relay answering in 300-800 ms. The gateway side is the real
device service with its real connections.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import statistics
from typing import TYPE_CHECKING, Any

import pytest
import uvloop

from gateway.clock import SystemClock
from gateway.contract import DeviceState
from gateway.devices.audit import AuditLog
from gateway.devices.cli_commands import read_device
from gateway.devices.connection import modbus_connection
from gateway.devices.events import AvailabilityChanged, DeviceReadings
from gateway.devices.guard import WriteGuard, WriteRequest
from gateway.devices.profile import Table, load_profiles
from gateway.devices.service import DeviceService, Tuning
from gateway.errors import DeviceRefused
from gateway.site_file import parse_site
from simulators.appliances import SimulatedAppliance
from simulators.appliances.field import ModbusGateway, Quirks, SlowLink, sparse_device

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path

    from gateway.config import SiteConfig
    from gateway.devices.events import DeviceEvent

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FAST = Tuning(connect_timeout_s=0.5, reconnect_s=(0.05, 0.3), backoff_max_s=0.8, poll_tick_s=0.0)
FRYER = load_profiles()["fryer-2vat"]

SMALL = """
[profile]
id = "small"
vendor = "test"
model = "four registers"
kind = "fridge"
protocol = "modbus"

[modbus]
poll_s = {poll_s}
timeout_s = 0.2

[[points]]
id = "a"
name = "a"
table = "holding"
address = 0
type = "u32"

[[points]]
id = "b"
name = "b"
table = "holding"
address = 2
type = "u32"
"""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def site(tmp_path: Path, devices: list[dict[str, Any]], poll_s: float = 0.2) -> SiteConfig:
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "small.toml").write_text(SMALL.format(poll_s=poll_s))
    return parse_site({
        "site": {"id": "field", "name": "field"},
        "state": {"dir": str(tmp_path / "state"), "durability": "normal"},
        "tables": {"count": 1},
        "stations": [{"id": "fry", "name": "Fry"}],
        "groups": [{"id": "g", "names": {"en": "g"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "i"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "fry"}],
        "devices": devices,
        "devices_profiles": [str(profiles)],
    })  # fmt: skip


class Outbox:
    def __init__(self) -> None:
        self.events: list[tuple[float, DeviceEvent]] = []

    def send(self, event: DeviceEvent) -> None:
        self.events.append((asyncio.get_running_loop().time(), event))

    def readings(self, device: str) -> list[tuple[float, DeviceReadings]]:
        return [
            (t, e) for t, e in self.events if isinstance(e, DeviceReadings) and e.device == device
        ]

    def changes(self, device: str) -> list[AvailabilityChanged]:
        return [
            e for _, e in self.events if isinstance(e, AvailabilityChanged) and e.device == device
        ]


def service(
    cfg: SiteConfig, outbox: Outbox, audit: AuditLog, tuning: Tuning = FAST
) -> DeviceService:
    profiles = load_profiles(cfg.devices_profiles)
    guard = WriteGuard(profiles, cfg.devices)
    return DeviceService(
        cfg, profiles, outbox, guard, audit, SystemClock(), connect=modbus_connection, tuning=tuning
    )


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def fryer_values() -> dict[tuple[Table, int], int]:
    return {(Table.HOLDING, 0): 1755, (Table.HOLDING, 1): 90, (Table.HOLDING, 10): 1800,
            (Table.INPUT, 100): 3, (Table.INPUT, 101): 1752}  # fmt: skip


def fryer(id_: str, port: int, unit: int = 1) -> dict[str, Any]:
    return {"id": id_, "profile": "fryer-2vat", "host": HOST, "port": port, "unit": unit}


# --- sparse maps -----------------------------------------------------------------------------


def test_a_sparse_fryer_is_read_whole_learnt_once_and_remembered_across_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.devices.service")

    async def once() -> tuple[Outbox, DeviceService]:
        async with ModbusGateway([sparse_device(FRYER, 1, values=fryer_values())]) as gw:
            cfg = site(tmp_path, [fryer("fryer-1", gw.port)])
            outbox = Outbox()
            with AuditLog(tmp_path / "audit.jsonl") as audit:
                async with service(cfg, outbox, audit) as svc:
                    await until(lambda: len(outbox.readings("fryer-1")) >= 3, 5, "readings")
                    await asyncio.sleep(1.2)
        return outbox, svc

    outbox, svc = run(once())
    # Every point the device has, in the 1 s readings: the merged holding read 0..11 was
    # refused, split at its hole 2..9 and retried at once, in the same poll.
    # (The first poll of the 1 s job: the other jobs start at random phases of their own.)
    first = next(e.values for _, e in outbox.readings("fryer-1") if "vat1_mode" in e.values)
    every_second = {p.id for p in FRYER.points if p.poll_s is None}
    assert set(first) == every_second
    assert first["vat1_set_temp"] == pytest.approx(175.5)
    assert first["vat1_cook_time"] == 90
    assert first["vat2_set_temp"] == pytest.approx(180.0)
    assert first["vat1_mode"] == 3
    assert [c.state for c in outbox.changes("fryer-1")][:1] == [DeviceState.ONLINE]
    assert DeviceState.DEGRADED not in [c.state for c in outbox.changes("fryer-1")]
    stats = svc.poll_stats()["fryer-1"]
    assert stats.failed == 0
    assert stats.refused == 1  # once, and never again
    saved = json.loads((tmp_path / "state" / "device_maps.json").read_text())
    assert saved["devices"]["fryer-1"]["avoid"] == {"holding": list(range(2, 10))}
    said = [r.getMessage() for r in caplog.records if "fryer-1" in r.getMessage()]
    assert len(said) == 1
    assert "holding registers 2..9" in said[0]
    assert "max_gap = 0" in said[0]
    # A restart: planned around the map from the first poll, not one refusal.
    caplog.clear()
    _, again = run(once())
    assert again.poll_stats()["fryer-1"].refused == 0
    assert not [r for r in caplog.records if "fryer-1" in r.getMessage()]


def test_gateway_device_read_of_a_sparse_fryer_reads_every_point(tmp_path: Path) -> None:
    """The issue's case, as a new user tries it: no profile edit, every point read, exit 0."""

    async def main() -> tuple[int, str]:
        async with SimulatedAppliance(FRYER, device_id="fryer-1", sparse=True) as app:
            cfg = site(tmp_path, [fryer("fryer-1", app.port)])
            out = io.StringIO()
            code = await read_device(cfg, "fryer-1", out)
            return code, out.getvalue()

    code, text = run(main())
    assert code == 0, text
    lines = text.splitlines()
    assert lines[1].split() == ["point", "value", "name"]  # no errors: no error column
    rows = {line.split()[0]: line for line in lines[2 : 2 + len(FRYER.points)]}
    assert set(rows) == {p.id for p in FRYER.points}
    assert "reads across holding 2..9 are refused" in text
    assert "max_gap = 0 under [modbus] in fryer-2vat" in text


# --- what each exception code means --------------------------------------------------------


def test_each_modbus_exception_gets_what_it_means(tmp_path: Path) -> None:
    quirks = {
        1: Quirks({(Table.INPUT, None): 1}),  # no function 4: its input points are named
        2: Quirks({(None, None): 4}),  # a faulty device
        3: Quirks(busy=3),  # busy for its first three requests
        4: Quirks({(None, None): 11}),  # behind the gateway, not answering it
        5: Quirks({(None, None): 10}),  # no path to it at all
        6: Quirks(writes={(Table.HOLDING, 1): 3}),  # refuses a cook time it does not take
    }

    async def main() -> tuple[Outbox, DeviceService, Exception | None]:
        devices = [
            sparse_device(FRYER, u, values=fryer_values(), quirks=q) for u, q in quirks.items()
        ]
        async with ModbusGateway(devices) as gw:
            cfg = site(tmp_path, [fryer(f"fryer{u}", gw.port, u) for u in quirks])
            outbox = Outbox()
            with AuditLog(tmp_path / "audit.jsonl") as audit:
                async with service(cfg, outbox, audit) as svc:
                    await until(
                        lambda: all(svc.availability(f"fryer{u}") is DeviceState.ONLINE
                                    for u in (1, 3, 6)), 5, "the good ones online",
                    )  # fmt: skip
                    await until(lambda: svc.poll_stats()["fryer2"].faults >= 3, 5, "faults")
                    refused: Exception | None = None
                    try:
                        await svc.write(WriteRequest("fryer6", "vat1_cook_time", 120, "test"))
                    except DeviceRefused as err:
                        refused = err
                    conn_stats = [p.connection.stats for p in svc._pollers]  # type: ignore[attr-defined]
        assert len(conn_stats) == 1  # six units, one connection
        assert conn_stats[0].losses == 0  # no unit's answer tore it down
        assert conn_stats[0].connects == 1
        return outbox, svc, refused

    outbox, svc, refused = run(main())
    stats = svc.poll_stats()
    # 1: the input table is not there; the holding registers are read; named once.
    maps = svc.device_maps()
    assert {p for p, code in maps["fryer1"].undefined.items() if code == 1} == {
        p.id for p in FRYER.points if p.table is Table.INPUT
    }
    assert outbox.readings("fryer1")[-1][1].values["vat1_set_temp"] == pytest.approx(175.5)
    # 4: faulty: degraded, then offline, with the reason; counted.
    changes = outbox.changes("fryer2")
    assert [c.state for c in changes][:1] == [DeviceState.OFFLINE]
    assert "internal failure" in changes[0].reason
    assert stats["fryer2"].faults >= 3
    # 6 (busy): asked again, never a failure, online from its first full poll.
    assert stats["fryer3"].busy == 3
    assert stats["fryer3"].failed == 0
    assert [c.state for c in outbox.changes("fryer3")][:1] == [DeviceState.ONLINE]
    # 10 and 11: those units offline at once, with the gateway's reason.
    for unit, code in ((4, 11), (5, 10)):
        first = outbox.changes(f"fryer{unit}")[0]
        assert first.state is DeviceState.OFFLINE
        assert f"exception {code}" in first.reason
        assert stats[f"fryer{unit}"].unreachable >= 1
    # 3: a write refused by the device, audited as failed with what exception 3 means.
    assert isinstance(refused, DeviceRefused)
    assert refused.code == 3
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["approved", "failed"]
    assert "exception 3 (illegal data value: the device refused the value" in records[1]["detail"]


# --- a Modbus TCP-to-RTU gateway with a silent unit --------------------------------------------


def test_a_silent_unit_behind_a_tcp_gateway_does_not_stall_the_others(tmp_path: Path) -> None:
    interval = 0.2

    async def main() -> tuple[Outbox, DeviceService, Any]:
        small = load_profiles(site(tmp_path, []).devices_profiles)["small"]
        devices = [sparse_device(small, u, values={(Table.HOLDING, 1): u}) for u in (1, 2, 3, 4)]
        async with ModbusGateway(devices, silent={4}) as gw:
            cfg = site(tmp_path, [
                {"id": f"u{u}", "profile": "small", "host": HOST, "port": gw.port, "unit": u}
                for u in (1, 2, 3, 4)
            ], poll_s=interval)  # fmt: skip
            outbox = Outbox()
            with AuditLog(tmp_path / "audit.jsonl") as audit:
                async with service(cfg, outbox, audit) as svc:
                    await asyncio.sleep(3.0)
                    (poller,) = svc._pollers  # type: ignore[attr-defined]
                    return outbox, svc, poller.connection.stats

    outbox, svc, conn = run(main())
    assert svc.availability("u4") is DeviceState.OFFLINE
    assert outbox.readings("u4") == []
    for u in (1, 2, 3):
        times = [t for t, _ in outbox.readings(f"u{u}")]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 11, (u, len(times))
        # Held back at most by one 0.2 s timeout of the silent unit now and then.
        assert max(gaps) <= interval + 0.2 + 0.1, (u, sorted(gaps)[-3:])
        assert statistics.median(gaps) == pytest.approx(interval, abs=0.05)
        assert [c.state for c in outbox.changes(f"u{u}")][:1] == [DeviceState.ONLINE]
    assert conn.losses == 0  # its silence never reopened the shared connection
    assert conn.connects == 1
    assert svc.poll_stats()["u4"].polls <= 8  # backed off, not asked every 0.2 s


# --- a slow controller -------------------------------------------------------------------------


def test_a_slow_controller_is_polled_at_the_rate_it_can_take(tmp_path: Path) -> None:
    async def main() -> tuple[Outbox, DeviceService, int, str]:
        small = load_profiles(site(tmp_path, []).devices_profiles)["small"]
        async with ModbusGateway([sparse_device(small, 1)]) as gw, SlowLink(gw.port) as slow:
            cfg = site(tmp_path, [
                {"id": "oven", "profile": "small", "host": HOST, "port": slow.port},
            ], poll_s=0.5)  # fmt: skip
            outbox = Outbox()
            with AuditLog(tmp_path / "audit.jsonl") as audit:
                async with service(cfg, outbox, audit) as svc:
                    await asyncio.sleep(6.0)
            out = io.StringIO()
            code = await read_device(cfg, "oven", out)
            return outbox, svc, code, out.getvalue()

    outbox, svc, code, text = run(main())
    stats = svc.poll_stats()["oven"]
    # Answers take 0.3-0.8 s against a profile timeout of 0.2 s: the timeout followed them.
    assert stats.timeout_s >= 0.8
    assert 0.3 <= stats.answer_s <= 0.85
    assert stats.failed <= 3  # while its pace was learnt, then none
    # Offline until its first answer, then online until the service stopped (and said so).
    states = [c.state for c in outbox.changes("oven")]
    assert states == [DeviceState.OFFLINE, DeviceState.ONLINE, DeviceState.OFFLINE]
    assert len(outbox.readings("oven")) >= 5
    # Asked every 0.5 s, it takes longer: slots skipped, the rate it can take shown.
    assert stats.skipped > 0
    assert stats.interval_s > 0.5
    assert code == 0, text
    assert "slowest answer" in text


def test_gateway_device_read_of_a_device_refusing_everything_says_check_the_unit(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[int, str]:
        wrong = sparse_device(FRYER, 1, quirks=Quirks({(None, None): 2}))
        async with ModbusGateway([wrong]) as gw:
            cfg = site(tmp_path, [fryer("fryer-1", gw.port)])
            out = io.StringIO()
            return await read_device(cfg, "fryer-1", out), out.getvalue()

    code, text = run(main())
    assert code == 1
    assert text.splitlines()[-1] == "fryer-1 refuses every point: check its unit id and its profile"
