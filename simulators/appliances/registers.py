"""The registers of one simulated appliance, laid out from its profile. Pure, no I/O.

A :class:`RegisterBank` holds the four Modbus tables of one device as plain words and bits. Its
layout comes from the device profile and every value goes through the gateway's own codec
(:func:`gateway.devices.codec.encode_point` / ``decode_point``), so a simulator and the profile
the gateway reads it with cannot disagree about addresses, types, orders or scales.

Two kinds of writer touch a bank:

* the **physics** (:meth:`RegisterBank.set`), which writes engineering values; a *stuck* point
  (:meth:`RegisterBank.stick`) ignores them, like a sensor frozen at its last reading;
* the **Modbus client** (:meth:`RegisterBank.write`), which writes raw words and bits and is held
  to what a careful device enforces: only ``access = "rw"`` points, whole multi-register values,
  and values inside the profile's write range. A refused write changes nothing.

Reads (:meth:`RegisterBank.read`) may span unused registers between points, as the gateway's read
planner does; a read past the highest defined address of a table is an illegal address. A
``sparse`` bank is what most real controllers are: any read touching a register no point covers
is an illegal address (exception 2).
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum
from typing import TYPE_CHECKING

from gateway.devices.codec import CodecError, decode_point, encode_point
from gateway.devices.profile import PointType, Table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from gateway.devices.codec import Value
    from gateway.devices.profile import ModbusPoint, Profile

__all__ = ["RegisterBank", "WriteResult"]

#: Gateway writes remembered in :attr:`RegisterBank.writes` (oldest dropped first).
WRITE_LOG_SIZE = 100


class WriteResult(IntEnum):
    """Outcome of a Modbus write; the non-zero values are the Modbus exception codes."""

    OK = 0
    ILLEGAL_ADDRESS = 2  # no writable point there, or only part of a multi-register value
    ILLEGAL_VALUE = 3  # a value outside the point's write range (or not encodable)


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


class RegisterBank:
    """Words and bits of one device, addressed as the profile says.

    Example::

        bank = RegisterBank(profile)
        bank.set("cabinet_temp", 3.4)
        bank.read(Table.INPUT, 0, 2)      # the raw words the gateway will read
        bank.get("cabinet_temp")          # 3.4 (decoded through the gateway's codec)

    Attributes:
        profile: the profile the layout comes from.
        writes: the last gateway writes as ``(point id, value)``, oldest first.
    """

    def __init__(self, profile: Profile, *, sparse: bool = False) -> None:
        """Lay the tables out: each spans address 0 to the profile's highest address in it.

        Args:
            profile: the profile the layout comes from.
            sparse: refuse reads that touch a register no point covers, as most controllers do.

        Raises:
            ValueError: the profile is not a Modbus profile.
        """
        if profile.profile.protocol != "modbus":
            raise ValueError(f"profile {profile.profile.id!r} is not a Modbus profile")
        self.profile = profile
        self._settings = profile.settings
        self._points = {p.id: p for p in profile.points}
        sizes: dict[Table, int] = dict.fromkeys(Table, 0)
        for p in profile.points:
            sizes[p.table] = max(sizes[p.table], p.address + p.registers)
        self._tables: dict[Table, list[int]] = {t: [0] * n for t, n in sizes.items()}
        # Which points cover each register, for checking writes.
        self._owners: dict[tuple[Table, int], list[ModbusPoint]] = {}
        for p in profile.points:
            for a in range(p.address, p.address + p.registers):
                self._owners.setdefault((p.table, a), []).append(p)
        self._sparse = sparse
        self._stuck: set[str] = set()
        self._listeners: list[Callable[[str, Value], None]] = []
        self.writes: deque[tuple[str, Value]] = deque(maxlen=WRITE_LOG_SIZE)

    # ---- engineering values (the physics' side) -------------------------------------------

    def point(self, point_id: str) -> ModbusPoint:
        """A point of the profile by id.

        Raises:
            KeyError: the profile has no such point.
        """
        try:
            return self._points[point_id]
        except KeyError:
            profile = self.profile.profile.id
            raise KeyError(f"profile {profile!r} has no point {point_id!r}") from None

    def has(self, point_id: str) -> bool:
        """Whether the profile defines ``point_id``."""
        return point_id in self._points

    def require(self, point_ids: Iterable[str], who: str) -> None:
        """Check that every point a model needs exists.

        Raises:
            ValueError: naming the missing points and ``who`` needs them.
        """
        missing = sorted(i for i in point_ids if i not in self._points)
        if missing:
            raise ValueError(
                f"{who} needs points {', '.join(missing)} that profile "
                f"{self.profile.profile.id!r} does not define"
            )

    def words(self, point_id: str) -> list[int]:
        """The raw words (or one 0/1 bit) of a point as a read would return them."""
        p = self.point(point_id)
        return self._tables[p.table][p.address : p.address + p.registers]

    def get(self, point_id: str) -> Value:
        """A point's engineering value, decoded through the gateway's codec."""
        p = self.point(point_id)
        return decode_point(p, self.words(point_id), self._settings)

    def number(self, point_id: str) -> float:
        """A numeric point's value as a float (bits as 0.0 / 1.0)."""
        value = self.get(point_id)
        if isinstance(value, str):
            raise TypeError(f"point {point_id!r} holds text, not a number")
        return float(value)

    def set(self, point_id: str, value: Value) -> None:
        """Store an engineering value, as the device's own firmware would.

        Ignored for a stuck point (its reading stays frozen). Out-of-range numbers are clamped to
        the raw type's range, as a device saturates its registers rather than wrapping.

        Raises:
            CodecError: the value cannot be encoded at all (text for a number, say).
        """
        if point_id in self._stuck:
            return
        self._store(self.point(point_id), value)

    def stick(self, point_id: str) -> None:
        """Freeze a point at its current value (a stuck sensor)."""
        self.point(point_id)
        self._stuck.add(point_id)

    def unstick(self, point_id: str) -> None:
        """Let the physics update a stuck point again."""
        self._stuck.discard(point_id)

    @property
    def stuck(self) -> frozenset[str]:
        """Ids of the points currently frozen."""
        return frozenset(self._stuck)

    def on_write(self, listener: Callable[[str, Value], None]) -> None:
        """Call ``listener(point_id, value)`` after each accepted gateway write of a point."""
        self._listeners.append(listener)

    # ---- raw access (the Modbus side) ------------------------------------------------------

    def size(self, table: Table) -> int:
        """How many registers (or bits) of ``table`` can be read."""
        return len(self._tables[table])

    def read(self, table: Table, address: int, count: int) -> list[int] | None:
        """Raw words (or 0/1 bits) from ``address``; None if any of them is out of range."""
        data = self._tables[table]
        if count < 1 or address < 0 or address + count > len(data):
            return None
        if self._sparse and any(
            (table, a) not in self._owners for a in range(address, address + count)
        ):
            return None
        return data[address : address + count]

    def write(self, table: Table, address: int, values: Sequence[int]) -> WriteResult:
        """Apply a Modbus client's write of raw words (or 0/1 bits), all or nothing.

        Every register written must belong to writable points only, each multi-register point
        must be written whole, and each point's new value must lie inside its write range.
        """
        if table not in (Table.HOLDING, Table.COIL) or not values:
            return WriteResult.ILLEGAL_ADDRESS
        end = address + len(values)
        touched: dict[str, ModbusPoint] = {}
        for a in range(address, end):
            owners = self._owners.get((table, a))
            if not owners:
                return WriteResult.ILLEGAL_ADDRESS
            for p in owners:
                if p.access != "rw" or p.address < address or p.address + p.registers > end:
                    return WriteResult.ILLEGAL_ADDRESS
                touched[p.id] = p
        data = self._tables[table]
        new = list(data)
        new[address:end] = [int(bool(v)) if table.is_bits else int(v) & 0xFFFF for v in values]
        decoded: list[tuple[str, Value]] = []
        for p in touched.values():
            value = decode_point(p, new[p.address : p.address + p.registers], self._settings)
            if not self._in_write_range(p, value):
                return WriteResult.ILLEGAL_VALUE
            decoded.append((p.id, value))
        data[address:end] = new[address:end]
        for point_id, value in decoded:
            self.writes.append((point_id, value))
            for listener in self._listeners:
                listener(point_id, value)
        return WriteResult.OK

    # ---- internals -------------------------------------------------------------------------

    @staticmethod
    def _in_write_range(p: ModbusPoint, value: Value) -> bool:
        if p.write is None or isinstance(value, str):
            return False
        number = float(value)
        # A little slack for scaled values: 5.0 arrives as raw 50 * 0.1 = 5.000000000000001.
        slack = abs(p.scale) / 2 if p.type not in (PointType.F32, PointType.F64) else 1e-6
        return p.write.min - slack <= number <= p.write.max + slack

    def _store(self, p: ModbusPoint, value: Value) -> None:
        data = self._tables[p.table]
        if p.table.is_bits:
            data[p.address] = int(bool(value))
            return
        if p.type is PointType.BIT:  # one bit of a shared register: read-modify-write
            little = (p.byte_order or self._settings.byte_order) == "little"
            word = _swap(data[p.address]) if little else data[p.address]
            mask = 1 << (p.bit or 0)
            word = (word | mask) if value else (word & ~mask)
            data[p.address] = _swap(word) if little else word
            return
        try:
            words = encode_point(p, value, self._settings)
        except CodecError:
            if isinstance(value, (bool, str)):
                raise
            words = encode_point(p, self._clamp(p, value), self._settings)
        data[p.address : p.address + p.registers] = words

    @staticmethod
    def _clamp(p: ModbusPoint, value: float) -> float:
        limits = {
            PointType.U16: (0, 0xFFFF),
            PointType.I16: (-0x8000, 0x7FFF),
            PointType.U32: (0, 0xFFFF_FFFF),
            PointType.I32: (-0x8000_0000, 0x7FFF_FFFF),
        }
        low, high = limits.get(p.type, (-3.4e38, 3.4e38))
        ends = sorted((low * p.scale + p.offset, high * p.scale + p.offset))
        return min(max(value, ends[0]), ends[1])
