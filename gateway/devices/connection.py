"""One Modbus TCP connection (host, port): serialised requests, timeouts, reconnects, errors.

This is the only module that imports pymodbus, and where its exceptions become
``gateway.errors.DeviceError`` (STYLE.md 11):

* no answer within the request's timeout -> :class:`DeviceTimeout`;
* no connection, or a connection that closed -> :class:`DeviceUnavailable`;
* a Modbus exception response -> :class:`DeviceRefused` with its code;
* any other pymodbus error (a malformed or mismatched answer) -> :class:`DeviceError`.

Only one request may be in flight on a Modbus TCP connection (MEASURED.md), so requests pass a
gate one at a time, and waiting writes go before waiting polls (Home Assistant #117684: writes
waited 20-50 s behind polls). The poller issues one read at a time, so a write waits for at most
the request in flight.

Reconnecting lives here (STYLE.md 6), driven by requests, not by a task of its own: a request on
a closed connection connects when the capped, jittered backoff allows, else fails at once with
:class:`DeviceUnavailable` without touching the network. pymodbus' own reconnect task (a bare
``create_task``) and retries are off, and our deadlines are the only clock: ``asyncio.timeout``
for a connect, and for each request :class:`~gateway.devices.deadline.Deadlines`, which keeps
``asyncio.timeout``'s rules on one timer per connection (a timer per request was the largest
cost of a request in our own code under uvloop). A connection silent for ``silent_limit``
requests in a row (a half-open socket) is dropped and reopened, but only once every unit heard on
it since it opened has been silent too: behind a Modbus TCP-to-RTU gateway one dead unit (or
its several poll jobs, timing out back to back) must not cut its neighbours off. A gateway's
exception answer (10, 11) is an answer, so it never counts as silence.

An answer that arrives after its request timed out is seen as it arrives (the client's
``trace_packet`` hook: its transaction id is one that timed out) and its time is handed to the
unit's next timeout (``DeviceTimeout.late_s``): the poller then knows the device is slow, not
dead, and waits longer for it (``gateway.devices.pace``).

A one-register write refused with exception 1 (illegal function) is sent again once as function
16: some devices implement only 16, others only 6.

Cancellation is never swallowed (STYLE.md 3): some pymodbus 3.x releases turn it into
``ModbusIOException("Request cancelled outside library.")``, which is turned back into
``CancelledError`` while our task is being cancelled; and Python 3.11's ``asyncio.wait_for``,
which pymodbus awaits answers with, drops a cancellation that races an answer, so it is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.devices.deadline import Deadlines
from gateway.devices.gate import Priority, PriorityGate
from gateway.devices.profile import Table
from gateway.errors import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnavailable
from gateway.transport.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from pymodbus.pdu import ModbusPDU

    from gateway.devices.tuning import Tuning

__all__ = ["ConnectionStats", "ModbusConnection", "Priority", "modbus_connection"]

log = logging.getLogger(__name__)

# pymodbus uses one timeout for connecting and for each response; ours must always expire
# first, or pymodbus would count "no response" itself and close the connection.
_LIBRARY_TIMEOUT_S = 3600.0

# Requests remembered for matching a late answer to its unit and send time.
_TIDS_KEPT = 16
# A Modbus TCP header: transaction id (2 bytes), protocol (2), length (2), unit id (1).
_MBAP_LEN = 7

# pymodbus logs every failed connect attempt (a line per retry for as long as a device is off)
# and every late answer to a request we timed out. This module says once that a connection went
# down and once that it is back (STYLE.md 7), so those lines are demoted to DEBUG.
_EXPECTED = (
    "Failed to connect",
    "Repeating",
    "ERROR: request ask for transaction_id",
    "ERROR: received pdu without a corresponding request",  # a slow device's late answer
)


_PYMODBUS_LOG = logging.getLogger("pymodbus.logging")


def _demote_expected(record: logging.LogRecord) -> bool:
    if not str(record.msg).startswith(_EXPECTED):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return _PYMODBUS_LOG.isEnabledFor(logging.DEBUG)


_PYMODBUS_LOG.addFilter(_demote_expected)


@dataclass(slots=True)
class ConnectionStats:
    """Counters of one connection, exposed as data.

    Attributes:
        requests: requests that got an answer (refusals included).
        timeouts: requests without an answer in time.
        refused: Modbus exception responses.
        errors: other unusable answers.
        connects: successful connects (the first one included).
        losses: connections lost or dropped after they were up.
    """

    requests: int = 0
    timeouts: int = 0
    refused: int = 0
    errors: int = 0
    connects: int = 0
    losses: int = 0


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _restore_cancellation() -> None:
    """Raise ``CancelledError`` if our task was cancelled but the library returned anyway.

    pymodbus awaits its answers with ``asyncio.wait_for``, which in Python 3.11 returns the
    result when the answer and a cancellation arrive in the same loop iteration, and drops the
    cancellation: the poller would carry on and its TaskGroup would wait for it forever.
    (A timeout of ours dropped that way has been withdrawn by ``asyncio.timeout`` already.)
    """
    if _cancelling():
        raise asyncio.CancelledError


class ModbusConnection:
    """A Modbus TCP connection to ``host:port`` shared by every unit (device) behind it.

    :meth:`connect` makes one attempt (a device that is down is not an error: requests fail
    with :class:`DeviceUnavailable` until a later attempt connects); :meth:`close` closes.

    Attributes:
        name: ``host:port``, for log lines.
        stats: the counters.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = 2.0,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        silent_limit: int = 3,
    ) -> None:
        """Prepare; nothing is opened before :meth:`connect` or the first request.

        Args:
            host: the device's (or Modbus TCP gateway's) host name or address.
            port: its TCP port.
            connect_timeout_s: how long one connect attempt may take.
            backoff_s: first and largest delay between connect attempts (doubling, jittered).
            silent_limit: requests in a row without an answer after which the connection is
                dropped and reopened.

        Raises:
            ValueError: an argument is out of range.
        """
        if connect_timeout_s <= 0 or silent_limit < 1:
            raise ValueError("connect_timeout_s must be > 0 and silent_limit >= 1")
        self._backoff_s = backoff_s
        self._backoff = Backoff(*backoff_s)
        self._host = host
        self._port = port
        self.name = f"{host}:{port}"
        self._connect_timeout_s = connect_timeout_s
        self._silent_limit = silent_limit
        self._gate = PriorityGate()
        self._deadlines = Deadlines()
        self._client: AsyncModbusTcpClient | None = None
        self._retry_at = 0.0
        self._why = "not connected yet"
        self._down = False  # the loss was logged; the recovery will be
        self._silent = 0
        self._heard: set[int] = set()  # units that answered since the connection opened
        self._silent_units: set[int] = set()  # units silent since the last answer
        # Transaction id -> (unit, loop time sent) of the last few requests; the ids of those
        # that timed out; per unit, how long its last late answer took.
        self._sent: dict[int, tuple[int, float]] = {}
        self._last_tid: int | None = None
        self._timed_out: set[int] = set()
        self._late: dict[int, float] = {}
        self.stats = ConnectionStats()

    @property
    def connected(self) -> bool:
        """Whether the TCP connection is up (pymodbus' ``async with`` does not check it)."""
        return self._client is not None and self._client.connected

    @property
    def retry_at(self) -> float:
        """Loop time before which a closed connection will not be retried (0 when up)."""
        return 0.0 if self.connected else self._retry_at

    async def connect(self) -> bool:
        """Connect now if not connected (one attempt, whatever the backoff); True when up."""
        await self._gate.acquire(Priority.WRITE)
        try:
            if not self.connected:
                await self._attempt()
            return self.connected
        finally:
            self._gate.release()

    def close(self) -> None:
        """Close the connection (requests after this reconnect)."""
        self._heard.clear()
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- requests -----------------------------------------------------------------------

    async def read(
        self,
        table: Table,
        start: int,
        count: int,
        *,
        unit: int,
        device: str,
        timeout_s: float,
        priority: Priority = Priority.POLL,
    ) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``table`` from ``start``.

        Args:
            table: the Modbus table.
            start: first address.
            count: registers or bits to read.
            unit: the Modbus unit (device) id.
            device: the device id, for errors.
            timeout_s: how long the device may take to answer.
            priority: ``Priority.WRITE`` for the read-back of a write.

        Returns:
            Exactly ``count`` values, lowest address first.

        Raises:
            DeviceError: a subclass saying why nothing was read.
        """
        method = _READS[table]
        rsp = await self._request(
            device,
            unit,
            timeout_s,
            priority,
            lambda c: getattr(c, method)(start, count=count, device_id=unit),
        )
        bits = table.is_bits
        raw = rsp.bits if bits else rsp.registers
        if len(raw) < count:
            self.stats.errors += 1
            raise DeviceError(device, f"answered {len(raw)} values to a read of {count}")
        # pymodbus pads bits to whole bytes; callers get exactly what they asked for.
        return [int(v) for v in raw[:count]] if bits else list(raw[:count])

    async def write(
        self,
        table: Table,
        address: int,
        words: Sequence[int],
        *,
        unit: int,
        device: str,
        timeout_s: float,
    ) -> None:
        """Write ``words`` to holding registers (one 0/1 to a coil), ahead of waiting polls.

        Raises:
            ValueError: the table is read-only or ``words`` is empty.
            DeviceError: a subclass saying why the write failed; the device may or may not
                have applied a write that timed out.
        """
        if table not in (Table.HOLDING, Table.COIL) or not words:
            raise ValueError(f"cannot write {len(words)} values to the {table.value} table")
        try:
            await self._request(
                device, unit, timeout_s, Priority.WRITE,
                lambda c: _write(c, table, address, words, unit),
            )  # fmt: skip
        except DeviceRefused as err:
            if not (err.code == 1 and err.function == 6):
                raise
            # Function 6 is not there: the same register written with function 16 instead.
            await self._request(
                device, unit, timeout_s, Priority.WRITE,
                lambda c: c.write_registers(address, list(words), device_id=unit),
            )  # fmt: skip

    async def _request(
        self,
        device: str,
        unit: int,
        timeout_s: float,
        priority: Priority,
        send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
    ) -> ModbusPDU:
        gate = self._gate
        if not gate.try_acquire():
            await gate.acquire(priority)
        try:
            client = self._client
            if client is None or not client.connected:
                client = await self._ensure(device)
            try:
                rsp = await self._timed(send, client, timeout_s)
            except TimeoutError:
                self._no_answer(unit)
                if self._last_tid is not None:
                    self._timed_out.add(self._last_tid)
                    self._timed_out &= self._sent.keys()  # bounded: only ids still remembered
                raise DeviceTimeout(device, timeout_s, self._late.pop(unit, None)) from None
            except ConnectionException as exc:
                self._lost(exc.string)
                raise DeviceUnavailable(device, exc.string) from None
            except ModbusException as exc:
                self.stats.errors += 1
                raise DeviceError(device, f"unusable answer: {exc.string}") from None
        finally:
            gate.release()
        self._silent = 0
        self._silent_units.clear()
        self._heard.add(unit)
        self._late.pop(unit, None)  # answered in time: what was late is old news
        self.stats.requests += 1
        if rsp.isError():
            self.stats.refused += 1
            raise DeviceRefused(device, rsp.exception_code, rsp.function_code & 0x7F)
        return rsp

    async def _timed(
        self,
        send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        client: AsyncModbusTcpClient,
        timeout_s: float,
    ) -> ModbusPDU:
        """``send``, raising ``TimeoutError`` after ``timeout_s`` (``asyncio.timeout``'s rules)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Modbus request needs to run in a task")
        self._deadlines.start(task, timeout_s)
        try:
            try:
                rsp = await send(client)
            except ModbusIOException as exc:
                if task.cancelling():  # our cancellation (or timeout), disguised by pymodbus
                    raise asyncio.CancelledError from exc
                raise
        except asyncio.CancelledError as exc:
            if self._deadlines.stop(cancelled=True):
                raise TimeoutError from exc
            raise
        except BaseException:
            self._deadlines.stop(cancelled=False)
            raise
        self._deadlines.stop(cancelled=False)
        if task.cancelling():
            raise asyncio.CancelledError  # see _restore_cancellation
        return rsp

    # --- connecting ---------------------------------------------------------------------

    async def _ensure(self, device: str) -> AsyncModbusTcpClient:
        client = self._client
        if client is not None and client.connected:
            return client
        if client is not None:
            self._lost("the device closed the connection")
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            raise DeviceUnavailable(device, self._why)
        await self._attempt()
        if self._client is None:
            raise DeviceUnavailable(device, self._why)
        return self._client

    async def _attempt(self) -> None:
        self.close()
        client = AsyncModbusTcpClient(
            self._host,
            port=self._port,
            name=self.name,
            reconnect_delay=0,  # reconnecting is ours, with backoff, inside our tasks
            retries=0,
            timeout=_LIBRARY_TIMEOUT_S,
            trace_packet=self._trace_packet,
        )
        why = f"cannot connect to {self.name}"
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                ok = await client.connect()
            _restore_cancellation()
        except TimeoutError:
            ok, why = False, f"no connection to {self.name} within {self._connect_timeout_s:g} s"
        except BaseException:
            client.close()
            raise
        if ok and client.connected:
            _set_nodelay(client)
            self._client = client
            self._backoff = Backoff(*self._backoff_s)
            self._silent = 0
            self.stats.connects += 1
            if self._down:
                log.info("Modbus connection to %s is back", self.name)
            self._down = False
            return
        client.close()
        self._why = why
        self._retry_at = asyncio.get_running_loop().time() + self._backoff.next()
        if not self._down:
            log.warning("Modbus connection to %s failed: %s (retrying)", self.name, why)
            self._down = True

    def _lost(self, reason: str) -> None:
        """Forget a connection that went down; the next request may reconnect at once."""
        self.close()
        self.stats.losses += 1
        self._why = f"connection lost ({reason})"
        self._retry_at = 0.0  # a glitch gets one immediate retry; backoff starts if it fails
        if not self._down:
            log.warning("Modbus connection to %s lost: %s", self.name, reason)
            self._down = True

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """See each frame go out and come in (pymodbus' hook; ``data`` is passed on unchanged)."""
        if len(data) < _MBAP_LEN:
            return data
        tid = int.from_bytes(data[0:2], "big")
        now = asyncio.get_running_loop().time()
        if sending:
            self._last_tid = tid
            self._sent[tid] = (data[6], now)
            if len(self._sent) > _TIDS_KEPT:
                del self._sent[next(iter(self._sent))]
        elif tid in self._timed_out:
            self._timed_out.discard(tid)
            sent = self._sent.get(tid)
            # An exception reply (function byte with 0x80 set) is no answer to measure: a
            # TCP-to-RTU gateway's late "target did not respond" (11) must not stretch a dead
            # unit's timeout as a slow controller's answer would.
            exception_reply = len(data) > _MBAP_LEN and data[_MBAP_LEN] & 0x80
            if sent is not None and not exception_reply:
                self._late[sent[0]] = now - sent[1]
        return data

    def _no_answer(self, unit: int) -> None:
        self.stats.timeouts += 1
        self._silent += 1
        self._silent_units.add(unit)
        if self._silent >= self._silent_limit and self._heard <= self._silent_units:
            # A device that rebooted leaves a half-open socket that never answers again; a
            # unit heard here that has not gone silent says the socket is fine.
            self._silent = 0
            self._silent_units.clear()
            self._lost(f"no answer to {self._silent_limit} requests in a row")


async def _write(
    client: AsyncModbusTcpClient, table: Table, address: int, words: Sequence[int], unit: int
) -> ModbusPDU:
    if table is Table.COIL:
        return await client.write_coil(address, bool(words[0]), device_id=unit)
    if len(words) == 1:
        # Function 6 for one register: some devices implement only 6, others only 16, and 6 is
        # the one that every device accepting register writes has.
        return await client.write_register(address, words[0], device_id=unit)
    return await client.write_registers(address, list(words), device_id=unit)


# The client's read method for each table (looked up by name, so that a stand-in client does).
_READS = {
    Table.HOLDING: "read_holding_registers",
    Table.INPUT: "read_input_registers",
    Table.COIL: "read_coils",
    Table.DISCRETE: "read_discrete_inputs",
}


def _set_nodelay(client: AsyncModbusTcpClient) -> None:
    """Turn Nagle's algorithm off (asyncio and uvloop already do; pymodbus does not ask)."""
    transport = client.ctx.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):  # a socket closed under us: the request will say so
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def modbus_connection(host: str, port: int, tuning: Tuning) -> ModbusConnection:
    """The device service's connection factory for real devices (``ConnectionFactory``).

    Args:
        host: the device's (or Modbus TCP gateway's) host name or address.
        port: its TCP port.
        tuning: the service's timing knobs (connect timeout, reconnect backoff, silent limit).

    Returns:
        A connection to ``host:port``, not opened yet.
    """
    return ModbusConnection(
        host,
        port,
        connect_timeout_s=tuning.connect_timeout_s,
        backoff_s=tuning.reconnect_s,
        silent_limit=tuning.silent_limit,
    )
