"""What the device service and its pollers use of a Modbus connection, and how they get one.

:class:`Connection` is the part of :class:`~gateway.devices.connection.ModbusConnection` the
service side relies on; :data:`ConnectionFactory` makes one per ``(host, port)``. The service
is given a factory instead of building connections itself, so it can be tested with fakes and
``gateway.devices.connection`` stays the one module of the service side that imports pymodbus
(the gateway passes :func:`~gateway.devices.connection.modbus_connection`).

Errors are the contract too: a request that reads or writes nothing raises a
:class:`~gateway.errors.DeviceError` subclass (``DeviceTimeout``, ``DeviceUnavailable``,
``DeviceRefused``), never a library's own exception, and never swallows a cancellation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

from gateway.devices.gate import Priority

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gateway.devices.profile import Table
    from gateway.devices.tuning import Tuning

__all__ = ["Connection", "ConnectionFactory"]


class Connection(Protocol):
    """One connection to ``host:port``, shared by every unit (device) behind it.

    Requests are serialised by the connection (one in flight, writes before polls) and
    reconnect inside it, with backoff (STYLE.md 6).
    """

    @property
    def name(self) -> str:
        """``host:port``, for log lines and task names."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        ...

    @property
    def retry_at(self) -> float:
        """Event-loop time (``loop.time()``) before which a closed connection is not retried.

        0 when connected, or when a lost connection may be retried at once.
        """
        ...

    async def connect(self) -> bool:
        """One connect attempt if not connected (a device that is down is not an error).

        Returns:
            Whether the connection is up.
        """
        ...

    def close(self) -> None:
        """Close; a later request reconnects."""
        ...

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
        """Exactly ``count`` registers (bits as 0/1) of ``table`` from ``start``.

        Raises:
            DeviceError: a subclass saying why nothing was read.
        """
        ...

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
            DeviceError: a subclass saying why; a write that timed out may have been applied.
        """
        ...


#: Makes the connection to ``(host, port)`` with the service's ``Tuning``; nothing is opened
#: before ``connect()`` or the first request.
ConnectionFactory: TypeAlias = "Callable[[str, int, Tuning], Connection]"
