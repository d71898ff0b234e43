"""Appliances as they are in the field: sparse maps, refusals, TCP-to-RTU gateways, slow answers.

A simulator that answers every address at once hides what real controllers do (STYLE.md 21).
These pieces make pymodbus 3.16 servers on loopback behave like them:

* :func:`sparse_device`: a pymodbus ``SimDevice`` holding only the registers a profile defines,
  one ``SimData`` block per run of contiguous registers, so any other address is answered with
  exception 2 (pymodbus marks the registers between blocks invalid);
* :class:`Quirks`: the device's ``action`` hook, answering chosen exception codes for chosen
  functions or addresses (1, 4, ...) and ``busy`` (6) for its next few requests;
* :class:`ModbusGateway`: one server with several unit ids, as a Modbus TCP-to-RTU gateway with
  appliances on its serial line; a unit in ``silent`` never answers (its responses are dropped
  in the server's ``trace_packet`` hook, the others are answered), and a unit may be given
  :class:`Quirks` that answer 10 or 11;
* :class:`SlowLink`: a TCP relay in front of a server that answers each request after a
  random 300-800 ms, one request at a time, as a slow controller board does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import TYPE_CHECKING, Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.devices.profile import Table

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gateway.devices.profile import Profile

__all__ = ["ModbusGateway", "Quirks", "SlowLink", "sparse_device"]

HOST = "127.0.0.1"

#: The order of SimDevice's per-table tuple.
_ORDER = (Table.COIL, Table.DISCRETE, Table.HOLDING, Table.INPUT)
#: Function code -> table, for the quirks.
_FUNCTION_TABLE = {
    1: Table.COIL, 5: Table.COIL, 15: Table.COIL, 2: Table.DISCRETE,
    3: Table.HOLDING, 6: Table.HOLDING, 16: Table.HOLDING, 4: Table.INPUT,
}  # fmt: skip


def _runs(addresses: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted addresses as ``(start, count)`` runs of contiguous ones."""
    out: list[list[int]] = []
    for a in sorted(set(addresses)):
        if out and a == out[-1][0] + out[-1][1]:
            out[-1][1] += 1
        else:
            out.append([a, 1])
    return [(s, n) for s, n in out]


