"""Register codecs: Modbus words to engineering values and back. Pure, no I/O.

A point's registers become a value in four steps, and a value becomes registers in the reverse::

    words --word order--> registers in value order --byte order--> bytes, most significant first
          --type--> raw number --bit / scale and offset--> engineering value

* **Word order** is the order of the registers of a multi-register number (u32, i32, f32, f64):
  ``"big"`` puts the most significant register at the lowest address (ABCD), ``"little"`` puts it
  last (CDAB for 32 bits; all four registers reversed for 64 bits, as pymodbus does).
* **Byte order** is the order of the two bytes inside each 16-bit register: ``"big"`` is the
  Modbus standard; ``"little"`` swaps them (BADC, or DCBA together with little word order).
* Engineering value = raw * ``scale`` + ``offset``; encoding inverts it with
  ``raw = round((value - offset) / scale)`` (Python's round half to even) for integer types.

Choices worth knowing:

* **Strings** are ``length`` registers of ASCII, two characters per register, first characters
  at the lowest address whatever the word order (word order is about numbers; a profile whose
  default is CDAB for its floats must not reverse its model-name string). Byte order decides which
  character of a register comes first. Decoding stops at the first NUL (devices often leave
  garbage after the terminator) and never raises: a byte outside ASCII becomes U+FFFD, so one bad
  serial-number register cannot stop a whole poll. Encoding pads with NULs and raises
  :class:`CodecError` for non-ASCII text, NUL characters or text longer than ``2 * length``.
* **Floats**: NaN and +/-infinity are IEEE values a device may use ("no probe"), so f32/f64 decode
  them and encode them as such. A finite value beyond f32's range is a :class:`CodecError`;
  otherwise an f32 encode rounds to the nearest f32 (round trip within f32 precision).
* **Integers**: encoding a NaN, an infinity, a bool or a value outside the raw type's range after
  scaling is a :class:`CodecError`. Decoding any words of the right count never raises.
* **Bits**: coil and discrete points decode one 0/1 value (any non-zero is ``True``). A bit of a
  holding/input register decodes from the register as a u16 (byte order applied). Encoding a bit
  of a *register* is refused: the other 15 bits are not known here, so writing it needs a
  read-modify-write or a mask write (function 22) that the connection has to do.

This module deliberately does not import pymodbus: it is the pure core the tests cross-check
against pymodbus' ``convert_from_registers`` / ``convert_to_registers``.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

from gateway.devices.profile import PointType

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.devices.profile import ModbusPoint, ModbusSettings

#: What a point decodes to: bool for bits, str for strings, int or float for numbers.
Value = int | float | bool | str

# struct format character (big-endian packing) of each numeric type.
_FORMATS: dict[PointType, str] = {
    PointType.U16: "H",
    PointType.I16: "h",
    PointType.U32: "I",
    PointType.I32: "i",
    PointType.F32: "f",
    PointType.F64: "d",
}
_INT_RANGES: dict[PointType, tuple[int, int]] = {
    PointType.U16: (0, 0xFFFF),
    PointType.I16: (-0x8000, 0x7FFF),
    PointType.U32: (0, 0xFFFF_FFFF),
    PointType.I32: (-0x8000_0000, 0x7FFF_FFFF),
}
_FLOATS = frozenset({PointType.F32, PointType.F64})


class CodecError(ValueError):
    """A value cannot be represented in a point's registers (or the words do not fit the point).

    Attributes:
        point: id of the point concerned.
    """

    def __init__(self, point: str, message: str) -> None:
        """Keep the point id; the message says what is wrong with the value."""
        self.point = point
        super().__init__(f"point {point!r}: {message}")


def _orders(point: ModbusPoint, settings: ModbusSettings) -> tuple[str, str]:
    """The point's own byte and word order, else the profile's."""
    return point.byte_order or settings.byte_order, point.word_order or settings.word_order


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _to_bytes(words: Sequence[int], byte_order: str) -> bytes:
    """Registers (already in value order) to bytes, most significant first."""
    if byte_order == "little":
        words = [_swap(w) for w in words]
    return struct.pack(f">{len(words)}H", *words)


def _from_bytes(data: bytes, byte_order: str) -> list[int]:
    words = list(struct.unpack(f">{len(data) // 2}H", data))
    return [_swap(w) for w in words] if byte_order == "little" else words


def _check_words(point: ModbusPoint, words: Sequence[int]) -> None:
    if len(words) != point.registers:
        raise CodecError(point.id, f"expected {point.registers} word(s), got {len(words)}")
    if point.table.is_bits:
        return  # coils come back as bools or 0/1; any truthy value is a set bit
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise CodecError(point.id, f"register value {w} is not a 16-bit word")


def decode_point(point: ModbusPoint, words: Sequence[int], settings: ModbusSettings) -> Value:
    """Turn a point's registers into its engineering value.

    Args:
        point: the point, with its table, type and orders.
        words: exactly ``point.registers`` 16-bit values as read, lowest address first (for
            coil/discrete tables: one 0/1 or bool).
        settings: the profile's defaults for byte and word order.

    Returns:
        ``bool`` for bits, ``str`` for strings (up to the first NUL), ``int`` for integer types
        when ``scale == 1`` and ``offset == 0``, else ``float``.

    Raises:
        CodecError: only when ``words`` has the wrong length or holds a value outside 0..65535;
            any words of the right count decode.
    """
    _check_words(point, words)
    if point.table.is_bits:
        return bool(words[0])
    byte_order, word_order = _orders(point, settings)
    if point.type is PointType.BIT:
        register = _swap(words[0]) if byte_order == "little" else words[0]
        return bool((register >> (point.bit or 0)) & 1)
    if point.type is PointType.STRING:
        text = _to_bytes(words, byte_order).split(b"\0", 1)[0]
        return text.decode("ascii", errors="replace")
    ordered = list(reversed(words)) if word_order == "little" else list(words)
    raw: int | float = struct.unpack(f">{_FORMATS[point.type]}", _to_bytes(ordered, byte_order))[0]
    if point.scale == 1 and point.offset == 0:
        return raw
    return raw * point.scale + point.offset


def encode_point(point: ModbusPoint, value: Value, settings: ModbusSettings) -> list[int]:
    """Turn an engineering value into the words to write, lowest address first.

    Args:
        point: the point to write.
        value: the engineering value (bool or 0/1 for bits, str for strings, a number otherwise).
        settings: the profile's defaults for byte and word order.

    Returns:
        ``point.registers`` 16-bit words (for coil points: one 0/1).

    Raises:
        CodecError: the value has the wrong type, is out of the raw type's range after scaling,
            is NaN or infinite for an integer type, is a string that is not ASCII or too long, or
            the point is a bit of a register (needs a read-modify-write).
    """
    byte_order, word_order = _orders(point, settings)
    if point.type is PointType.BIT:
        return [_encode_bit(point, value)]
    if point.type is PointType.STRING:
        data = _encode_string(point, value)
        return _from_bytes(data, byte_order)
    if isinstance(value, (bool, str)):
        raise CodecError(point.id, f"expects a number, got {value!r}")
    fmt = _FORMATS[point.type]
    raw = _scaled_raw(point, value)
    try:
        data = struct.pack(f">{fmt}", raw)
    except (OverflowError, struct.error) as err:
        # Only a finite float beyond f32's range gets here: integers were range-checked.
        raise CodecError(point.id, f"{value!r} does not fit a {point.type.value}") from err
    words = _from_bytes(data, byte_order)
    return list(reversed(words)) if word_order == "little" else words


def _encode_bit(point: ModbusPoint, value: Value) -> int:
    if not point.table.is_bits:
        raise CodecError(
            point.id,
            f"bit {point.bit} of register {point.address} cannot be written on its own: "
            "the other bits need a read-modify-write (or a mask write, function 22)",
        )
    # 0/1 arrive as numbers from write ranges (min = 0, max = 1) as often as bools.
    if isinstance(value, str) or value not in (0, 1):
        raise CodecError(point.id, f"a bit takes true/false or 0/1, got {value!r}")
    return int(value)


def _encode_string(point: ModbusPoint, value: Value) -> bytes:
    if not isinstance(value, str):
        raise CodecError(point.id, f"expects text, got {value!r}")
    if not value.isascii() or "\0" in value:
        raise CodecError(point.id, "text must be ASCII without NUL characters")
    size = 2 * point.registers
    if len(value) > size:
        raise CodecError(point.id, f"text is {len(value)} characters, at most {size} fit")
    return value.encode("ascii").ljust(size, b"\0")


def _scaled_raw(point: ModbusPoint, value: float) -> int | float:
    """Apply the inverse of scale and offset; integers are rounded and range-checked."""
    if point.scale == 1 and point.offset == 0:
        raw: float = value
    elif point.scale == 0:
        raise CodecError(point.id, "scale is 0: no raw value gives this engineering value")
    else:
        raw = (value - point.offset) / point.scale
    if point.type in _FLOATS:
        return raw
    if not math.isfinite(raw):
        raise CodecError(point.id, f"{value!r} is not a finite number")
    # Exact ints skip round() so large i32/u32 values do not pass through a float.
    as_int = raw if isinstance(raw, int) else round(raw)
    low, high = _INT_RANGES[point.type]
    if not low <= as_int <= high:
        raise CodecError(
            point.id,
            f"{value!r} is raw {as_int}, outside {low}..{high} of a {point.type.value}",
        )
    return as_int
