"""Guarded device writes against a real pymodbus server on loopback.

The server is a plain pymodbus datastore that accepts any write (unlike the simulated appliances,
which check ranges themselves), so the gateway's guard is the only thing between a bad request
and the registers. The server counts every request and connection it sees.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import socket
import threading
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

from gateway.cli import main
from gateway.clock import SystemClock
from gateway.contract import OrderLine, OrderRequest
from gateway.devices.actions import ActionRule, ActionService, Catalog, check_actions
from gateway.devices.audit import AuditLog
from gateway.devices.cli_commands import EXIT_REFUSED, parse_value, read_device, write_device
from gateway.devices.connection import modbus_connection
from gateway.devices.guard import Approved, Refused, WriteGuard, WriteRequest
from gateway.devices.profile import load_profiles
from gateway.devices.service import DeviceService
from gateway.events import TicketOut
from gateway.routing.kitchen import Kitchen, SendTicket
from gateway.routing.orders import OrderValidator, PricedOrder
from gateway.routing.rules import RouteTable
from gateway.site_file import load_site

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from pathlib import Path

    from pymodbus.pdu import ModbusPDU

    from gateway.config import SiteConfig

# A hang (a lost cancellation somewhere below) should fail in a minute, not at the global 300 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UNIT = 1
SIZE = 200  # registers (and bits) per table: the fryer profile uses addresses up to 153
READ, WRITE = {1, 2, 3, 4}, {5, 6, 15, 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PlainServer:
    """A pymodbus TCP server in a thread of its own, so the CLI can run its own event loop."""

    def __init__(
        self, size: int = SIZE, clamp: int | None = None, *, clear_coils: bool = False
    ) -> None:
        self.size = size
        self.clamp = clamp  # like a controller that caps a setting it was sent
        self.clear_coils = clear_coils  # like a fryer that acts on a start coil and resets it
        self.port = free_port()
        self.requests: list[int] = []  # function codes received, in order
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plain-modbus-server")
        self._stop: asyncio.Event | None = None
        self._server: ModbusTcpServer | None = None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(pdu.function_code)
            if self.clamp is not None and pdu.function_code == 6:
                pdu.registers = [min(r, self.clamp) for r in pdu.registers]
            if self.clear_coils and pdu.function_code == 5:
                pdu.bits = [False]
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        self.connections += connected

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        # ModbusSequentialDataBlock(1, ...) is register 0 on the wire in pymodbus 3.16.
        device = ModbusDeviceContext(
            hr=ModbusSequentialDataBlock(1, [0] * self.size),
            ir=ModbusSequentialDataBlock(1, [0] * self.size),
            co=ModbusSequentialDataBlock(1, [False] * self.size),
            di=ModbusSequentialDataBlock(1, [False] * self.size),
        )
        self._server = ModbusTcpServer(
            ModbusServerContext(devices={UNIT: device}),
            address=("127.0.0.1", self.port),
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
        )
        self._stop = asyncio.Event()
        await self._server.serve_forever(background=True)
        self._ready.set()
        await self._stop.wait()
        await self._server.shutdown()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the Modbus server did not start"

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _in_server(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def get(self, fc: int, address: int, count: int) -> list[int]:
        assert self._server is not None
        return [
            int(v) for v in self._in_server(self._server.async_getValues(UNIT, fc, address, count))
        ]

    def set(self, fc: int, address: int, values: list[int]) -> None:
        assert self._server is not None
        self._in_server(self._server.async_setValues(UNIT, fc, address, values))

    def snapshot(self) -> bytes:
        """Every table, byte for byte."""
        words = [w for fc in (3, 4) for w in self.get(fc, 0, SIZE)]
        bits = [b for fc in (1, 2) for b in self.get(fc, 0, SIZE)]
        return b"".join(w.to_bytes(2, "big") for w in words) + bytes(bits)


@pytest.fixture
def server() -> Iterator[PlainServer]:
    srv = PlainServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


SITE = """
[site]
id = "bistro"
name = "Bistro"

[state]
dir = "{state}"
durability = "normal"

[tables]
count = 2

[[stations]]
id = "fry"
name = "Fry"

[[groups]]
id = "fried"
names = {{ en = "Fried" }}

[[items]]
id = "fries"
group = "fried"
names = {{ en = "Fries" }}
price = 400
prep_s = 180

