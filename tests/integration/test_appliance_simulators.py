"""The simulated appliances over real Modbus TCP: a plain pymodbus client + the gateway's codec.

Every shipped Modbus profile is read the way the gateway reads it (the planner's merged reads,
``decode_point``) and must decode to the state put into the simulator; physics and faults are
checked over the wire.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Self

import pytest
import uvloop
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from gateway.devices.codec import decode_point, encode_point
from gateway.devices.plan import plan_reads
from gateway.devices.profile import PointType, Profile, Table, load_profiles
from simulators.appliances import ApplianceFleet, Fault, FaultWindow, SimulatedAppliance
from simulators.appliances.cold_room import ColdRoomModel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from typing import Any

    from gateway.devices.codec import Value
    from gateway.devices.profile import ModbusPoint

pytestmark = pytest.mark.integration

PROFILES = load_profiles()
MODBUS = [p for p in PROFILES.values() if p.profile.protocol == "modbus"]


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop, as the gateway does (its Server class differs from asyncio's)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


class Reader:
    """A plain pymodbus client reading whole profiles the way the gateway plans it."""

    def __init__(self, appliance: SimulatedAppliance, timeout_s: float = 0.5) -> None:
        self.profile = appliance.profile
        self.client = AsyncModbusTcpClient(
            "127.0.0.1", port=appliance.port, timeout=timeout_s, retries=0
        )

    async def __aenter__(self) -> Self:
        assert await self.client.connect(), "could not connect"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.close()

    async def read_all(self) -> dict[str, Value]:
        settings = self.profile.settings
        values: dict[str, Value] = {}
        for block in plan_reads(self.profile.points, settings):
            words = await self.read(block.table, block.start, block.count)
            for p in block.points:
                values[p.id] = decode_point(p, block.words_for(p, words), settings)
        return values

    async def read(self, table: Table, start: int, count: int) -> list[int]:
        c = self.client
        call: Callable[..., Awaitable[Any]] = {
            Table.HOLDING: c.read_holding_registers,
            Table.INPUT: c.read_input_registers,
            Table.COIL: c.read_coils,
            Table.DISCRETE: c.read_discrete_inputs,
        }[table]
        r = await call(start, count=count, device_id=1)
        assert not r.isError(), r
        return [int(b) for b in r.bits] if table.is_bits else list(r.registers)

    async def value(self, point_id: str) -> Value:
        p = self.profile.point(point_id)
        assert p is not None
        words = await self.read(p.table, p.address, p.registers)
        return decode_point(p, words[: p.registers], self.profile.settings)

    async def write(self, point_id: str, value: Value) -> Any:
        p = self.profile.point(point_id)
        assert p is not None
        words = encode_point(p, value, self.profile.settings)
        if p.table is Table.COIL:
            return await self.client.write_coil(p.address, bool(words[0]), device_id=1)
        return await self.client.write_registers(p.address, words, device_id=1)


def sample_value(p: ModbusPoint, n: int) -> Value:
    """A distinct, representable value for the n-th point of a profile."""
    if p.type is PointType.STRING:
        return f"S{n}"[: 2 * p.length]
    if p.type is PointType.BIT:
        return n % 2 == 0
    if p.type in (PointType.F32, PointType.F64):
        return -40.25 + n
    raw = {PointType.I16: -(n + 3), PointType.I32: -70_000 - n}.get(p.type, 1000 + n)
    if p.type is PointType.U32:
        raw = 70_000 + n
    if p.scale == 1 and p.offset == 0:
        return raw
    return raw * p.scale + p.offset


def same(got: Value, expected: Value) -> bool:
    if isinstance(expected, float) and not isinstance(expected, bool):
        return isinstance(got, float) and abs(got - expected) < 1e-6
    return got == expected and type(got) is type(expected)


@pytest.mark.parametrize("profile", MODBUS, ids=lambda p: p.profile.id)
def test_known_state_decodes_to_the_same_engineering_values(profile: Profile) -> None:
    async def main() -> None:
        async with SimulatedAppliance(profile, physics=False) as app:
            expected: dict[str, Value] = {}
            for n, p in enumerate(profile.points):
                value = sample_value(p, n)
                app.bank.set(p.id, value)
                expected[p.id] = value
            async with Reader(app) as reader:
                got = await reader.read_all()
        wrong = {k: (got[k], v) for k, v in expected.items() if not same(got[k], v)}
        assert not wrong, wrong

    run(main())


@pytest.mark.parametrize("profile", MODBUS, ids=lambda p: p.profile.id)
def test_live_physics_reads_match_the_simulators_own_state(profile: Profile) -> None:
    async def main() -> None:
        async with SimulatedAppliance(profile, speed=600) as app:
            await asyncio.sleep(0.15)
            app.pause_physics()
            async with Reader(app) as reader:
                got = await reader.read_all()
            assert got == {p.id: app.bank.get(p.id) for p in profile.points}

    run(main())


def test_fridge_warms_with_the_door_open() -> None:
    async def main() -> None:
        app = SimulatedAppliance(PROFILES["walkin-fridge"], speed=1200, tick_s=0.02)
        async with app, Reader(app) as reader:
            start = await reader.value("cabinet_temp")
            assert isinstance(start, float)
            assert 2.0 < start < 5.0
            app.model_as(ColdRoomModel).open_door()
            deadline = time.monotonic() + 5.0
            while (now := await reader.value("cabinet_temp")) < start + 2.0:  # type: ignore[operator]
                assert time.monotonic() < deadline, f"still {now} °C"
                await asyncio.sleep(0.05)
            assert await reader.value("door_open") is True

    run(main())


def test_gateway_writes_land_and_the_physics_follows() -> None:
    async def main() -> None:
        app = SimulatedAppliance(PROFILES["fryer-2vat"], speed=1000, tick_s=0.02)
        async with app, Reader(app) as reader:
            r = await reader.write("vat1_set_temp", 150.0)
            assert not r.isError()
            assert await reader.value("vat1_set_temp") == pytest.approx(150.0)
            assert not (await reader.write("vat2_cook_time", 900)).isError()
            r = await reader.write("vat2_timer_start", value=True)
            assert not r.isError()
            await asyncio.sleep(0.05)
            assert await reader.value("vat2_basket_lifted") is False
            assert 0 < await reader.value("vat2_time_remaining") < 900  # type: ignore[operator]
            assert await reader.value("vat2_timer_start") is False  # cleared by the fryer
            deadline = time.monotonic() + 5.0
            while await reader.value("vat1_oil_temp") > 151.0:  # type: ignore[operator]
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            r = await reader.write("vat1_set_temp", 200.0)  # above the 120..190 write range
            assert r.isError()
            assert r.exception_code == 3
            assert await reader.value("vat1_set_temp") == pytest.approx(150.0)
            r = await reader.client.write_register(5, 1, device_id=1)  # no point there
            assert r.isError()
            assert r.exception_code == 2
            assert ("vat1_set_temp", pytest.approx(150.0)) in app.bank.writes

    run(main())


def test_wrong_unit_id_gets_exception_4() -> None:
    async def main() -> None:
        app = SimulatedAppliance(PROFILES["tank-level"], unit=7, physics=False)
        async with app, Reader(app) as reader:
            r = await reader.client.read_input_registers(0, count=2, device_id=1)
            assert r.isError()
            assert r.exception_code == 4
            r = await reader.client.read_input_registers(0, count=2, device_id=7)
            assert not r.isError()

    run(main())


def test_hang_is_a_black_hole_until_woken() -> None:
    async def main() -> None:
        app = SimulatedAppliance(PROFILES["walkin-fridge"], physics=False)
        async with app, Reader(app, timeout_s=0.3) as reader:
            assert await reader.value("setpoint") == 0.0
            app.hang()
            with pytest.raises(ModbusIOException):
                await reader.value("setpoint")
            with socket.create_connection(("127.0.0.1", app.port), timeout=1):
                pass  # still accepts connections
            with pytest.raises(ModbusIOException):
                await reader.write("setpoint", 4.0)  # lost, like its answer
            app.wake()
            assert await reader.value("setpoint") == 0.0
            assert not app.bank.writes

    run(main())


def test_gone_refuses_connections_then_comes_back_on_the_same_port() -> None:
    async def main() -> None:
        async with ApplianceFleet(
            SimulatedAppliance(PROFILES["walkin-fridge"], device_id=f"fridge-{n}", physics=False)
            for n in (1, 2)
        ) as fleet:
            app = fleet["fridge-2"]
            port = app.port
            await app.go_away()
            assert app.gone
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            async with Reader(fleet["fridge-1"]) as other:  # the neighbour is unaffected
                assert await other.value("setpoint") == 0.0
            await app.come_back()
            assert app.port == port
            async with Reader(app) as reader:
                assert await reader.value("setpoint") == 0.0
            assert [d.port for d in fleet.instances()] == [fleet["fridge-1"].port, port]

    run(main())


def test_scheduled_faults_start_and_end_on_time() -> None:
    async def main() -> None:
        faults = [
            FaultWindow(Fault.GONE, 0.1, 0.3),
            FaultWindow(Fault.STUCK, 0.0, point="cabinet_temp"),
            FaultWindow(Fault.COMPRESSOR, 0.0),
        ]
        app = SimulatedAppliance(PROFILES["walkin-fridge"], speed=3000, tick_s=0.02, faults=faults)
        async with app:
            await asyncio.sleep(0.05)
            async with Reader(app) as reader:
                frozen = await reader.value("cabinet_temp")
                assert await reader.value("compressor_fault") is True
            await asyncio.sleep(0.15)
            assert app.gone
            await asyncio.sleep(0.35)
            assert not app.gone
            async with Reader(app) as reader:
                assert await reader.value("cabinet_temp") == frozen  # stuck, though it warmed
                assert app.model_as(ColdRoomModel).cabinet_c > frozen + 0.5
                await app.clear(Fault.STUCK, "cabinet_temp")
                await asyncio.sleep(0.05)
                assert await reader.value("cabinet_temp") != frozen

    run(main())
