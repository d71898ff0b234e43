"""The pymodbus side of a simulated appliance: a datastore that reads and writes a register bank.

pymodbus 3.16's server takes a ``ModbusServerContext``; one marked ``old_simulator`` is used as it
is, and the server only ever calls its ``async_getValues`` / ``async_setValues`` /
``device_ids``. :class:`BankContext` answers those from a
:class:`~simulators.appliances.registers.RegisterBank`, so the registers the gateway reads are
exactly the ones the physics writes. ``tests/integration/test_appliance_simulators.py`` pins this
against the installed pymodbus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext

from gateway.devices.profile import Table
from simulators.appliances.registers import WriteResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from simulators.appliances.registers import RegisterBank

__all__ = ["BankContext"]

#: Modbus function code -> the table it reads or writes.
TABLES = {
    1: Table.COIL, 5: Table.COIL, 15: Table.COIL,
    2: Table.DISCRETE,
    3: Table.HOLDING, 6: Table.HOLDING, 16: Table.HOLDING, 22: Table.HOLDING, 23: Table.HOLDING,
    4: Table.INPUT,
}  # fmt: skip


class BankContext(ModbusServerContext):
    """The datastore of one device (one unit id) backed by its register bank.

    ``ModbusServerContext.__init__`` is not called on purpose: it wants pymodbus' own device
    contexts.

    Args:
        bank: the device's registers.
        unit: the only unit id answered; others get exception 4, as pymodbus' own datastore
            answers (MEASURED.md).
        hung: says whether the device is hung; writes made meanwhile are not applied.
    """

    def __init__(self, bank: RegisterBank, unit: int, hung: Callable[[], bool]) -> None:
        """Serve ``bank`` as unit ``unit``."""
        self.old_simulator = True
        self.simdevices = []
        self._bank = bank
        self._unit = unit
        self._hung = hung

    async def async_getValues(  # noqa: N802 -- pymodbus' name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        """Registers or bits for a read, or the Modbus exception code."""
        if device_id != self._unit:
            return ExcCodes.DEVICE_FAILURE
        table = TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        values = self._bank.read(table, address, count)
        if values is None:
            return ExcCodes.ILLEGAL_ADDRESS
        return [bool(v) for v in values] if table.is_bits else values

    async def async_setValues(  # noqa: N802 -- pymodbus' name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        """Apply a write (all or nothing); None when accepted, else the exception code."""
        if device_id != self._unit:
            return ExcCodes.DEVICE_FAILURE
        table = TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if self._hung():
            return None  # a hung device never applies it (and its answer is dropped anyway)
        result = self._bank.write(table, address, [int(v) for v in values])
        return None if result is WriteResult.OK else ExcCodes(int(result))

    def device_ids(self) -> list[int]:
        """The one unit id served (used for broadcasts)."""
        return [self._unit]
