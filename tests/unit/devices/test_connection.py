"""ModbusConnection (gateway.devices.connection) on a fake pymodbus client: error translation,
cancellation never swallowed, reconnect with backoff, writes ahead of polls."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import uvloop
from pymodbus.exceptions import ConnectionException, ModbusIOException

from gateway.devices import connection as connection_module
from gateway.devices.connection import ModbusConnection, Priority
from gateway.devices.profile import Table
from gateway.errors import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnavailable


def run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def answer(registers: list[int]) -> SimpleNamespace:
    return SimpleNamespace(registers=registers, bits=[], isError=lambda: False)


class Fake:
    """Stands in for AsyncModbusTcpClient; ``respond`` decides each request's fate."""

    made: ClassVar[list[Fake]] = []
    connect_ok = True
    respond: Any = None

    def __init__(self, host: str, **_: Any) -> None:
        self.up = False
        self.ctx = SimpleNamespace(transport=None)
        self.requests: list[tuple[str, int]] = []
        Fake.made.append(self)

    @property
    def connected(self) -> bool:
        return self.up

    async def connect(self) -> bool:
        self.up = Fake.connect_ok
        return self.up

    def close(self) -> None:
        self.up = False

    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> Any:
        self.requests.append(("read", address))
        return await Fake.respond(self, address, count)

    async def write_register(self, address: int, value: int, *, device_id: int) -> Any:
        self.requests.append(("write", address))
        return await Fake.respond(self, address, 1)

    async def write_registers(self, address: int, values: list[int], *, device_id: int) -> Any:
        self.requests.append(("write16", address))
        return await Fake.respond(self, address, len(values))


@pytest.fixture(autouse=True)
def fake_client(monkeypatch: pytest.MonkeyPatch) -> None:
    Fake.made, Fake.connect_ok = [], True
    Fake.respond = None
    monkeypatch.setattr(connection_module, "AsyncModbusTcpClient", Fake)


def conn(**kw: Any) -> ModbusConnection:
    return ModbusConnection("10.0.0.5", 502, **({"backoff_s": (0.2, 1.0)} | kw))


async def read(c: ModbusConnection, address: int = 0, **kw: Any) -> list[int]:
    return await c.read(Table.HOLDING, address, 2, unit=1, device="fryer1",
                        timeout_s=kw.pop("timeout_s", 0.05), **kw)  # fmt: skip


def test_an_answer_is_returned_and_refusals_carry_their_code() -> None:
    async def respond(_: Fake, address: int, count: int) -> Any:
        if address == 7:
            return SimpleNamespace(isError=lambda: True, exception_code=2, function_code=0x83)
        return answer([1, 2, 3])

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        assert await c.connect()
        assert await read(c) == [1, 2]
        with pytest.raises(DeviceRefused) as info:
            await read(c, 7)
        assert (info.value.code, info.value.function) == (2, 3)
        assert c.stats.requests == 2
        assert c.stats.refused == 1

    run(main())


def test_no_answer_is_a_timeout_and_a_silent_connection_is_reopened() -> None:
    async def respond(*_: Any) -> Any:
        await asyncio.sleep(10)

    async def main() -> None:
        Fake.respond = respond
        c = conn(silent_limit=2)
        await c.connect()
        with pytest.raises(DeviceTimeout):
            await read(c)
        assert c.connected
        with pytest.raises(DeviceTimeout):
            await read(c)
        assert not c.connected  # dropped after two silent requests...
        with pytest.raises(DeviceTimeout):
            await read(c)
        assert len(Fake.made) == 2  # ...and reopened at once by the next request

    run(main())


def test_a_connection_error_makes_the_device_unavailable() -> None:
    async def respond(fake: Fake, *_: Any) -> Any:
        fake.up = False
        raise ConnectionException("peer gone")

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        await c.connect()
        with pytest.raises(DeviceUnavailable, match="peer gone"):
            await read(c)
        assert c.stats.losses == 1

    run(main())


def test_connect_failures_back_off_without_touching_the_network() -> None:
    async def main() -> None:
        Fake.connect_ok = False
        Fake.respond = lambda *_: answer([0, 0])
        c = conn()
        assert not await c.connect()
        for _ in range(5):
            with pytest.raises(DeviceUnavailable):
                await read(c)
        assert len(Fake.made) == 1  # inside the backoff: no new attempt
        loop = asyncio.get_running_loop()
        assert 0.1 <= c.retry_at - loop.time() <= 0.2
        await asyncio.sleep(c.retry_at - loop.time() + 0.01)
        Fake.connect_ok = True

        async def ok(*_: Any) -> Any:
            return answer([5, 6])

        Fake.respond = ok
        assert await read(c) == [5, 6]
        assert len(Fake.made) == 2
        assert c.retry_at == 0.0

    run(main())