[[routes]]
group = "fried"
station = "fry"

[[devices]]
id = "fryer1"
profile = "fryer-2vat"
host = "127.0.0.1"
port = {port}
unit = {unit}
station = "fry"
writes = {{ vat1_set_temp = {{ min = 150.0, max = 180.0 }} }}

[[devices]]
id = "fryer-dead"
profile = "fryer-2vat"
host = "127.0.0.1"
port = {dead_port}
"""


def site_file(
    tmp_path: Path, port: int, dead_port: int | None = None, *, dead: bool = True
) -> Path:
    """The site file; ``dead=False`` leaves out the device nobody answers for."""
    path = tmp_path / "site.toml"
    text = SITE.format(
        state=tmp_path / "state", port=port, unit=UNIT, dead_port=dead_port or free_port()
    )
    if not dead:
        text = text[: text.index('[[devices]]\nid = "fryer-dead"')]
    path.write_text(text, encoding="utf-8")
    return path


def audit_lines(cfg: SiteConfig) -> list[dict[str, Any]]:
    text = (cfg.state.dir / "audit.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# --- 1,000 bad writes --------------------------------------------------------------------------

FRYER = load_profiles()["fryer-2vat"]
READ_ONLY = [p.id for p in FRYER.points if p.access == "r"]
# The effective ranges at this site: vat1_set_temp is narrowed to 150..180 by the site file.
RANGES = {p.id: (p.write.min, p.write.max) for p in FRYER.points if p.write is not None}
RANGES["vat1_set_temp"] = (150.0, 180.0)


def bad_write(rng: random.Random) -> tuple[str, str, str]:
    """A write the guard must refuse: (device, point, value text)."""
    kind = rng.randrange(7)
    point = rng.choice(list(RANGES))
    low, high = RANGES[point]
    if kind == 0:  # a device that is not in the site file
        device = rng.choice(["fryer2", "FRYER1", "fryer1 ", "", "../fryer1", "oven1", "+", "#"])
        return device, point, str(rng.uniform(low, high))
    if kind == 1:  # a point the profile does not have
        name = rng.choice(["vat3_set_temp", "vat1_set_temp ", "VAT1_COOK_TIME", "", "power"])
        return "fryer1", name, "1"
    if kind == 2:  # a read-only point, with any value
        return "fryer1", rng.choice(READ_ONLY), str(rng.randint(-5, 500))
    if kind == 3:  # out of the effective range, just or far
        gap = rng.choice([0.01, 0.5, 1, 10, 1e6, 1e300])
        above = rng.random() < 0.5
        value = high + gap if above else low - gap
        # Whole numbers are rounded away from the range, never back into it.
        whole = math.ceil(value) if above else math.floor(value)
        return "fryer1", point, repr(value) if rng.random() < 0.5 else str(whole)
    if kind == 4:  # not a finite number
        return "fryer1", point, rng.choice(["nan", "inf", "-inf", "1e400", "NaN", "-1e999"])
    if kind == 5:  # not a number at all (bits take true/false, numbers do not)
        if point.endswith("timer_start"):
            return "fryer1", point, rng.choice(["2", "-1", "0.5", "maybe", "", "1.0"])
        return "fryer1", point, rng.choice(["abc", "true", "", "0x10", "1,5", "12 s"])
    # in the profile's range but outside the site's narrower one
    return (
        "fryer1",
        "vat1_set_temp",
        str(rng.choice([rng.uniform(120, 149.9), rng.uniform(180.1, 190)])),
    )


def test_a_thousand_bad_writes_never_reach_the_device(tmp_path: Path, server: PlainServer) -> None:
    cfg = load_site(site_file(tmp_path, server.port))
    profiles = load_profiles()
    guard = WriteGuard(profiles, cfg.devices)
    rng = random.Random(20260101)
    writes = [bad_write(rng) for _ in range(1000)]
    server.set(4, 100, [3, 1752])  # something to see that would show a stray write
    before = server.snapshot()
    out, err = io.StringIO(), io.StringIO()

    async def attempt_all(audit: AuditLog) -> list[int]:
        codes = []
        for device, point, text in writes:
            code = await write_device(
                cfg, device, point, text, out, err, profiles=profiles, guard=guard, audit=audit
            )
            codes.append(code)
        return codes

    with AuditLog(cfg.state.dir / "audit.jsonl") as audit:
        codes = asyncio.run(attempt_all(audit))

    assert codes == [EXIT_REFUSED] * 1000
    assert server.snapshot() == before
    assert server.requests == []
    assert server.connections == 0
    assert guard.approved == 0
    assert sum(guard.refused.values()) == 1000
    assert set(guard.refused) >= {
        "unknown device", "unknown point", "not writable", "out of range", "not a number",
        "wrong type",
    }  # fmt: skip
    records = audit_lines(cfg)
    assert len(records) == 1000
    assert {r["outcome"] for r in records} == {"refused"}
    assert [(r["device"], r["point"]) for r in records] == [(d, p) for d, p, _ in writes]
    assert err.getvalue().count("(nothing was sent)") == 1000
    assert out.getvalue() == ""

    # ... and a good write after all of them is not held back by them.
    code = asyncio.run(
        write_device(
            cfg, "fryer1", "vat1_cook_time", "90", out, err, profiles=profiles, guard=guard
        )
    )
    assert code == 0
    assert server.get(3, 1, 1) == [90]
    assert server.requests == [6, 3]  # one write, one read-back
    assert guard.approved == 1
    assert [r["outcome"] for r in audit_lines(cfg)[-2:]] == ["approved", "written"]
    assert audit_lines(cfg)[-1]["detail"] == "read back 90"
    assert "fryer1.vat1_cook_time = 90 s (written, read back)" in out.getvalue()


# --- the gateway's own write path: DeviceService.write, and actions from tickets --------------


class Collect:
    """A DeviceOutbox that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def send(self, event: object) -> None:
        self.events.append(event)


