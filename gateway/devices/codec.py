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

Polls decode whole reads with :class:`BlockDecoder`, compiled once per read block: the same
values as :func:`decode_point` point by point (property-tested for every type and order) at a
fifteenth of the cost, which matters because per-point decoding was a quarter of a poll's CPU.

This module deliberately does not import pymodbus: it is the pure core the tests cross-check
against pymodbus' ``convert_from_registers`` / ``convert_to_registers``.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import TYPE_CHECKING

from gateway.devices.profile import PointType
from gateway.errors import GatewayError

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
# Compiled once: building a format string per value was a visible share of a poll.
_NUMBERS = {t: struct.Struct(f">{f}") for t, f in _FORMATS.items()}
_INT_RANGES: dict[PointType, tuple[int, int]] = {
    PointType.U16: (0, 0xFFFF),
    PointType.I16: (-0x8000, 0x7FFF),
    PointType.U32: (0, 0xFFFF_FFFF),
    PointType.I32: (-0x8000_0000, 0x7FFF_FFFF),
}
_FLOATS = frozenset({PointType.F32, PointType.F64})


class CodecError(GatewayError, ValueError):
    """A value cannot be represented in a point's registers (or the words do not fit the point).

    Still a ``ValueError`` (it is a bad value, and callers that check values catch that), and a
    ``GatewayError`` like every error the gateway raises on purpose.

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


@functools.cache
def _words(count: int, byte_order: str) -> struct.Struct:
    """``count`` registers as bytes: big-endian inside each register, or swapped (``"little"``)."""
    return struct.Struct(f"{'<' if byte_order == 'little' else '>'}{count}H")


def _to_bytes(words: Sequence[int], byte_order: str) -> bytes:
    """Registers (already in value order) to bytes, most significant first."""
    return _words(len(words), byte_order).pack(*words)


def _from_bytes(data: bytes, byte_order: str) -> list[int]:
    return list(_words(len(data) // 2, byte_order).unpack(data))


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
    ordered = list(reversed(words)) if word_order == "little" else words
    raw: int | float = _NUMBERS[point.type].unpack(_to_bytes(ordered, byte_order))[0]
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
    raw = _scaled_raw(point, value)
    try:
        data = _NUMBERS[point.type].pack(raw)
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


# --- whole reads at once ------------------------------------------------------------------------

# What an unpacked field becomes (``BlockDecoder``): the value itself, value * a + b, bit a of
# it, or the text before its first NUL.
_PLAIN, _SCALED, _BIT, _TEXT = range(4)

#: (in the byte-swapped copy of the read, struct byte order "<" / ">", byte offset, format)
_Field = tuple[bool, str, int, str]


class BlockDecoder:
    """Decodes every point of one read at once, to exactly what :func:`decode_point` gives.

    Compiled once per read block (when a poll job is made), so that a poll does one step per
    value and nothing else per point: the read's words are packed into bytes, at most twice (as
    read, and with the two bytes of each register swapped), and precompiled ``struct.Struct``
    objects cut every value from those bytes, one struct per run of points that do not overlap.
    No words need reordering: ABCD is big-endian in the bytes as read, DCBA little-endian in
    them, BADC big-endian in the swapped bytes and CDAB little-endian in those. Points sharing
    registers the same way (bits of one status word) share one unpacked field.

    Words that :func:`decode_point` would refuse (too few, or one outside 0..65535) take the
    per-point path instead, so that a bad point costs only itself, as it does there.
    """

    __slots__ = ("_bits", "_count", "_first", "_items", "_more", "_pack", "_pack_swapped",
                 "_points", "_settings")  # fmt: skip

    def __init__(
        self, points: Sequence[tuple[ModbusPoint, int]], count: int, settings: ModbusSettings
    ) -> None:
        """Work out the layout.

        Args:
            points: each point of the read with the index of its first word, in the order the
                values are to be reported; all of one table, each inside ``count``.
            count: registers (or bits) the read returns.
            settings: the profile's defaults for byte and word order.
        """
        self._points = tuple(points)
        self._count = count
        self._settings = settings
        self._bits = any(p.table.is_bits for p, _ in points)
        self._pack = _words(count, "big")
        self._pack_swapped: struct.Struct | None = None
        # Per point: (id, what its field becomes, the field's index, a, b). For bit tables the
        # index is the point's word: those are taken as they are.
        self._items: tuple[tuple[str, int, int, float, float], ...]
        lanes: list[tuple[bool, struct.Struct, int]] = []
        if self._bits:
            self._items = tuple((p.id, _BIT, first, 0, 0) for p, first in points)
        else:
            layouts = [_layout(p, first, settings) for p, first in points]
            index = _plan_lanes({field for field, *_ in layouts}, lanes)
            self._items = tuple(
                (p.id, kind, index[field], a, b)
                for (p, _), (field, kind, a, b) in zip(points, layouts, strict=True)
            )
            if any(swapped for swapped, _, _ in lanes):
                self._pack_swapped = _words(count, "little")
        self._first = lanes[0] if lanes else (False, struct.Struct(">"), 0)
        self._more = tuple(lanes[1:])

    def decode_into(self, words: Sequence[int], values: dict[str, Value]) -> Sequence[CodecError]:
        """Add each point's value to ``values``, in point order; return the points that failed.

        Args:
            words: what the read returned, lowest address first; values past ``count`` (a bit
                read padded to whole bytes) are ignored.
            values: point id -> value, added to.

        Returns:
            One :class:`CodecError` per point that could not be decoded (and is left out of
            ``values``); empty in the usual case.
        """
        if len(words) != self._count:
            if len(words) < self._count:
                return self._one_by_one(words, values)
            words = words[: self._count]
        if self._bits:
            for pid, _, first, _, _ in self._items:
                values[pid] = bool(words[first])
            return ()
        try:
            raw = self._pack.pack(*words)
            swapped = raw if self._pack_swapped is None else self._pack_swapped.pack(*words)
        except struct.error:
            return self._one_by_one(words, values)  # some word is not a 16-bit value
        self._cut(raw, swapped, values)
        return ()

    def _cut(self, raw: bytes, swapped: bytes, values: dict[str, Value]) -> None:
        use_swapped, unpacker, offset = self._first
        fields = unpacker.unpack_from(swapped if use_swapped else raw, offset)
        for use_swapped, unpacker, offset in self._more:
            fields += unpacker.unpack_from(swapped if use_swapped else raw, offset)
        for pid, kind, i, a, b in self._items:
            if kind == _PLAIN:
                values[pid] = fields[i]
            elif kind == _SCALED:
                values[pid] = fields[i] * a + b
            elif kind == _BIT:
                values[pid] = bool(fields[i] >> a & 1)
            else:
                values[pid] = fields[i].split(b"\0", 1)[0].decode("ascii", errors="replace")

    def _one_by_one(self, words: Sequence[int], values: dict[str, Value]) -> list[CodecError]:
        errors = []
        for point, first in self._points:
            try:
                values[point.id] = decode_point(
                    point, words[first : first + point.registers], self._settings
                )
            except CodecError as err:
                errors.append(err)
        return errors


def _layout(
    point: ModbusPoint, first: int, settings: ModbusSettings
) -> tuple[_Field, int, float, float]:
    """Where a register point's field sits in a read, and what the field becomes.

    Returns:
        ``(field, kind, a, b)``: ``a, b`` are the scale and offset for ``_SCALED``, the bit
        number for ``_BIT``.
    """
    byte_order, word_order = _orders(point, settings)
    offset = 2 * first
    if point.type is PointType.STRING:
        # Word order never applies to text (module docstring): the bytes as they come.
        text = (byte_order == "little", ">", offset, f"{2 * point.registers}s")
        return text, _TEXT, 0, 0
    if point.registers == 1:
        # One register: word order is moot; the bytes as read, in the register's byte order.
        swapped, endian = False, "<" if byte_order == "little" else ">"
    else:
        swapped, endian = byte_order != word_order, "<" if word_order == "little" else ">"
    if point.type is PointType.BIT:
        return (swapped, endian, offset, "H"), _BIT, point.bit or 0, 0
    field = (swapped, endian, offset, _FORMATS[point.type])
    if point.scale == 1 and point.offset == 0:
        return field, _PLAIN, 0, 0
    return field, _SCALED, point.scale, point.offset


def _plan_lanes(
    fields: set[_Field], lanes: list[tuple[bool, struct.Struct, int]]
) -> dict[_Field, int]:
    """Put ``fields`` into as few structs as overlaps allow (appended to ``lanes``).

    Returns:
        Each field's index in the concatenation of what the structs unpack, in ``lanes`` order.
    """
    # Greedy by start offset (interval colouring): a field joins the first struct of its bytes
    # and byte order that ends at or before it.
    runs: list[tuple[bool, str, int, list[tuple[int, str]]]] = []  # ..., end, (offset, fmt)
    for field in sorted(fields, key=lambda f: (f[0], f[1], f[2], struct.calcsize(f[3]))):
        swapped, endian, offset, fmt = field
        end = offset + struct.calcsize(f"{endian}{fmt}")
        for n, (s, e, run_end, members) in enumerate(runs):
            if s == swapped and e == endian and run_end <= offset:
                members.append((offset, fmt))
                runs[n] = (s, e, end, members)
                break
        else:
            runs.append((swapped, endian, end, [(offset, fmt)]))
    index: dict[_Field, int] = {}
    for swapped, endian, _, members in runs:
        start = at = members[0][0]
        layout = [endian]
        for offset, fmt in members:
            if offset > at:
                layout.append(f"{offset - at}x")
            layout.append(fmt)
            index[swapped, endian, offset, fmt] = len(index)
            at = offset + struct.calcsize(f"{endian}{fmt}")
        lanes.append((swapped, struct.Struct("".join(layout)), start))
    return index