def test_a_cancellation_that_races_an_answer_is_not_swallowed() -> None:
    # What Python 3.11's asyncio.wait_for does inside pymodbus: the answer arrives in the same
    # loop iteration as the cancellation, and wait_for returns the answer.
    pending: list[asyncio.Future[Any]] = []

    async def respond(*_: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        pending.append(fut)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.done():
                return fut.result()  # the 3.11 wait_for race: cancellation dropped
            raise

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        await c.connect()
        task = asyncio.create_task(read(c, timeout_s=5))
        while not pending:
            await asyncio.sleep(0)
        pending[0].set_result(answer([1, 2]))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    run(main())


def test_pymodbus_turning_a_cancellation_into_an_io_error_is_undone() -> None:
    async def respond(*_: Any) -> Any:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ModbusIOException("Request cancelled outside library.") from None

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        await c.connect()
        with pytest.raises(DeviceTimeout):  # our own timeout is still a timeout
            await read(c, timeout_s=0.01)
        task = asyncio.create_task(read(c, timeout_s=5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_other_pymodbus_errors_are_device_errors() -> None:
    async def respond(*_: Any) -> Any:
        raise ModbusIOException("request uses device id=1 but received 2")

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        await c.connect()
        with pytest.raises(DeviceError, match="unusable answer"):
            await read(c)

    run(main())


def test_writes_waiting_for_the_connection_go_before_waiting_polls() -> None:
    async def respond(fake: Fake, *_: Any) -> Any:
        await asyncio.sleep(0.005)
        return answer([0, 0])

    async def main() -> list[tuple[str, int]]:
        Fake.respond = respond
        c = conn()
        await c.connect()
        async with asyncio.TaskGroup() as tg:
            for address in range(1, 4):
                tg.create_task(read(c, address))
            await asyncio.sleep(0)
            tg.create_task(c.write(Table.HOLDING, 9, [1], unit=1, device="fryer1", timeout_s=1))
            tg.create_task(read(c, 4, priority=Priority.WRITE))  # a write's read-back
        return Fake.made[0].requests

    assert run(main()) == [("read", 1), ("write", 9), ("read", 4), ("read", 2), ("read", 3)]


def test_read_only_tables_cannot_be_written() -> None:
    async def main() -> None:
        c = conn()
        with pytest.raises(ValueError, match="input"):
            await c.write(Table.INPUT, 0, [1], unit=1, device="d", timeout_s=1)

    run(main())


def test_one_dead_unit_behind_a_modbus_gateway_does_not_reopen_the_connection() -> None:
    async def respond(_: Fake, address: int, count: int) -> Any:
        if address == 3:  # unit 3's reads (the address stands for the unit here)
            await asyncio.sleep(10)
        return answer([1, 2])

    async def main() -> None:
        Fake.respond = respond
        c = conn(silent_limit=2)
        await c.connect()
        assert await read(c, 1) == [1, 2]  # unit 1 heard
        for _ in range(5):  # unit 3's jobs, back to back: silence, but only of unit 3
            with pytest.raises(DeviceTimeout):
                await c.read(Table.HOLDING, 3, 2, unit=3, device="dead", timeout_s=0.02)
        assert c.connected
        assert len(Fake.made) == 1
        assert await read(c, 1) == [1, 2]

    run(main())


def test_a_register_write_the_device_lacks_function_6_for_is_sent_as_16() -> None:
    async def respond(fake: Fake, address: int, count: int) -> Any:
        if fake.requests[-1][0] == "write":
            return SimpleNamespace(isError=lambda: True, exception_code=1, function_code=0x86)
        return answer([])

    async def main() -> None:
        Fake.respond = respond
        c = conn()
        await c.connect()
        await c.write(Table.HOLDING, 4, [7], unit=1, device="d", timeout_s=0.05)
        assert Fake.made[0].requests == [("write", 4), ("write16", 4)]

    run(main())


def mbap(tid: int, unit: int) -> bytes:
    return tid.to_bytes(2, "big") + b"\x00\x00\x00\x06" + bytes([unit]) + b"\x03\x00\x00\x00\x01"


def test_an_answer_after_its_timeout_tells_the_next_timeout_the_device_is_slow() -> None:
    sent: list[int] = []

    async def respond(fake: Fake, *_: Any) -> Any:
        # What pymodbus does: the frame goes out through the hook, then the answer is awaited.
        sent.append(len(sent) + 1)
        c._trace_packet(sending=True, data=mbap(sent[-1], 3))
        await asyncio.sleep(10)

    c = conn(silent_limit=10)

    async def main() -> None:
        Fake.respond = respond
        await c.connect()
        with pytest.raises(DeviceTimeout) as first:
            await c.read(Table.HOLDING, 0, 1, unit=3, device="oven", timeout_s=0.05)
        assert first.value.late_s is None  # nothing known yet: maybe dead
        await asyncio.sleep(0.05)
        c._trace_packet(sending=False, data=mbap(sent[-1], 3))  # its answer, after the timeout
        with pytest.raises(DeviceTimeout) as second:
            await c.read(Table.HOLDING, 0, 1, unit=3, device="oven", timeout_s=0.05)
        assert second.value.late_s is not None
        assert 0.09 <= second.value.late_s < 0.5  # sent, 0.05 s timeout, 0.05 s more
        assert "answered an earlier request after" in second.value.detail
        with pytest.raises(DeviceTimeout) as third:  # no late answer to that one: silent again
            await c.read(Table.HOLDING, 0, 1, unit=3, device="oven", timeout_s=0.05)
        assert third.value.late_s is None

    run(main())


def test_a_late_exception_reply_is_not_taken_for_a_slow_answer() -> None:
    # A TCP-to-RTU gateway answers "target did not respond" (11) after its own serial timeout,
    # maybe after ours: that says the unit is dead, not slow, so its timeout must not grow.
    sent: list[int] = []

    async def respond(fake: Fake, *_: Any) -> Any:
        sent.append(len(sent) + 1)
        c._trace_packet(sending=True, data=mbap(sent[-1], 3))
        await asyncio.sleep(10)

    c = conn(silent_limit=10)

    async def main() -> None:
        Fake.respond = respond
        await c.connect()
        with pytest.raises(DeviceTimeout):
            await c.read(Table.HOLDING, 0, 1, unit=3, device="dead", timeout_s=0.05)
        exception_11 = sent[-1].to_bytes(2, "big") + b"\x00\x00\x00\x03\x03\x83\x0b"
        c._trace_packet(sending=False, data=exception_11)
        with pytest.raises(DeviceTimeout) as second:
            await c.read(Table.HOLDING, 0, 1, unit=3, device="dead", timeout_s=0.05)
        assert second.value.late_s is None

    run(main())