def writes_seen(server: PlainServer) -> list[int]:
    return [fc for fc in server.requests if fc in WRITE]


async def until(pred: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def test_a_thousand_bad_writes_through_the_device_service(
    tmp_path: Path, server: PlainServer
) -> None:
    cfg = load_site(site_file(tmp_path, server.port, dead=False))
    profiles = load_profiles()
    guard = WriteGuard(profiles, cfg.devices)
    rng = random.Random(31337)
    writes = [bad_write(rng) for _ in range(1000)]
    fryer = profiles["fryer-2vat"]

    async def main(audit: AuditLog) -> None:
        async with DeviceService(
            cfg, profiles, Collect(), guard, audit, SystemClock(), connect=modbus_connection
        ) as devices:
            await until(lambda: bool(server.requests), "the first poll")
            before = server.snapshot()
            for device, point, text in writes:
                value = parse_value(fryer.point(point), text)
                verdict = await devices.write(WriteRequest(device, point, value, "test"))
                assert isinstance(verdict, Refused), verdict
            assert server.snapshot() == before
            assert writes_seen(server) == []  # the polls went on; no write ever left
            good = await devices.write(WriteRequest("fryer1", "vat1_cook_time", 120, "test"))
            assert isinstance(good, Approved)
            assert server.get(3, 1, 1) == [120]
            assert writes_seen(server) == [6]

    with AuditLog(cfg.state.dir / "audit.jsonl") as audit:
        asyncio.run(main(audit))
    assert sum(guard.refused.values()) == 1000
    assert guard.approved == 1
    outcomes = [r["outcome"] for r in audit_lines(cfg)]
    assert outcomes == ["refused"] * 1000 + ["approved", "written"]


def test_a_fry_ticket_starts_the_fryer_once(tmp_path: Path, server: PlainServer) -> None:
    cfg = load_site(site_file(tmp_path, server.port, dead=False))
    profiles = load_profiles()
    rules = [
        ActionRule(station="fry", items=("fries",), device="fryer1", point="vat1_cook_time",
                   value_from="prep_s"),
        ActionRule(station="fry", group="fried", device="fryer1", point="vat1_timer_start",
                   value=True),
    ]  # fmt: skip
    assert check_actions(rules, cfg, profiles) == []
    guard = WriteGuard(profiles, cfg.devices)
    clock = SystemClock()

    async def main(audit: AuditLog) -> None:
        kitchen = Kitchen(cfg.courses, None)
        lines = [OrderLine(line_id="L1", item="fries", qty=2)]
        req = OrderRequest(order_id=uuid4(), table="T1", items=lines, placed_at=clock.now())
        priced = OrderValidator(cfg, RouteTable(cfg)).validate(req)
        assert isinstance(priced, PricedOrder)
        async with (
            DeviceService(
                cfg, profiles, Collect(), guard, audit, clock, connect=modbus_connection
            ) as devices,
            ActionService(rules, Catalog.from_site(cfg), devices.write, clock) as actions,
        ):
            effects = kitchen.accept(priced, "tablet1", clock.now())
            tickets = [e.ticket for e in effects if isinstance(e, SendTicket)]
            assert len(tickets) == 1
            for _ in range(3):  # sent, then resent twice before the screen acked
                actions.submit(TicketOut(tickets[0]))
                await asyncio.sleep(0.05)
            await until(lambda: actions.stats.approved == 2, "both actions")
            await asyncio.sleep(0.1)  # room for a duplicate that should not come
        assert actions.stats.duplicates == 4

    with AuditLog(cfg.state.dir / "audit.jsonl") as audit:
        asyncio.run(main(audit))
    assert server.get(3, 1, 1) == [180]  # the fries' prep time, as the cook time
    assert server.get(1, 0, 1) == [1]  # and the timer started
    assert writes_seen(server) == [6, 5]
    records = [(r["point"], r["source"], r["outcome"]) for r in audit_lines(cfg)]
    assert records == [
        ("vat1_cook_time", "action:0", "approved"),
        ("vat1_cook_time", "action:0", "written"),
        ("vat1_timer_start", "action:1", "approved"),
        ("vat1_timer_start", "action:1", "written"),
    ]


# --- good writes and reads through the command line --------------------------------------------


def test_in_range_writes_reach_the_device_and_are_audited(
    tmp_path: Path, server: PlainServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site_file(tmp_path, server.port)
    assert main(["device", "write", "fryer1", "vat1_set_temp", "175.5", "--config", str(path)]) == 0
    assert server.get(3, 0, 1) == [1755]
    assert (
        main(["device", "write", "fryer1", "vat1_timer_start", "true", "--config", str(path)]) == 0
    )
    assert server.get(1, 0, 1) == [1]
    # The start coil is self-clearing: written, not read back.
    assert server.requests == [6, 3, 5]
    out = capsys.readouterr().out
    assert "fryer1.vat1_set_temp = 175.5 °C (written, read back)" in out
    assert "fryer1.vat1_timer_start: written (the device clears it itself)" in out
    records = audit_lines(load_site(path))
    assert [(r["point"], r["value"], r["source"], r["outcome"]) for r in records] == [
        ("vat1_set_temp", 175.5, "cli", "approved"),
        ("vat1_set_temp", 175.5, "cli", "written"),
        ("vat1_timer_start", True, "cli", "approved"),
        ("vat1_timer_start", True, "cli", "written"),
    ]
    assert records[0]["detail"] == "words 0x06db"


def test_a_refused_write_through_the_command_line(
    tmp_path: Path, server: PlainServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site_file(tmp_path, server.port)
    before = server.snapshot()
    # In the profile's 120..190 but outside this site's 150..180.
    assert main(["device", "write", "fryer1", "vat1_set_temp", "185", "--config", str(path)]) == 3
    err = capsys.readouterr().err
    assert err == (
        "refused: fryer1.vat1_set_temp = 185: out of range 150..180 (nothing was sent)\n"
    )
    assert server.snapshot() == before
    assert server.connections == 0
    assert audit_lines(load_site(path))[0]["outcome"] == "refused"


def test_read_prints_decoded_values(
    tmp_path: Path, server: PlainServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.set(3, 0, [1755, 90])  # vat1 set temperature, cook time
    server.set(4, 100, [3, 1752, 42, 215, 0b01])  # mode, oil temp, remaining, TPM, flags
    server.set(4, 115, [0, 12345])  # oil hours, u32 scaled 0.01
    server.set(4, 150, [0x4546, 0x3256, 0x312E, 0x3000])  # "EF2V1.0"
    path = site_file(tmp_path, server.port)
    assert main(["device", "read", "fryer1", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert out.splitlines()[0].startswith("fryer1 (Example Foodservice EF-2V) at 127.0.0.1:")
    assert "175.5 °C" in rows["vat1_set_temp"]
    assert " 90 s" in rows["vat1_cook_time"]
    assert "3 (frying)" in rows["vat1_mode"]
    assert "175.2 °C" in rows["vat1_oil_temp"]
    assert "21.5 %" in rows["vat1_oil_tpm"]
    assert "true" in rows["vat1_basket_lifted"]
    assert "false" in rows["vat1_heating"]
    assert "123.45 h" in rows["vat1_oil_hours"]
    assert "EF2V1.0" in rows["firmware"]
    lines = out.splitlines()
    assert lines[1].split() == ["point", "value", "name"]  # no error column: nothing failed
    table = lines[2 : 2 + len(FRYER.points)]
    assert [line.split()[0] for line in table] == [p.id for p in FRYER.points]
    # Aligned: every name starts under the header's "name", every unit after its value.
    at = lines[1].index("name")
    assert all(line[at:] == p.name for line, p in zip(table, FRYER.points, strict=True))
    assert server.requests  # read in planned blocks, never written
    assert not set(server.requests) & WRITE


def test_read_uses_the_async_command_too(tmp_path: Path, server: PlainServer) -> None:
    cfg = load_site(site_file(tmp_path, server.port))
    out = io.StringIO()
    assert asyncio.run(read_device(cfg, "fryer1", out)) == 0
    assert "vat1_mode" in out.getvalue()


def test_read_shows_the_points_a_device_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = PlainServer(size=140)  # no input registers 150..153: the firmware string
    server.start()
    try:
        server.set(4, 100, [3])
        path = site_file(tmp_path, server.port)
        # The device works without its firmware string: what it has is read, and exit 0.
        assert main(["device", "read", "fryer1", "--config", str(path)]) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "3 (frying)" in rows["vat1_mode"]  # the other reads still count
    header = lines[1]
    assert header.split() == ["point", "value", "error", "name"]
    firmware = rows["firmware"]
    # The error in its own column, under its header, not in the value column.
    at = header.index("error")
    assert firmware[at:].startswith("not defined by the device (exception 2)")
    assert firmware[:at].split() == ["firmware"]
    assert (
        "not defined by the device: firmware; fix: remove those [[points]] from fryer-2vat" in out
    )


def test_a_setting_the_device_clamped_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = PlainServer(clamp=300)
    server.start()
    try:
        path = site_file(tmp_path, server.port)
        argv = ["device", "write", "fryer1", "vat1_cook_time", "600", "--config", str(path)]
        assert main(argv) == 1
        assert server.get(3, 1, 1) == [300]
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert err == "gateway: error: fryer1: vat1_cook_time reads back 300 after the write\n"
    record = audit_lines(load_site(path))[-1]
    assert (record["outcome"], record["detail"]) == ("written", "read back 300, not the value sent")


def test_a_self_clearing_start_coil_is_written_without_a_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fryer resets its start coil once the timer runs: reading it back proves nothing."""
    server = PlainServer(clear_coils=True)
    server.start()
    try:
        path = site_file(tmp_path, server.port)
        argv = ["device", "write", "fryer1", "vat1_timer_start", "1", "--config", str(path)]
        assert main(argv) == 0, capsys.readouterr().err
        assert server.requests[-1] == 5  # the write, and no read after it
        assert server.get(1, 0, 1) == [0]
    finally:
        server.stop()
    record = audit_lines(load_site(path))[-1]
    assert (record["outcome"], record["detail"]) == ("written", "self-clearing: not read back")


# --- devices that do not answer ----------------------------------------------------------------


def test_read_of_a_dead_device_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site_file(tmp_path, free_port())
    assert main(["device", "read", "fryer-dead", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("gateway: error: fryer-dead: not connected: ")


def test_read_of_a_silent_device_times_out_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        path = site_file(tmp_path, free_port(), dead_port=silent.getsockname()[1])
        assert main(["device", "read", "fryer-dead", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    # One patient try more (a slow controller may answer in 0.8 s), then one line.
    assert err == "gateway: error: fryer-dead: no answer within 2 s\n"


def test_an_approved_write_to_a_dead_device_is_audited_as_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site_file(tmp_path, free_port())
    code = main(["device", "write", "fryer-dead", "vat1_cook_time", "60", "--config", str(path)])
    assert code == 1
    assert capsys.readouterr().err.startswith("gateway: error: fryer-dead: not connected")
    records = audit_lines(load_site(path))
    assert [r["outcome"] for r in records] == ["approved", "failed"]
    assert "cannot connect" in records[1]["detail"]