class Quirks:
    """A device's ``action``: the exception codes it answers, chosen per request.

    Attributes:
        codes: ``(table, address)`` -> code for any request touching that address;
            ``(table, None)`` -> code for any request to that table; ``(None, None)`` -> code
            for every request (a faulty device, or a gateway's 10/11 for its unit).
        writes: like ``codes``, for writes only (3: a value the device will not take).
        busy: the next requests answered with exception 6 (counts down).
        requests: requests seen (refused or not).
    """

    def __init__(
        self,
        codes: Mapping[tuple[Table | None, int | None], int] | None = None,
        *,
        writes: Mapping[tuple[Table | None, int | None], int] | None = None,
        busy: int = 0,
    ) -> None:
        """Answer ``codes`` (``writes`` for writes), and busy for the next ``busy`` requests."""
        self.codes = dict(codes or {})
        self.writes = dict(writes or {})
        self.busy = busy
        self.requests = 0

    async def action(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        count: int,
        _registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """The ``SimDevice.action`` hook: None to answer normally, else the exception."""
        self.requests += 1
        if self.busy > 0:
            self.busy -= 1
            return ExcCodes.DEVICE_BUSY
        table = _FUNCTION_TABLE.get(function_code)
        for codes in (self.codes, self.writes) if values is not None else (self.codes,):
            for a in range(address, address + count):
                if (table, a) in codes:
                    return ExcCodes(codes[table, a])
            for key in ((table, None), (None, None)):
                if key in codes:
                    return ExcCodes(codes[key])
        return None


def sparse_device(
    profile: Profile,
    unit: int = 1,
    *,
    values: Mapping[tuple[Table, int], int] | None = None,
    quirks: Quirks | None = None,
) -> SimDevice:
    """A pymodbus device defining only the registers (and bits) the profile's points cover.

    Args:
        profile: a Modbus profile.
        unit: the unit id.
        values: raw words (or 0/1 bits) by ``(table, address)``; others read 0.
        quirks: the exceptions it answers besides 2.

    Returns:
        A ``SimDevice`` that answers exception 2 for any address outside the points (register
        tables; pymodbus keeps the bits of one coil or discrete block contiguous).
    """
    vals = dict(values or {})
    covered: dict[Table, set[int]] = {t: set() for t in Table}
    for p in profile.points:
        covered[p.table].update(range(p.address, p.address + p.registers))
    tables: list[list[SimData]] = []
    for table in _ORDER:
        blocks = []
        for start, count in _runs(covered[table]):
            words = [vals.get((table, a), 0) for a in range(start, start + count)]
            if table.is_bits:
                blocks.append(
                    SimData(start, values=[bool(w) for w in words], datatype=DataType.BITS)
                )
            else:
                blocks.append(SimData(start, values=words, datatype=DataType.REGISTERS))
        if not blocks:  # SimDevice wants each table; an unused one gets an unreadable register
            blocks = [SimData(0, datatype=DataType.BITS if table.is_bits else DataType.INVALID)]
        tables.append(blocks)
    return SimDevice(
        id=unit,
        simdata=(tables[0], tables[1], tables[2], tables[3]),
        action=None if quirks is None else quirks.action,
    )


class ModbusGateway:
    """A Modbus TCP-to-RTU gateway on loopback: one port, several units on its "serial line".

    ``async with`` returns once the port accepts connections.

    Attributes:
        port: the bound port (a free one unless given).
        silent: units whose answers never come (a unit off its serial line, behind a gateway
            that does not answer for it); changeable at any time.
        answered: responses sent, per unit.
    """

    def __init__(
        self, devices: Iterable[SimDevice], *, port: int = 0, silent: Iterable[int] = ()
    ) -> None:
        """Serve ``devices`` (one per unit id) on ``port``."""
        self._devices = list(devices)
        self.port = port
        self.silent = set(silent)
        self.answered: dict[int, int] = {}
        self._server: ModbusTcpServer | None = None

    async def __aenter__(self) -> Self:
        """Listen."""
        server = ModbusTcpServer(
            self._devices, address=(HOST, self.port), trace_packet=self._trace_packet
        )
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._server = server
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening and drop the connections."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # A Modbus TCP frame: transaction (2), protocol (2), length (2), unit id (1), PDU.
        if sending and len(data) > 6:
            unit = data[6]
            if unit in self.silent:
                return b""
            self.answered[unit] = self.answered.get(unit, 0) + 1
        return data


class SlowLink:
    """A relay to ``backend_port`` that answers each request after a random delay.

    One request at a time per connection (the next one waits for the previous answer), as
    a slow controller handles them; the delay is drawn from ``delay_s`` for each request.

    Attributes:
        port: the relay's port.
        delays: the delays used so far, in order.
    """

    def __init__(
        self, backend_port: int, *, delay_s: tuple[float, float] = (0.3, 0.8), seed: int = 7
    ) -> None:
        """Relay to ``backend_port`` on loopback."""
        self._backend = backend_port
        self._delay = delay_s
        self._rand = random.Random(seed)
        self.port = 0
        self.delays: list[float] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening and end the relayed connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()  # the relay's loop then ends on its own, not cancelled
            if self._relays:
                await asyncio.wait(self._relays, timeout=2.0)
            await server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # asyncio made it; kept so that leaving can wait for it
            self._relays.add(task)
            task.add_done_callback(self._relays.discard)
        back_r, back_w = await asyncio.open_connection(HOST, self._backend)
        self._writers |= {client_w, back_w}
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while True:
                    request = await _frame(client_r)
                    back_w.write(request)
                    answer = await _frame(back_r)
                    delay = self._rand.uniform(*self._delay)
                    self.delays.append(delay)
                    await asyncio.sleep(delay)
                    client_w.write(answer)
                    await client_w.drain()
        finally:
            self._writers -= {client_w, back_w}
            back_w.close()
            client_w.close()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    """One Modbus TCP frame (the MBAP header says how long the rest is)."""
    head = await reader.readexactly(6)
    rest = await reader.readexactly(int.from_bytes(head[4:6], "big"))
    return head + rest
